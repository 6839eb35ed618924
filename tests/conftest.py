import collections
import contextlib
import functools
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import echo_rnn_tf1  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports tensorflow)
from echo_rnn_tf1.config import Config  # noqa: E402
from echo_rnn_tf1.tfcompat import freeze_on_import  # noqa: E402

freeze_on_import()  # (as the command line: a test process is the suite's own)

# The tests send stop signals and expect them acted on. A suite started with them ignored (under nohup, as a script's
# background job) passes that on to every process it starts, and a command keeps an ignored signal ignored, as it
# should: so each test process starts from Python's usual handlers.
for _signum, _usual in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                        (signal.SIGHUP, signal.SIG_DFL)):
    if signal.getsignal(_signum) is signal.SIG_IGN:
        signal.signal(_signum, _usual)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = Config(num_epochs=2, total_series_length=5000)  # trains in about a second: 2 epochs of 100 steps
TINY_RUN_DRAWN = ("--num-epochs", 1, "--total-series-length", 500)  # 10 steps
TINY_RUN = (*TINY_RUN_DRAWN, "--no-pictures")  # (for a test that does not look at the pictures: 1 s less)


def pytest_collection_modifyitems(items):
    """The slow tests first: pytest-xdist hands out the xdist groups first (the largest first), then the other tests
    in this order as workers free up, so that the quick ones come last and even out the workers' ends."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def run_cli(*args, cwd=None, env=None, **kwargs):
    """Run ``python -m echo_rnn_tf1 ARGS`` in a fresh process (in ``env``, default this one's); return the
    CompletedProcess (text)."""
    env = dict(os.environ if env is None else env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


CliResult = collections.namedtuple("CliResult", ["returncode", "stdout", "stderr"])


@pytest.fixture
def cli(capfd):
    """``cli(*ARGS)``: ``echo_rnn_tf1.cli.main(ARGS)`` in this process, its output captured, as a CliResult.

    For tests of what a command writes, says and returns; ``run_cli`` starts a fresh interpreter (and TensorFlow
    in it, ~3 s) for tests of the process itself: signals, start-up noise, what is imported."""
    from echo_rnn_tf1.cli import main

    def run(*args):
        capfd.readouterr()
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return run


def main_in_process(*args):
    """``main(ARGS)`` in this process, for a fixture (a test has the ``cli`` fixture); returns a CliResult."""
    from echo_rnn_tf1.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in args])
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def train_in_process(*args):
    """``main(ARGS)`` in this process for a fixture's run, which must finish (exit 0); returns its stdout."""
    result = main_in_process(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def signal_here(monkeypatch, module, name, signum=signal.SIGINT, when=lambda *args: True):
    """``echo_rnn_tf1.MODULE.NAME`` (a function, or ``Class.method``; MODULE may also be a module or class itself,
    e.g. TensorFlow's) sends ``signum`` to this process first if ``when(*its arguments)``, then does its work: a
    signal arriving at a known point of a command run in this process. The command's own handler takes it: a
    command installs its handlers in the main thread, where pytest-xdist (from 3.6 on) runs the tests."""
    assert threading.current_thread() is threading.main_thread()
    *owners, attribute = name.split(".")
    base = importlib.import_module(f"echo_rnn_tf1.{module}") if isinstance(module, str) else module
    owner = functools.reduce(getattr, owners, base)
    original = getattr(owner, attribute)

    def patched(*args, **kwargs):
        if when(*args):
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, attribute, patched)


# Trainings shared by tests of several files: each is made once per session (once per xdist worker that needs it),
# and read only. Tests sharing a costly fixture carry the same xdist_group mark, which keeps them on one worker.

@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished run folder of TINY_RUN with seed 0 (10 steps: nothing learned yet)."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    train_in_process(*TINY_RUN, "--seed", 0, "--out", out)
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished run folder of one default epoch with seed 0, --tensorboard and --no-pictures: it learns the echo
    (last loss 7.6e-4)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train_in_process("--num-epochs", 1, "--seed", 0, "--out", out, "--tensorboard", "--no-pictures")
    return out


@pytest.fixture(scope="session")
def full_default_run(tmp_path_factory):
    """``(run folder, CompletedProcess)`` of ``python -m echo_rnn_tf1 --seed 0``: the source's full 5 epochs, end to
    end in a process of its own, as a user runs it."""
    out = tmp_path_factory.mktemp("full") / "run"
    return out, run_cli("--seed", 0, "--out", out)


def memory_table(config, seed, data_seed=None):
    """A ``memory.Memory``: the net of ``seed`` probed as initialized (the weights training starts from) and after
    training ``config`` as the CLI does, both on the fresh series of ``data_seed`` (default ``memory.DATA_SEED``)."""
    from echo_rnn_tf1.memory import DATA_SEED, Memory, memory_lags, probe
    from echo_rnn_tf1.tfcompat import import_quiet_tensorflow
    from echo_rnn_tf1.train import train_values

    import_quiet_tensorflow()
    trained = train_values(config, seed, log=lambda line: None)
    return Memory(memory_lags(config), *probe(config, trained.start, trained.values,
                                              seed=DATA_SEED if data_seed is None else data_seed))


def once_per_seed(make):
    """``get(seed)``: ``make(seed)``, a tuple whose first item is an array, made once per seed and read only."""
    made = {}

    def get(seed):
        if seed not in made:
            made[seed] = make(seed)
            made[seed][0].setflags(write=False)
        return made[seed]

    return get


def one_epoch_of(train):
    """``make(seed)`` for ``once_per_seed``: ``(losses as float32, log lines)`` of ``train(Config(num_epochs=1),
    seed)``."""
    from echo_rnn_tf1.config import Config

    def make(seed):
        lines = []
        return np.array(train(Config(num_epochs=1), seed, log=lines.append), dtype=np.float32), tuple(lines)

    return make


@pytest.fixture(scope="session")
def faithful_epoch():
    """``faithful_epoch(seed)``: ``(losses as float32, log lines)`` of ``train(Config(num_epochs=1), seed)``, one
    default epoch of the faithful graph, trained once per session and seed (a seed trains to the same bits every
    time in one process: test_oracle)."""
    from echo_rnn_tf1.train import train

    return once_per_seed(one_epoch_of(train))


@pytest.fixture(scope="session")
def tf2_epoch():
    """``tf2_epoch(seed)``: the same for ``tf2.train``, the TF2 engine, once per session and seed."""
    from echo_rnn_tf1 import tf2

    return once_per_seed(one_epoch_of(tf2.train))


@pytest.fixture(scope="session")
def source_epoch():
    """``source_epoch(seed)``: ``(losses, stdout)`` of one epoch of the source's own code (the oracle, a process of
    its own), run once per session and seed."""
    from echo_rnn_tf1.oracle import source_losses

    return once_per_seed(lambda seed: source_losses(seed, 1, env=dict(os.environ, PYTHONPATH=ROOT)))


@contextlib.contextmanager
def started(*args, **kwargs):
    """``python -m echo_rnn_tf1 ARGS`` started in a process group of its own; the group is killed on the way out."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=ROOT, env=env,
                               start_new_session=True, text=True,
                               **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs})
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def wait_until(condition, process, timeout=120):
    """Poll ``condition()`` until it holds, failing if ``process`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and process.poll() is None, "waited in vain"
        time.sleep(0.05)


def grown(path, size):
    """A condition: ``path`` exists and holds ``size`` bytes or more."""
    return lambda: path.exists() and path.stat().st_size >= size


def rows(path, count):
    """A condition: the CSV file ``path`` exists and holds more than ``count`` lines (its header and ``count`` rows)."""
    return lambda: path.exists() and path.read_text().count("\n") > count


def alive(pid):
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def one_error_line(stderr):
    """The one line a failure prints, after asserting that there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("echo_rnn_tf1:")]
    assert len(lines) == 1, stderr
    return lines[0]


def strict_json(text):
    """``json.loads`` that refuses what is not JSON but Python's json reads: NaN, Infinity, -Infinity."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def checked_record(out, theirs=()):
    """``out``'s run.json as a dict, after checking what it says against the folder: strict JSON; every row of
    losses.csv whole, and as many as ``steps_done`` says; the folder holds the files it lists and nothing else but
    ``theirs`` (names of the user's files)."""
    from echo_rnn_tf1.record import read_losses

    info = strict_json((out / "run.json").read_text())
    text = (out / "losses.csv").read_text()
    assert text.startswith("epoch,batch,loss\n") and text.endswith("\n")
    assert all(len(line.split(",")) == 3 for line in text.splitlines())
    if "steps_done" in info:
        assert info["steps_done"] == len(read_losses(out / "losses.csv")[2])
    present = {str(p.relative_to(out)) for p in out.rglob("*")} - set(theirs)
    assert sorted(present) == sorted(info["files"]), "the folder holds what run.json lists, and only that"
    return info


def run_record(**changes):
    """A finished run's run.json of the source's hyperparameters (a dict to write, as a run writes it), with
    ``changes``."""
    from echo_rnn_tf1.config import Config

    return {"status": "finished", "stage": "done", "seed": 0, "config": Config().to_dict(), "engine": "tf1",
            "rnn": "dynamic_rnn", "portable": False, "machine": {"cpu": "a CPU", "cores": 2}, "steps_done": 0,
            "cause": "trained all 5 epochs", "files": ["train.log", "losses.csv", "run.json"], **changes}


def copy_run(run_dir, to, **changes):
    """A copy of run folder ``run_dir`` at ``to`` whose run.json has ``changes``; returns ``to``."""
    shutil.copytree(run_dir, to)
    info = json.loads((to / "run.json").read_text())
    (to / "run.json").write_text(json.dumps({**info, **changes}))
    return to


@pytest.fixture
def tf():
    from echo_rnn_tf1.tfcompat import import_tensorflow

    return import_tensorflow()


def tensorflow_minor():
    """``(major, minor)`` of the TensorFlow the tests run on (read from its package, without importing it)."""
    from importlib import metadata

    from echo_rnn_tf1.tfcompat import import_tensorflow, minor_version

    for distribution in ("tensorflow", "tensorflow-cpu"):
        try:
            return minor_version(metadata.version(distribution))
        except metadata.PackageNotFoundError:
            pass
    return minor_version(import_tensorflow().__version__)


def _needs_tf_keras():
    from echo_rnn_tf1.tfcompat import LEGACY_KERAS_FROM

    return pytest.mark.skipif(tensorflow_minor() < LEGACY_KERAS_FROM,
                              reason="up to TensorFlow 2.15 Keras 2 is built in: there is no tf-keras to miss")


needs_tf_keras = _needs_tf_keras()  # for tests of the tf-keras world (TensorFlow 2.16 on)
