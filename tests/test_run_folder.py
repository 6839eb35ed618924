"""Nothing of the user's is deleted: --force removes only the files a run.json lists as its run's, follows no
link, and refuses a folder holding no run.json; a run folder is locked while its run trains, and a killed run's
rows are whole."""
import json
import os
import re

import pytest

from conftest import TINY_RUN, grown, one_error_line, rows, started, wait_until
from echo_rnn_tf1.runs import RunError, RunWriter, read_losses


def make_run(folder, files=("train.log", "losses.csv", "run.json", "loss.png", "checkpoint",
                            "model.ckpt-10.index", "model.ckpt-10.data-00000-of-00001")):
    """A run folder as a finished run leaves it, its run.json listing ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        if name != "run.json":
            (folder / name).parent.mkdir(exist_ok=True)
            if "." in name or "/" in name or name == "checkpoint":
                (folder / name).write_text(f"old {name}")
    (folder / "run.json").write_text(json.dumps({"status": "finished", "files": list(files)}))


def contents(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_force_refuses_a_folder_without_run_json_and_removes_nothing(tmp_path):
    # Another project's folder: names like a run's, but no run.json says they are one.
    folder = tmp_path / "theirs"
    folder.mkdir()
    for name in ("checkpoint", "model.ckpt-5.index", "model.ckpt_README.txt", "tb/events.out.tfevents.1.host",
                 "train.log"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text("theirs")
    before = contents(folder)
    with pytest.raises(RunError, match="holds no run.json, so nothing in it is known to be a run's"):
        RunWriter(folder, force=True)
    assert contents(folder) == before


def test_force_removes_the_listed_files_only(tmp_path):
    folder = tmp_path / "run"
    make_run(folder, files=("train.log", "losses.csv", "run.json", "loss.png", "tb", "tb/events.out.tfevents.1.h"))
    (folder / "notes.txt").write_text("mine")
    (folder / "model.ckpt_README.txt").write_text("mine too")  # not a name the package writes
    run = RunWriter(folder, force=True)
    try:
        assert not (folder / "loss.png").exists() and not (folder / "tb").exists()
        assert (folder / "notes.txt").read_text() == "mine" and (folder / "model.ckpt_README.txt").exists()
        assert (folder / "train.log").read_text() == "" and json.loads((folder / "run.json").read_text())["files"] == [
            "train.log", "losses.csv", "run.json.reserve", "run.json"]
    finally:
        run.close()
    assert not (folder / "run.json.reserve").exists()


def test_force_removes_what_a_killed_run_was_writing(tmp_path):
    # Killed while it wrote a file, a run leaves it under a temporary name: its own (loss.png.tmp<pid>), TensorFlow's
    # (a checkpoint file's .tempstate<n>, checkpoint.tmp<hex>). --force refused the folder for them ("in the way").
    folder = tmp_path / "run"
    make_run(folder)
    leftovers = ["loss.png.tmp4242", "run.json.tmp4242", "model.ckpt-10.data-00000-of-00001.tempstate7171717171",
                 "checkpoint.tmp0123456789abcdef0123456789abcdef"]
    for name in leftovers:
        (folder / name).write_text("half")
    (folder / "notes.txt.tmp1").write_text("mine")  # not a name the package writes
    run = RunWriter(folder, force=True)
    try:
        assert [name for name in leftovers if (folder / name).exists()] == []
        assert (folder / "notes.txt.tmp1").read_text() == "mine"
    finally:
        run.close()


@pytest.mark.parametrize("make, says", [
    (lambda f, outside: (f / "tb").symlink_to(outside), "tb is a symbolic link"),
    (lambda f, outside: (f / "loss.png").symlink_to(outside / "precious.txt"), "loss.png is a symbolic link"),
    (lambda f, outside: (f / "predictions.png").write_text("mine"), "predictions.png is in the way and run.json does "
                                                                   "not list it"),
    (lambda f, outside: (f / "model.ckpt-99.index").write_text("mine"), "model.ckpt-99.index is in the way"),
    (lambda f, outside: ((f / "tb").mkdir(), (f / "tb" / "mine.txt").write_text("mine")), "tb/ holds mine.txt"),
])
def test_force_refuses_before_removing_anything_when_something_else_is_in_the_way(tmp_path, make, says):
    folder, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious")
    make_run(folder, files=("train.log", "losses.csv", "run.json", "loss.png", "tb"))
    (folder / "loss.png").unlink()
    make(folder, outside)
    before, outside_before = contents(folder), contents(outside)
    with pytest.raises(RunError, match=says):
        RunWriter(folder, force=True)
    assert contents(folder) == before and contents(outside) == outside_before


@pytest.mark.parametrize("files, says", [
    (None, "lists no files of the run"), ("train.log", "lists no files of the run"),
    (["../outside.txt"], "lists '../outside.txt', not a file of the run's folder"),
    (["/etc/passwd"], "lists '/etc/passwd', not a file of the run's folder"),
    (["a/b/c"], "lists 'a/b/c', not a file of the run's folder"), ([3], "lists 3, not a file of the run's folder"),
    (["tb/x"], "lists tb/x but not its folder"),
])
def test_force_refuses_a_run_json_whose_file_list_is_not_one(tmp_path, files, says):
    folder = tmp_path / "run"
    make_run(folder)
    info = {"status": "finished"} if files is None else {"status": "finished", "files": files}
    (folder / "run.json").write_text(json.dumps(info))
    (tmp_path / "outside.txt").write_text("precious")
    before = contents(folder)
    with pytest.raises(RunError, match=f"run.json: {re.escape(says)}"):
        RunWriter(folder, force=True)
    assert contents(folder) == before and (tmp_path / "outside.txt").read_text() == "precious"


def test_a_folder_is_locked_while_its_run_trains(tmp_path):
    folder = tmp_path / "run"
    first = RunWriter(folder)
    try:
        for force in (False, True):
            with pytest.raises(RunError, match="a run is training in this folder now"):
                RunWriter(folder, force=force)
        assert json.loads((folder / "run.json").read_text())["status"] == "running"  # untouched
    finally:
        first.close()
    second = RunWriter(folder, force=True)  # unlocked once the first is closed
    second.close()


def test_a_run_lists_exactly_the_files_it_made(tmp_path):
    folder = tmp_path / "run"
    run = RunWriter(folder)
    run.add_files(["loss.png"])
    run.finish(status="finished")
    run.close()
    assert json.loads((folder / "run.json").read_text())["files"] == ["train.log", "losses.csv", "run.json",
                                                                        "loss.png"]
    assert sorted(os.listdir(folder)) == ["losses.csv", "run.json", "train.log"]  # (no loss.png was drawn here)


@pytest.mark.slow
def test_a_training_folder_refuses_a_second_start_and_killed_keeps_every_row(tmp_path, cli):
    out = tmp_path / "run"
    with started("--num-epochs", 1000, "--seed", 0, "--out", out) as first:  # (the lock is another process's)
        wait_until(grown(out / "losses.csv", 1000), first)
        for force in ([], ["--force"]):
            result = cli(*TINY_RUN, "--out", out, *force)
            assert result.returncode == 2 and "a run is training in this folder now" in one_error_line(result.stderr)
        assert first.poll() is None and json.loads((out / "run.json").read_text())["seed"] == 0

        wait_until(rows(out / "losses.csv", 500), first)
        first.kill()  # SIGKILL: no handler runs
        first.communicate(timeout=60)
    lines = (out / "losses.csv").read_text().splitlines()
    epochs, batches, _ = read_losses(out / "losses.csv")
    assert len(lines) - 1 == len(batches) >= 500                   # every line whole, none torn
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    result = cli("evaluate", out)  # no checkpoint, and why
    assert result.returncode == 2
    assert "no checkpoint (status 'running': the run is training, or was killed before it saved one)" in result.stderr


@pytest.mark.slow
def test_force_replaces_a_finished_run_and_keeps_the_rest(tmp_path, cli):
    out = tmp_path / "run"
    assert cli(*TINY_RUN, "--seed", 1, "--out", out, "--tensorboard").returncode == 0
    listed = json.loads((out / "run.json").read_text())["files"]
    assert sorted(listed) == sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # every file, and only those
    (out / "notes.txt").write_text("mine")
    result = cli(*TINY_RUN, "--seed", 2, "--out", out, "--force")
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["seed"] == 2 and not (out / "tb").exists() and (out / "notes.txt").read_text() == "mine"
