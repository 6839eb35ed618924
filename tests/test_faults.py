"""Bad input and faults: refuse clearly (one line, exit 2), stop safely, lose nothing."""
import errno
import itertools
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, TINY_RUN, one_error_line, rows, run_cli, signal_here, started, wait_until
from echo_rnn_tf1.config import Config, ConfigError
from echo_rnn_tf1.failures import describe
from echo_rnn_tf1.runs import RunError, atomic_write, load_run, read_losses, write_json


@pytest.mark.parametrize("flag, value, rule", [
    ("--num-epochs", 0, "positive integer"),
    ("--batch-size", -5, "positive integer"),
    ("--state-size", 0, "positive integer"),
    ("--truncated-backprop-length", 0, "positive integer"),
    ("--num-classes", 1, "at least 2"),
    ("--echo-step", 10, "from 0 to truncated_backprop_length - 1 (9)"),
    ("--echo-step", -1, "from 0 to truncated_backprop_length - 1"),
    ("--total-series-length", 50005, "multiple of batch_size * truncated_backprop_length (50)"),
    ("--learning-rate", 0, "greater than 0"),
    ("--learning-rate", "nan", "greater than 0"),
    ("--learning-rate", "inf", "finite in float32"),
    ("--learning-rate", "1e39", "finite in float32"),
    ("--learning-rate", "1e-46", "finite in float32 (from 1.401e-45"),  # 0 in float32
    ("--batch-size", "five", "invalid int value: 'five'"),
    ("--learning-rate", "fast", "invalid float value: 'fast'"),
    ("--no-such-flag", 1, "unrecognized arguments: --no-such-flag 1"),
    # the source's variable names, as flags: the flags' spelling as a hint
    ("--num_epochs", 1, "unrecognized arguments: --num_epochs 1 (did you mean --num-epochs?)"),
    ("--learning_rate=0.1", 1, "unrecognized arguments: --learning_rate=0.1 1 (did you mean --learning-rate?)"),
    ("comapre", 1, "no command 'comapre'; the commands are compare, doctor, envelope, evaluate, predict, and "
                   "without one the flags train a run"),
])
def test_bad_values_are_refused_in_one_line_before_anything_is_written(tmp_path, cli, flag, value, rule):
    out = tmp_path / "run"
    result = cli(flag, value, "--out", out)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("echo_rnn_tf1: error: ") and rule in lines[0], result.stderr
    assert flag in lines[0]
    assert not out.exists()


def test_validation_runs_before_tensorflow_is_imported():
    code = ("import sys\nfrom echo_rnn_tf1.cli import main\n"
            "print(main(['--echo-step', '99']), 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "2 False"


def test_a_bad_value_is_all_a_real_process_says(tmp_path):
    # (the cases above run in this process: here a real one's whole output, nothing before or after the line)
    result = run_cli("--batch-size", "five", "--out", tmp_path / "run")
    assert result.returncode == 2 and result.stdout == "" and not (tmp_path / "run").exists()
    assert result.stderr == ("echo_rnn_tf1: error: python -m echo_rnn_tf1: argument --batch-size: invalid int value: "
                             "'five'\n")


def test_config_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        Config.from_dict({"num_epochs": 1, "hidden": 4})


@pytest.mark.slow
def test_existing_run_is_refused_and_left_untouched(tmp_path, cli):
    out = tmp_path / "run"
    assert cli(*TINY_RUN, "--seed", 1, "--out", out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    result = cli(*TINY_RUN, "--seed", 2, "--out", out)
    assert result.returncode == 2 and "exists and is not empty" in result.stderr and "--force" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # --force overwrites the run's files (and keeps files that are not the run's).
    (out / "notes.txt").write_text("mine")
    assert cli(*TINY_RUN, "--seed", 2, "--out", out, "--force").returncode == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 2
    assert (out / "notes.txt").read_text() == "mine"


def test_unwritable_out_is_refused_before_training(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli(*TINY_RUN, "--out", blocker / "run")
    assert result.returncode == 2 and "cannot write there" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "New data" not in result.stdout
    # --out naming a file, and a file given where a run folder goes: said so, the file untouched
    result = cli(*TINY_RUN, "--out", blocker)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: error: --out {blocker}: a file, not a folder"
    for args in (["evaluate", blocker], ["predict", blocker, "0110"]):
        result = cli(*args)
        assert result.returncode == 2
        assert one_error_line(result.stderr) == f"echo_rnn_tf1: error: {blocker}: not a run folder (a file)"
    assert blocker.read_text() == ""


@pytest.mark.parametrize("command", [[], ["envelope"]])
def test_an_empty_out_is_refused_not_replaced_by_a_new_folder(tmp_path, cli, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    result = cli(*command, "--out", "")
    assert result.returncode == 2 and "argument --out: an empty path" in one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []  # no runs/ folder made


@pytest.mark.slow
def test_divergence_stops_at_once_and_keeps_the_record(tmp_path, cli):
    # 1e38 (the largest float32 is 3.4e38) sends the loss to inf at step 1. For the record: 1e30 does not
    # diverge in this sense; the loss climbs to ~1e29 but stays finite, and the run finishes.
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--learning-rate", "1e38", "--seed", 0, "--out", out)
    assert result.returncode == 1
    _, batches, losses = read_losses(out / "losses.csv")
    assert np.isfinite(losses[:-1]).all() and np.isinf(losses[-1])    # stopped at the first non-finite step
    step = int(batches[-1])
    assert f"diverged to inf at epoch 0, step {step}; training stopped" in result.stderr
    info = json.loads((out / "run.json").read_text())  # strict JSON: parses without NaN
    assert info["status"] == "diverged" and info["steps_done"] == len(losses) and info["final_loss"] is None
    assert info["diverged_at"] == {"epoch": 0, "step": step, "loss": "inf"}
    assert (out / "train.log").read_text().startswith("New data, epoch 0\nStep 0 Batch loss ")
    assert (out / "loss.png").exists()


# A run far longer than any test waits for, of short epochs (100 steps): a signal in its second epoch comes soon.
LONG_SERIES = 5000
LONG_RUN = ("--num-epochs", 1000, "--total-series-length", LONG_SERIES, "--seed", 0)
SIGNAL_AT = 150  # the step (of the second epoch) a signal comes after


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_stops_cleanly_with_a_consistent_record(tmp_path, cli, monkeypatch, signum, exit_code):
    out = tmp_path / "run"
    if signum == signal.SIGINT:  # from outside, into a real process, whenever it comes
        with started(*LONG_RUN, "--out", out) as process:
            wait_until(rows(out / "losses.csv", SIGNAL_AT), process)
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=120)
        returncode = process.returncode
    else:  # the same handler, in this process, during step SIGNAL_AT (each signal's exit code from a real process:
        # test_run_record's signal before training)
        num_batches = Config(total_series_length=LONG_SERIES).num_batches
        signal_here(monkeypatch, "train", "after_step", signum, when=lambda epoch_idx, batch_idx, *_: (
            epoch_idx * num_batches + batch_idx == SIGNAL_AT))
        returncode, stdout, stderr = cli(*LONG_RUN, "--out", out)
    assert returncode == exit_code, stderr
    assert "Traceback" not in stderr and f"{signal.Signals(signum).name} received" in stderr
    info = json.loads((out / "run.json").read_text())
    epochs, batches, losses = read_losses(out / "losses.csv")
    assert info["status"] == "interrupted" and info["steps_done"] == len(losses) >= SIGNAL_AT
    assert info["final_loss"] == float(losses[-1])
    assert (out / "train.log").read_text() == stdout[: len((out / "train.log").read_text())]
    assert (out / "train.log").read_text().count("Step ") == (batches % 100 == 0).sum()
    assert (out / f"model.ckpt-{len(losses)}.index").exists()


@pytest.fixture
def sighup_ignored():
    """SIGHUP ignored in this process, as ``nohup`` starts a command (for a run to outlive its terminal)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@pytest.mark.slow
def test_a_signal_ignored_when_the_run_starts_stays_ignored(tmp_path, cli, monkeypatch, sighup_ignored):
    signal_here(monkeypatch, "train", "after_step", signal.SIGHUP, when=lambda epoch_idx, batch_idx, *_: batch_idx == 5)
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 0 and "SIGHUP" not in result.stderr, result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["steps_done"] == 10
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # and left ignored


def test_only_the_ignored_signal_is_left_alone(sighup_ignored):
    from echo_rnn_tf1.failures import Interrupted, stopping_signals

    with pytest.raises(Interrupted, match="SIGINT"), stopping_signals():
        signal.raise_signal(signal.SIGHUP)  # ignored: nothing happens
        signal.raise_signal(signal.SIGINT)
        raise AssertionError("SIGINT did not stop the block")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_atomic_json_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "run.json"
    write_json(path, {"status": "finished"})
    with pytest.raises(ValueError):
        write_json(path, {"final_loss": float("nan")})  # refused by strict JSON, halfway through the dump
    assert json.loads(path.read_text()) == {"status": "finished"}
    assert os.listdir(tmp_path) == ["run.json"]


def test_a_failed_write_names_the_file(tmp_path):
    # A disk that fills while a picture is encoded: the error of a write names no file, the one line must.
    def write(tmp):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "loss.png", write)
    assert describe(raised.value) == (3, f"disk full: {tmp_path / 'loss.png'}: No space left on device")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "no such run folder"),
    (lambda d: d.mkdir(), "not a run folder"),
    (lambda d: (d.mkdir(), (d / "run.json").write_text("{not json")), "unreadable run record"),
    (lambda d: (d.mkdir(), (d / "run.json").write_text("[1, 2]")), "unreadable run record"),
    (lambda d: (d.mkdir(), (d / "run.json").write_text('{"config": {"state_size": -1}}')), "--state-size -1"),
])
def test_load_run_refuses_what_is_not_a_run(tmp_path, make, message):
    folder = tmp_path / "run"
    make(folder)
    with pytest.raises(RunError, match=message):
        load_run(folder)


def test_nothing_reads_with_pickle_or_eval():
    package = os.path.join(ROOT, "echo_rnn_tf1")
    for name in os.listdir(package):
        if name.endswith(".py"):
            text = open(os.path.join(package, name)).read()
            for banned in ("import pickle", "eval(", "allow_pickle=True", "exec("):
                assert banned not in text, f"{name} uses {banned}"


@pytest.mark.slow
def test_tf2_stops_at_the_end_of_the_epoch_a_signal_arrives_in(tmp_path, cli, monkeypatch):
    out = tmp_path / "run"
    calls = itertools.count(1)
    signal_here(monkeypatch, "tf2", "Engine.train_epoch", when=lambda *_: next(calls) == 3)  # as the third epoch starts
    result = cli("--engine", "tf2", "--num-epochs", 5000, "--seed", 0, "--out", out)
    assert result.returncode == 130, result.stderr
    info = json.loads((out / "run.json").read_text())
    _, _, losses = read_losses(out / "losses.csv")
    # An epoch is one compiled call: the record stops at that epoch's end, where the saved weights are.
    assert info["status"] == "interrupted" and info["steps_done"] == len(losses) == 3000
    assert (out / f"model.ckpt-{len(losses)}.index").exists()


@pytest.mark.parametrize("args, says", [
    (["--seed", "-1"], "argument --seed: invalid seed -1: must be from 0 to 2**32 - 1"),
    (["--seed", str(2**32)], "argument --seed: invalid seed 4294967296"),
    (["--seed", "x"], "argument --seed: invalid seed 'x': not a whole number"),
    (["envelope", "--seeds", "2", "--first-seed", str(2**32 - 1)],
     "--first-seed 4294967295 --seeds 2: the last seed would pass"),
    (["envelope", "--seeds", str(10**11)], f"--first-seed 0 --seeds {10**11}: the last seed would pass"),
    (["envelope", "--seeds", "0"], "--seeds 0: must be a positive integer"),
    (["evaluate", "somewhere", "--seed", "-3"], "argument --seed: invalid seed -3"),
])
def test_seeds_numpy_cannot_take_are_refused(tmp_path, cli, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.returncode == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.slow
def test_the_largest_seed_works_end_to_end(tmp_path, cli):
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--seed", 2**32 - 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "predictions.png").exists()  # its held-out batch wraps to seed 0
