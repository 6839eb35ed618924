"""The package as a wheel, installed alone into a fresh virtual environment, with no repository around it: it trains,
compares, evaluates and passes doctor.

About 90 s (pip unpacks TensorFlow into the new environment), so it is left out of the suite's default run
(``pyproject.toml``: ``-m "not wheel"``); ``.ci/run`` runs it after the suite: ``python -m pytest -m wheel``.
"""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.wheel, pytest.mark.slow]


def run(*args, cwd, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The ``bin`` folder of a fresh venv holding the wheel built from this checkout, and nothing else of it."""
    where = tmp_path_factory.mktemp("wheel")
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", where / "dist", ROOT, cwd=where)
    assert built.returncode == 0, built.stderr
    (wheel,) = (where / "dist").glob("echo_rnn_tf1-*.whl")
    made = run(sys.executable, "-m", "venv", where / "venv", cwd=where)
    assert made.returncode == 0, made.stderr
    bin_ = where / "venv" / "bin"
    result = run(bin_ / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, cwd=where)
    assert result.returncode == 0, result.stderr
    return bin_


def test_the_wheel_alone_trains_compares_evaluates_and_passes_doctor(installed, tmp_path):
    where = run(installed / "python", "-c", "import echo_rnn_tf1; print(echo_rnn_tf1.__file__)", cwd=tmp_path)
    assert where.returncode == 0 and "site-packages" in where.stdout and ROOT not in where.stdout

    trained = run(installed / "echo-rnn-tf1", "--seed", 0, "--num-epochs", 1, "--out", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.splitlines()[0] == "New data, epoch 0" and "Run folder run: " in trained.stdout

    compared = run(installed / "echo-rnn-tf1", "compare", "run", cwd=tmp_path)
    assert compared.returncode == 1 and "not comparable with the 2017 run" in compared.stdout  # (one epoch of 5)
    evaluated = run(installed / "echo-rnn-tf1", "evaluate", "run", "--seed", 1, cwd=tmp_path)
    assert evaluated.returncode == 0 and "accuracy  100.00 % of 50000 bits" in evaluated.stdout
    doctor = run(installed / "echo-rnn-tf1", "doctor", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stdout.splitlines()[-1] == "doctor: everything reproduces"
    helped = run(installed / "echo-rnn-tf1", "--help", cwd=tmp_path)
    assert helped.stdout.startswith("usage: echo-rnn-tf1 ")  # the command as the user typed it
