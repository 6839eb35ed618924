"""The run folder: a run writes its files there and run.json lists them; --force removes those (and what a killed
run left half written) and nothing else; a folder whose run trains is not taken (it is locked)."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_RUN, TINY_RUN_DRAWN, checked_record, one_error_line, run_record
from echo_rnn_tf1.record import lock


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
    (lambda f, outside: ((f / "tb" / "events.out.tfevents.archive").mkdir(parents=True),  # (a folder: not TensorBoard's)
                         (f / "tb" / "events.out.tfevents.archive" / "mine.txt").write_text("mine")),
     "tb/ holds events.out.tfevents.archive"),
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
    (["../outside.txt"], "unreadable run record (files: '../outside.txt' is not a name a run gives its files)"),
    (["/etc/passwd"], "unreadable run record (files: '/etc/passwd' is not a name a run gives its files)"),
    (["a/b/c"], "unreadable run record (files: 'a/b/c' is not a name a run gives its files)"),
    ([3], "unreadable run record (files: 3 is not a name a run gives its files)"),
    (["outside.txt"], "unreadable run record (files: 'outside.txt' is not a name a run gives its files)"),  # a user's file
    (["tb/outside.txt"], "unreadable run record (files: 'tb/outside.txt' is not a name a run gives its files)"),
    (["train.log"] * 9 + ["notes.txt"], "unreadable run record (files: 'notes.txt' is not a name a run gives its files)"),
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
             "checkpoint.tmp0123456789abcdef0123456789abcdef",
             "tb/events.out.tfevents.1796568555.host"]  # (TensorBoard's file, not listed until the run ends)
THEIRS = {"notes.txt": "mine", "model.ckpt_README.txt": "mine too", "notes.txt.tmp1": "mine",
          "model.ckpt-notes.txt": "mine", "train.log.tmp1": "mine", "losses.csv.tmpab": "mine",
          "tb.tmp1": "mine"}  # not names of a run's, nor what a run leaves (it writes those three in place)


@pytest.mark.slow
def test_force_replaces_a_run_and_only_the_run(tmp_path, cli):
    out = tmp_path / "run"
    assert cli(*TINY_RUN_DRAWN, "--seed", 1, "--out", out, "--tensorboard").returncode == 0
    assert "tb" in checked_record(out)["files"]  # every file it made listed, and only those

    before = contents(out)
    result = cli(*TINY_RUN, "--seed", 2, "--out", out)  # without --force: refused, untouched
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: --out {out}: the folder exists and is not empty "
                                             f"(give --force to replace the run in it)")
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


# Killed outright (SIGKILL) the moment after a file of its own is made: as its folder is made (its logs open), or as
# its first picture is written. Whatever the moment, run.json lists the file first, and --force takes the folder.
KILLED_AT = {"its logs made": ("echo_rnn_tf1.folder", "RunFolder", "_append"),
             "its first picture written": ("echo_rnn_tf1.plots", None, "save_figure")}


@pytest.mark.slow
@pytest.mark.parametrize("moment", list(KILLED_AT))
def test_a_run_killed_the_moment_it_made_a_file_leaves_a_folder_force_takes(tmp_path, cli, moment):
    module, owner, name = KILLED_AT[moment]
    out = tmp_path / "run"
    code = (f"import importlib, os, signal, sys\nfrom echo_rnn_tf1.cli import main\n"
            f"where = importlib.import_module({module!r})\nwhere = getattr(where, {owner!r}) if {owner!r} else where\n"
            f"made = getattr(where, {name!r})\n"
            f"def killed(*args):\n    made(*args)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
            f"setattr(where, {name!r}, killed)\n"
            f"main(['--num-epochs', '1', '--total-series-length', '500', '--out', {str(out)!r}])\n")
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    result = cli(*TINY_RUN, "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    checked_record(out)
