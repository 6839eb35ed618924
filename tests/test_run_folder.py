"""The run folder: a run writes its files there and run.json lists them; --force removes those (and what a killed
run left half written) and nothing else; a folder whose run trains is not taken (it is locked); however a run ends
(it diverged, the disk filled, it failed), run.json says so truthfully and the folder holds what it lists."""
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

from conftest import TINY_RUN, TINY_RUN_DRAWN, checked_record, one_error_line, run_record
from echo_rnn_tf1 import folder as folder_module
from echo_rnn_tf1 import train as train_module
from echo_rnn_tf1.failures import exit_code_and_line
from echo_rnn_tf1.record import atomic_write, lock, read_losses, write_json


def make_run(folder, files=("train.log", "losses.csv", "run.json", "loss.png", "checkpoint",
                            "model.ckpt-10.index", "model.ckpt-10.data-00000-of-00001")):
    """A run folder as a finished run leaves it, its run.json listing ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        if name != "run.json":
            (folder / name).parent.mkdir(exist_ok=True)
            if "." in name or "/" in name or name == "checkpoint":
                (folder / name).write_text(f"old {name}")
    (folder / "run.json").write_text(json.dumps(run_record(files=list(files))))


def contents(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(cli, folder, says, force=True):
    """Start a run into ``folder``: refused in one line saying ``says``, before anything is loaded or removed."""
    before = contents(folder)
    result = cli(*TINY_RUN, "--out", folder, *(["--force"] if force else []))
    assert result.returncode == 2 and result.stdout == ""
    assert re.search(says, one_error_line(result.stderr)), result.stderr
    assert contents(folder) == before


def test_force_refuses_a_folder_without_run_json(tmp_path, cli):
    # Another project's folder: names like a run's, but no run.json says they are one.
    folder = tmp_path / "theirs"
    folder.mkdir()
    for name in ("checkpoint", "model.ckpt-5.index", "model.ckpt_README.txt", "tb/events.out.tfevents.1.host",
                 "train.log"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text("theirs")
    refused(cli, folder, "holds no run.json, so nothing in it is known to be a run's; --force replaces only the "
                         "files of a run")


@pytest.mark.parametrize("make, says", [
    (lambda f, outside: (f / "tb").symlink_to(outside), "tb is a symbolic link"),
    (lambda f, outside: (f / "loss.png").symlink_to(outside / "precious.txt"), "loss.png is a symbolic link"),
    (lambda f, outside: (f / "predictions.png").write_text("mine"), "predictions.png is in the way and run.json does "
                                                                   "not list it"),
    (lambda f, outside: (f / "model.ckpt-99.index").write_text("mine"), "model.ckpt-99.index is in the way"),
    (lambda f, outside: ((f / "tb").mkdir(), (f / "tb" / "mine.txt").write_text("mine")), "tb/ holds mine.txt"),
])
def test_force_refuses_before_removing_anything_when_something_else_is_in_the_way(tmp_path, cli, make, says):
    folder, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious")
    make_run(folder, files=("train.log", "losses.csv", "run.json", "loss.png", "tb"))
    (folder / "loss.png").unlink()
    make(folder, outside)
    refused(cli, folder, re.escape(says))
    assert contents(outside) == {"precious.txt": b"precious"}


@pytest.mark.parametrize("files, says", [
    (None, "unreadable run record (no 'files')"),
    ("train.log", "unreadable run record (files: 'train.log' is not what a run records)"),
    (["../outside.txt"], "unreadable run record (files: ['../outside.txt'] is not what a run records)"),
    (["/etc/passwd"], "unreadable run record (files: ['/etc/passwd'] is not what a run records)"),
    (["a/b/c"], "unreadable run record (files: ['a/b/c'] is not what a run records)"),
    ([3], "unreadable run record (files: [3] is not what a run records)"),
    (["outside.txt"], "unreadable run record (files: ['outside.txt'] is not what a run records)"),  # a user's file
    (["tb/outside.txt"], "unreadable run record (files: ['tb/outside.txt'] is not what a run records)"),
    (["tb/events.out.tfevents.1"], "lists tb/events.out.tfevents.1 but not its folder"),
])
def test_force_refuses_a_run_json_whose_file_list_is_not_one(tmp_path, cli, files, says):
    folder = tmp_path / "run"
    make_run(folder)
    info = {key: value for key, value in run_record(files=files).items() if files is not None or key != "files"}
    (folder / "run.json").write_text(json.dumps(info))
    (tmp_path / "outside.txt").write_text("precious")
    refused(cli, folder, re.escape(f"{folder / 'run.json'}: {says}"))
    assert (tmp_path / "outside.txt").read_text() == "precious"


def test_a_locked_folder_is_not_taken(tmp_path, cli):
    # What another process's run or envelope holds while it writes there (test_stopping: a real one).
    folder = tmp_path / "run"
    make_run(folder)
    held = lock(folder)
    try:
        for force in (False, True):
            refused(cli, folder, re.escape(f"{folder}: in use by another run or envelope now (it is locked)"), force)
    finally:
        os.close(held)


LEFTOVERS = ["loss.png.tmp4242", "run.json.tmp4242", "model.ckpt-10.data-00000-of-00001.tempstate7171717171",
             "checkpoint.tmp0123456789abcdef0123456789abcdef"]
THEIRS = {"notes.txt": "mine", "model.ckpt_README.txt": "mine too", "notes.txt.tmp1": "mine"}  # not names of a run's


@pytest.mark.slow
def test_force_replaces_a_run_and_only_the_run(tmp_path, cli):
    out = tmp_path / "run"
    assert cli(*TINY_RUN_DRAWN, "--seed", 1, "--out", out, "--tensorboard").returncode == 0
    assert "tb" in checked_record(out)["files"]  # every file it made listed, and only those

    before = contents(out)
    result = cli(*TINY_RUN, "--seed", 2, "--out", out)  # without --force: refused, untouched
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: --out {out}: the folder exists and is not empty "
                                             f"(give --force to overwrite the files of a run in it)")
    assert contents(out) == before

    for name in LEFTOVERS:  # what a killed run leaves under a temporary name, its own or TensorFlow's
        (out / name).write_text("half")
    for name, text in THEIRS.items():
        (out / name).write_text(text)
    result = cli(*TINY_RUN, "--seed", 2, "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    info = checked_record(out, theirs=THEIRS)
    assert info["seed"] == 2 and "tb" not in info["files"]
    assert {name: (out / name).read_text() for name in THEIRS} == THEIRS


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
