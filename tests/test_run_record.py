"""A run record is never left lying: however a run ends, run.json says how (status, stage, cause), steps_done
equals the rows of losses.csv, and losses.csv never ends in half a row. Faults that cannot be made for real are
injected into this process (monkeypatch), signals too: the command installs its handlers here (pytest-xdist runs
tests in its workers' main thread); a signal during the pictures, which a fresh process draws in a second one, is
injected into a fresh process before the command runs."""
import contextlib
import errno
import json
import math
import os
import signal
import subprocess

import pytest

from conftest import TINY_RUN, grown, one_error_line, run_patched, signal_here, started, wait_until
from echo_rnn_tf1 import runs
from echo_rnn_tf1 import train as train_module
from echo_rnn_tf1.runs import RunWriter, read_losses


def record(out):
    """run.json, after checking it against losses.csv: steps_done equals its rows, and its last row is whole."""
    info = json.loads((out / "run.json").read_text())
    text = (out / "losses.csv").read_text()
    assert text.endswith("\n") and all(len(line.split(",")) == 3 for line in text.splitlines())
    if "steps_done" in info:
        assert info["steps_done"] == len(read_losses(out / "losses.csv")[2])
    assert not (out / runs.RESERVE).exists() or info["status"] == "running"
    return info


def _signal_in(module, function):
    """Patch source: ``module.function`` sends SIGINT to its own process first, then does its work."""
    return (f"import os, signal\nimport echo_rnn_tf1.{module} as m\n_original = m.{function}\n"
            f"def patched(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGINT)\n"
            f"    return _original(*args, **kwargs)\nm.{function} = patched\n")


@pytest.mark.slow
def test_a_run_of_fewer_than_four_windows_a_row_draws_what_it_has(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("--total-series-length", 150, "--num-epochs", 1, "--seed", 0, "--out", out)
    assert result.returncode == 0, result.stderr  # 3 windows a row: the picture shows 3
    assert record(out)["status"] == "finished" and (out / "predictions.png").exists()
    assert result.stdout.splitlines()[-1].startswith("Compared with the 2017 run: ")


@pytest.mark.slow
@pytest.mark.parametrize("module, function, stage", [
    ("launch", "_save_checkpoint", "checkpoint"),      # in this process
    ("evaluate", "held_out_predictions", "pictures"),  # in a fresh one, whose pictures a second process draws
])                                                     # (the predictions, computed while loss.png is drawn there)
def test_a_signal_after_training_is_recorded_with_its_stage(tmp_path, cli, monkeypatch, module, function, stage):
    out = tmp_path / "run"
    if stage == "pictures":
        result = run_patched(_signal_in(module, function), *TINY_RUN, "--seed", 0, "--out", out)
    else:
        signal_here(monkeypatch, module, function)
        result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 130
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: SIGINT received during the {stage}; stopped"
    info = record(out)
    assert info["status"] == "interrupted" and info["stage"] == stage and info["steps_done"] == 10
    assert info["cause"] == f"SIGINT during the {stage}"
    assert (out / "model.ckpt-10.index").exists()  # the checkpoint in progress was finished, not cut


@pytest.mark.slow
def test_a_signal_during_the_verdict_leaves_the_finished_record(tmp_path, cli, monkeypatch):
    out = tmp_path / "run"
    signal_here(monkeypatch, "launch", "_print_verdict")
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 130 and "SIGINT received; stopped" in one_error_line(result.stderr)
    info = record(out)
    assert info["status"] == "finished" and info["stage"] == "done" and (out / "predictions.png").exists()


@pytest.mark.slow
def test_a_signal_on_the_step_that_diverges_saves_no_nan_weights(tmp_path, cli, monkeypatch):
    signal_here(monkeypatch, "train", "after_step", when=lambda epoch_idx, batch_idx, loss, *_: not math.isfinite(loss))
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--learning-rate", "1e38", "--seed", 0, "--out", out)
    assert result.returncode == 1, result.stderr  # the step's own result: diverged
    info = record(out)
    assert info["status"] == "diverged" and "diverged_at" in info and "checkpoint" not in info
    assert not list(out.glob("model.ckpt-*")) and (out / "loss.png").exists()


class FullDisk:
    """``os`` for runs.py, with a full disk for the run's files: after ``budget`` bytes, a write puts down what
    fits and the next one fails, as a real file system does. run.json is written through open(), which this
    leaves alone."""

    def __init__(self, budget):
        self.budget = budget

    def __getattr__(self, name):
        return getattr(os, name)

    def write(self, fd, data):
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[:self.budget])
        self.budget -= n
        return n


@pytest.mark.slow
def test_a_full_disk_mid_training_fails_cleanly_and_says_so(tmp_path, cli, monkeypatch):
    out = tmp_path / "run"
    budget = runs.RESERVE_BYTES + 2000  # the reserve, the header and about a hundred rows
    monkeypatch.setattr(runs, "os", FullDisk(budget))
    result = cli("--num-epochs", 1, "--seed", 0, "--out", out)
    assert result.returncode == 3
    assert one_error_line(result.stderr).startswith("echo_rnn_tf1: error: disk full: ")
    info = record(out)  # whole rows only
    assert info["status"] == "failed" and info["stage"] == "training" and info["cause"].startswith("disk full")
    assert 50 < info["steps_done"] < 1000 and not list(out.glob("model.ckpt-*"))


@pytest.mark.slow
@pytest.mark.parametrize("error, code, says", [(MemoryError(), 3, "out of memory"),
                                               (ZeroDivisionError("injected"), 4, "internal error")],
                         ids=["MemoryError", "ZeroDivisionError"])
def test_a_failure_in_training_is_recorded_and_reported_in_one_line(tmp_path, cli, monkeypatch, error, code, says):
    _after_step = train_module.after_step

    def after_step(epoch_idx, batch_idx, *rest):
        if batch_idx == 5:
            raise error
        _after_step(epoch_idx, batch_idx, *rest)

    monkeypatch.setattr(train_module, "after_step", after_step)
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == code and says in one_error_line(result.stderr)
    info = record(out)
    assert info["status"] == "failed" and info["stage"] == "training" and says in info["cause"]
    assert info["steps_done"] == 5


def test_a_failed_write_never_leaves_half_a_row(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "run")
    real_write, calls = os.write, []

    def half_then_full(fd, data):  # puts down half the row, then finds the disk full
        calls.append(data)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data[: len(data) // 2])

    try:
        run.record(0, 0, 0.5)
        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(OSError, match="No space left"):
            run.record(0, 1, 0.25)
        monkeypatch.undo()
        assert len(calls) == 2 and run.steps_done == 1
        assert (tmp_path / "run" / "losses.csv").read_text() == "epoch,batch,loss\n0,0,0.5\n"
        run.record(0, 1, 0.25)  # and once there is room, it goes on from the last whole row
    finally:
        monkeypatch.undo()
        run.close()
    assert (tmp_path / "run" / "losses.csv").read_text() == "epoch,batch,loss\n0,0,0.5\n0,1,0.25\n"


def _mount_tmpfs(folder, size):
    """Mount a tmpfs of ``size`` at ``folder``, or skip the test where mounting is not allowed."""
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                 capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (it needs root)")


def _fill(disk):
    """Fill the file system of ``disk`` to the brim."""
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)


@pytest.mark.slow
def test_a_real_full_disk_mid_training_is_recorded(tmp_path, cli, monkeypatch):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "1m")
    try:
        out = disk / "run"
        _after_step, written = train_module.after_step, []

        def after_step(epoch_idx, batch_idx, *rest):  # the disk fills up at step 300 (losses.csv: over 4 KB)
            if batch_idx == 300:
                written.append((out / "losses.csv").stat().st_size)
                _fill(disk)
            _after_step(epoch_idx, batch_idx, *rest)

        monkeypatch.setattr(train_module, "after_step", after_step)
        returncode, _, stderr = cli("--num-epochs", 1, "--seed", 0, "--out", out)
        assert written[0] > 4000 and returncode == 3
        assert one_error_line(stderr).startswith("echo_rnn_tf1: error: disk full: ")
        info = record(out)
        assert info["status"] == "failed" and info["stage"] == "training" and info["cause"].startswith("disk full")
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


@pytest.mark.slow
def test_a_real_full_disk_after_training_leaves_no_file_unlisted(tmp_path, cli):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "400k")
    try:
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * (free - 110 * 1024))  # the run's start takes 76 KB of the 110
        out = disk / "run"
        result = cli(*TINY_RUN, "--seed", 0, "--out", out)
        assert result.returncode == 3 and "disk full" in one_error_line(result.stderr)
        info = record(out)
        assert info["status"] == "failed" and info["stage"] in ("checkpoint", "pictures")  # (the checkpoint's
        assert sorted(os.listdir(out)) == sorted(info["files"])  # .meta, 75 KB, fills it on TensorFlow 2.21)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_training_is_recorded(tmp_path, signum):
    out = tmp_path / "run"
    with started("--num-epochs", 1000, "--seed", 0, "--out", out) as process:
        wait_until(grown(out / "run.json", 1), process)  # written before TensorFlow loads
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum and "Traceback" not in stderr
    info = record(out)
    assert info["status"] == "interrupted" and info["steps_done"] == 0
    assert info["cause"] == f"{signal.Signals(signum).name} during the start, after 0 steps"
    assert stdout.splitlines()[-2].startswith(f"Run folder {out}: ") and "Step " not in stdout
