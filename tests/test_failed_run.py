"""However a run ends (it diverged, the disk filled, memory ran out, it failed, it was killed while saving), run.json
says so truthfully and the folder holds what it lists; what is written is whole or not at all."""
import contextlib
import errno
import json
import os
import re
import resource
import shutil
import subprocess
import weakref

import numpy as np
import pytest

from conftest import TINY_RUN, TINY_RUN_DRAWN, checked_record, one_error_line
from echo_rnn_tf1 import folder as folder_module
from echo_rnn_tf1 import train as train_module
from echo_rnn_tf1.failures import exit_code_and_line
from echo_rnn_tf1.record import atomic_write, read_losses, write_json



@pytest.mark.slow
def test_divergence_stops_at_once_and_keeps_the_record(tmp_path, cli):
    # 1e38 (the largest float32 is 3.4e38) sends the loss to inf at step 2. For the record: 1e30 does not
    # diverge in this sense; the loss climbs to ~1e29 but stays finite, and the run finishes.
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--learning-rate", "1e38", "--seed", 0, "--out", out)
    assert result.returncode == 1
    _, batches, losses = read_losses(out / "losses.csv")
    assert np.isfinite(losses[:-1]).all() and np.isinf(losses[-1])    # stopped at the first non-finite step
    step = int(batches[-1])
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: the loss diverged to inf at epoch 0, step {step}; " \
                                            f"training stopped"
    info = checked_record(out)  # strict JSON: no NaN, no Infinity
    assert info["status"] == "diverged" and info["steps_done"] == len(losses) and info["final_loss"] is None
    assert info["diverged_at"] == {"epoch": 0, "step": step, "loss": "inf"} and "checkpoint" not in info
    assert (out / "train.log").read_text().startswith("New data, epoch 0\nStep 0 Batch loss ")
    assert (out / "loss.png").exists() and not (out / "predictions.png").exists()
    result = cli("evaluate", out)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {out}: no checkpoint (status diverged: a diverged "
                                             f"run keeps none)")


class FullDisk:
    """``os`` for run.py, with a full disk for the files it appends to (train.log, losses.csv): after ``budget``
    bytes, a write puts down what fits and the next one fails, as a real file system does."""

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
    monkeypatch.setattr(folder_module, "os", FullDisk(2000))  # the header and about a hundred rows
    result = cli("--num-epochs", 1, "--seed", 0, "--out", out)
    assert result.returncode == 3
    assert re.fullmatch(f"echo_rnn_tf1: error: disk full: {out}/(losses.csv|train.log): No space left on device",
                        one_error_line(result.stderr))
    info = checked_record(out)  # whole rows only: the part of one that fitted is cut back
    assert info["status"] == "failed" and info["stage"] == "training" and info["cause"].startswith("disk full")
    assert 50 < info["steps_done"] < 1000 and info.get("checkpoint") is None


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
    info = checked_record(out)
    assert info["status"] == "failed" and info["stage"] == "training" and says in info["cause"]
    assert info["steps_done"] == 5


@pytest.mark.slow
def test_out_of_memory_while_drawing_frees_what_filled_it_and_records_it(tmp_path, cli, monkeypatch):
    # The record is written once what the failed code held is freed (a figure: a web of references). Written while it
    # was held, it failed for want of memory too (measured under ulimit -v 3000000 with --state-size 3000), and the
    # run's record said "running".
    from matplotlib.figure import Figure

    from echo_rnn_tf1 import memory

    held, alive_when_recorded = [], []

    def states_figure(table, config):
        figure = Figure()  # what filled the memory
        held.append(weakref.ref(figure))
        raise MemoryError

    def write(self, **fields):
        if fields.get("status") == "failed":
            alive_when_recorded.append(held[0]() is not None)
        return folder_write(self, **fields)

    folder_write = folder_module.RunFolder.write
    monkeypatch.setattr(memory, "states_figure", states_figure)
    monkeypatch.setattr(folder_module.RunFolder, "write", write)
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
    assert result.returncode == 3 and one_error_line(result.stderr) == "echo_rnn_tf1: error: out of memory"
    assert alive_when_recorded == [False]
    info = checked_record(out)
    assert info["status"] == "failed" and info["stage"] == "pictures" and info["cause"] == "out of memory"


@pytest.mark.slow
def test_a_run_killed_while_it_saves_its_checkpoint_leaves_a_folder_force_takes(tmp_path, cli, monkeypatch, tf):
    # What SIGKILL leaves at either end of the Saver's work (copies of the folder, which nobody holds): the files about
    # to be written, then written and not yet recorded with their digests. Each is listed in run.json by then, so
    # --force takes the folder; an unlisted model.ckpt-N.index was "in the way".
    save, killed = tf.compat.v1.train.Saver.save, []

    def saved(*args, **kwargs):
        killed.append(shutil.copytree(out, tmp_path / "before"))
        done = save(*args, **kwargs)
        killed.append(shutil.copytree(out, tmp_path / "after"))
        return done

    monkeypatch.setattr(tf.compat.v1.train.Saver, "save", saved)
    out = tmp_path / "run"
    assert cli(*TINY_RUN, "--seed", 0, "--out", out).returncode == 0
    monkeypatch.undo()
    checked_record(out)  # the finished run lists what it holds, and only that
    assert any(p.name.startswith("model.ckpt-10.") for p in killed[1].iterdir())
    for folder in killed:
        assert {p.name for p in folder.iterdir()} <= set(json.loads((folder / "run.json").read_text())["files"])
        result = cli(*TINY_RUN, "--seed", 1, "--out", folder, "--force")
        assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def small_disk(folder, size):
    """A tmpfs of ``size`` mounted at ``folder`` for the block (the test is skipped where mounting is not allowed)."""
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                 capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (it needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(disk, leave=0):
    """Fill the file system of ``disk`` up to ``leave`` bytes."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with contextlib.suppress(OSError), open(disk / "filler", "wb", buffering=0) as filler:
        filler.write(b"\0" * (free - leave))
        while not leave:
            filler.write(b"\0" * 4096)


@pytest.mark.slow
def test_a_real_full_disk_mid_training_is_recorded(tmp_path, cli, monkeypatch):
    # 300 steps: losses.csv passes 4096 bytes (a second page) near step 220, after the disk filled at step 100;
    # a file grows into the page it has without asking for room. run.json is rewritten in the room it has.
    with small_disk(tmp_path / "disk", "1m") as disk:
        out = disk / "run"
        _after_step = train_module.after_step

        def after_step(epoch_idx, batch_idx, *rest):
            if batch_idx == 100:
                fill(disk)
            _after_step(epoch_idx, batch_idx, *rest)

        monkeypatch.setattr(train_module, "after_step", after_step)
        result = cli("--num-epochs", 1, "--total-series-length", 15000, "--seed", 0, "--out", out)
        assert result.returncode == 3
        assert one_error_line(result.stderr) == f"echo_rnn_tf1: error: disk full: {out}/losses.csv: No space left " \
                                                f"on device"
        info = checked_record(out)
        assert info["status"] == "failed" and info["stage"] == "training" and info["cause"].startswith("disk full")
        assert 100 < info["steps_done"] < 300


# Free room on the disk for a tiny run, in 4 KB pages: its start (train.log, losses.csv, run.json and the next one)
# and its checkpoint (4 files, the .meta 7.9 KB) fit, loss.png (32 KB) does not. Measured: with 40 to 56 KB free the
# disk fills while loss.png is written, with 64 or 72 KB while predictions.png is (both in the pictures).
ROOM = 48 * 1024


@pytest.mark.slow
def test_a_real_full_disk_after_training_leaves_no_file_unlisted(tmp_path, cli):
    with small_disk(tmp_path / "disk", "400k") as disk:
        fill(disk, leave=ROOM)
        out = disk / "run"
        result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
        assert result.returncode == 3 and "disk full" in one_error_line(result.stderr)
        info = checked_record(out)
        assert info["status"] == "failed" and info["stage"] in ("checkpoint", "pictures")


@pytest.mark.slow
def test_a_file_size_limit_while_tensorflow_writes_is_the_machines_failure(tmp_path, cli):
    # 4 KiB, as `ulimit -f 4` sets it (here, for this process while the command runs in it): run.json (1.5 KB) and a
    # tiny run's losses.csv fit, the checkpoint's .meta (7.9 KB on TensorFlow 2.21) does not; TensorFlow says so in
    # its own words. (Python ignores SIGXFSZ, which would otherwise end the process.)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024, hard))
    try:
        result = cli(*TINY_RUN, "--seed", 0, "--out", tmp_path / "run")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.returncode == 3, result.stderr
    assert one_error_line(result.stderr).startswith("echo_rnn_tf1: error: file size limit reached (TensorFlow: ")
    info = checked_record(tmp_path / "run")
    assert info["status"] == "failed" and info["stage"] == "checkpoint" and info["cause"].startswith("file size")


def test_a_file_size_limit_on_the_losses_is_named_and_leaves_whole_rows(tmp_path, cli):
    # 4 KiB, as `ulimit -f 4` sets it: run.json (1.5 KB) fits; losses.csv reaches it at about its 230th row (of 300),
    # a row cut short.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 1024, hard))
    try:
        result = cli("--num-epochs", 1, "--total-series-length", 15000, "--seed", 0, "--out", tmp_path / "run")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.returncode == 3, result.stderr
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: file size limit reached: {tmp_path / 'run'}/"
                                             f"losses.csv: File too large")
    info = checked_record(tmp_path / "run")  # (every row whole)
    assert info["status"] == "failed" and info["cause"].startswith("file size limit reached: ")


def test_a_json_file_is_replaced_whole_or_not_at_all(tmp_path):
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
    assert exit_code_and_line(raised.value) == (3, f"disk full: {tmp_path / 'loss.png'}: No space left on device")
    assert os.listdir(tmp_path) == []
