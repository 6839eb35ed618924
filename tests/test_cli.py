"""The command line end to end: a run writes every file and says what it did; a run without a seed records one that
replays; bad flags and values are refused in one line before anything is loaded or written. In fresh processes
where the process is what is tested, in this one otherwise."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, TINY_RUN, TINY_RUN_DRAWN, checked_record, one_error_line, run_cli
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.plots import loss_figure, save_figure
from echo_rnn_tf1.record import read_losses


@pytest.mark.slow
def test_short_run_writes_every_file(tmp_path, cli):
    # (In this process: what a fresh one prints on stderr is test_full_run's.)
    out = tmp_path / "run"
    result = cli("--num-epochs", 2, "--total-series-length", 5000, "--seed", 3, "--out", out)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= {"train.log", "losses.csv", "run.json", "loss.png", "predictions.png",
                                             "checkpoint"}

    log = (out / "train.log").read_text().splitlines()
    assert log[:2] == ["New data, epoch 0", log[1]] and log[1].startswith("Step 0 Batch loss ")
    assert log[2] == "New data, epoch 1" and len(log) == 4           # 100 steps an epoch: one loss line each
    assert "\n".join(log) in result.stdout                           # train.log is exactly what was printed

    epochs, batches, losses = read_losses(out / "losses.csv")
    assert (out / "losses.csv").read_text().startswith("epoch,batch,loss\n")
    assert epochs.tolist() == [0] * 100 + [1] * 100 and batches.tolist() == list(range(100)) * 2
    assert losses.dtype == np.float32
    assert log[1] == f"Step 0 Batch loss {losses[0]!s}"                # the CSV round-trips the printed float32

    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["seed"] == 3 and info["steps_done"] == 200
    assert info["config"]["num_epochs"] == 2 and info["config"]["learning_rate"] == 0.3
    assert set(info["versions"]) == {"python", "tensorflow", "tf-keras", "numpy"}
    assert info["train_seconds"] > 0 and info["final_loss"] == float(losses[-1])
    for picture in ("loss.png", "predictions.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_figure(loss_figure(losses, 100), tmp_path / "loss.png")
    assert (out / "loss.png").read_bytes() == (tmp_path / "loss.png").read_bytes()
    *_, folder_line, verdict_line = result.stdout.splitlines()
    assert folder_line.startswith(f"Run folder {out}: ") and "losses.csv" in folder_line
    assert verdict_line == ("Compared with the 2017 run: not comparable, this run changed the source's "
                            "num_epochs, total_series_length")
    # compare on the folder: the same verdict (exit 1), the table for reading only
    compared = cli("compare", out)
    assert compared.returncode == 1 and compared.stdout.splitlines()[-1] == (
        "not comparable with the 2017 run: this run changed the source's num_epochs, total_series_length (the table "
        "is for reading, not a verdict)")


@pytest.mark.slow
def test_run_without_seed_records_one_that_replays(tmp_path, cli):
    first, again = tmp_path / "first", tmp_path / "again"
    assert cli("--num-epochs", 1, "--total-series-length", 1000, "--out", first, "--no-pictures").returncode == 0
    seed = json.loads((first / "run.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert cli("--num-epochs", 1, "--total-series-length", 1000, "--seed", seed, "--out", again).returncode == 0
    assert (first / "losses.csv").read_text() == (again / "losses.csv").read_text()
    # --no-pictures draws none, and leaves the rest as it was
    pictures = {"loss.png", "predictions.png", "memory.png", "states.png", "weights.png"}
    assert {p.name for p in again.iterdir()} - {p.name for p in first.iterdir()} == pictures
    assert checked_record(first)["status"] == "finished" and not pictures & set(checked_record(first)["files"])


@pytest.mark.slow
def test_default_out_is_a_new_folder_under_runs(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli(*TINY_RUN, "--seed", 5)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.endswith("-seed5") and (folder / "run.json").exists()
    # Two runs of one seed started in the same second (a script's, say) get two folders, as two envelopes do
    monkeypatch.setattr(time, "strftime", lambda form, *args: "20260101-000000")
    for _ in range(2):
        assert cli(*TINY_RUN, "--seed", 5).returncode == 0
    assert sorted(f.name for f in (tmp_path / "runs").iterdir() if f != folder) == [
        "20260101-000000-seed5", "20260101-000000-seed5-2"]


def test_help_does_not_import_tensorflow_or_matplotlib():
    code = ("import sys\nfrom echo_rnn_tf1.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('tensorflow', 'matplotlib') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "--truncated-backprop-length" in result.stdout
    assert "HEAVY []" in result.stdout
    # Each hyperparameter says what it means (the source's own comment too) and its default; nothing says None.
    assert "隐藏层大小 (default: 4)" in result.stdout and "全部数据一共反复训练次数 (default: 5)" in result.stdout
    assert "(default: None)" not in result.stdout and "(default: False)" not in result.stdout


@pytest.mark.slow
def test_a_run_of_fewer_than_four_windows_a_row_draws_what_it_has(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("--total-series-length", 150, "--num-epochs", 1, "--seed", 0, "--out", out)
    assert result.returncode == 0, result.stderr  # 3 windows a row: the picture shows 3
    assert checked_record(out)["status"] == "finished" and (out / "predictions.png").exists()
    assert result.stdout.splitlines()[-1].startswith("Compared with the 2017 run: ")


def test_a_run_folder_with_a_line_break_is_named_on_one_line(tmp_path, cli):
    out = tmp_path / "two\nlines"
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 0, result.stderr
    *_, folder_line, verdict_line = result.stdout.splitlines()
    shown = str(out).replace("\n", "\\n")
    assert folder_line.startswith(f"Run folder {shown}: ") and verdict_line.startswith("Compared with the 2017 run: ")


@pytest.mark.slow
def test_the_largest_seed_works_end_to_end(tmp_path, cli):
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--seed", 2**32 - 1, "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "predictions.png").exists()  # its held-out batch wraps to seed 0


@pytest.mark.parametrize("args, says", [
    (["--num-epochs", 0], "--num-epochs 0: must be a positive integer"),
    (["--batch-size", -5], "--batch-size -5: must be a positive integer"),
    (["--state-size", 0], "--state-size 0: must be a positive integer"),
    (["--truncated-backprop-length", 0], "--truncated-backprop-length 0: must be a positive integer"),
    (["--num-classes", 1], "--num-classes 1: must be an integer of at least 2"),
    (["--echo-step", 10], "--echo-step 10: must be an integer from 0 to truncated_backprop_length - 1 (9)"),
    (["--echo-step", -1], "--echo-step -1: must be an integer from 0 to truncated_backprop_length - 1"),
    (["--total-series-length", 50005], "--total-series-length 50005: must be a multiple of batch_size * "
                                       "truncated_backprop_length (50)"),
    (["--learning-rate", 0], "--learning-rate 0.0: must be a number greater than 0"),
    (["--learning-rate", "nan"], "--learning-rate nan: must be a number greater than 0"),
    (["--learning-rate", "inf"], "--learning-rate inf: must be a number greater than 0 and finite in float32"),
    (["--learning-rate", "1e39"], "--learning-rate 1e+39: must be a number greater than 0 and finite in float32"),
    (["--learning-rate", "1e-46"], "finite in float32 (from 1.401e-45"),  # 0 in float32
    (["--learning-rate", "3.4028236e38"], "finite in float32"),  # rounds past float32's largest, 3.4028235e38
    (["--batch-size", "five"], "argument --batch-size: invalid int value: 'five'"),
    (["--learning-rate", "fast"], "argument --learning-rate: invalid float value: 'fast'"),
    # numbers as Python writes them: int() and float() also read other scripts' digits, "_" and spaces
    (["--num-epochs", "\u0663"], "argument --num-epochs: invalid int value: '\u0663'"),  # an Arabic-Indic 3
    (["--num-epochs", "1_0"], "argument --num-epochs: invalid int value: '1_0'"),
    (["--batch-size", " 5"], "argument --batch-size: invalid int value: ' 5'"),
    (["--num-epochs", "05"], "argument --num-epochs: invalid int value: '05'"),  # (int() reads these two)
    (["envelope", "--seeds", "+5"], "argument --seeds: invalid int value: '+5'"),
    (["--seed", "007"], "argument --seed: invalid seed '007': not a whole number as Python writes it"),
    (["--learning-rate", "\u0660.\u0663"], "argument --learning-rate: invalid float value: '\u0660.\u0663'"),
    (["--seed", "\u0663"], "argument --seed: invalid seed '\u0663': not a whole number"),
    (["envelope", "--seeds", "\u0662"], "argument --seeds: invalid int value: '\u0662'"),
    (["--num-epochs", str(10**23)], f"--num-epochs {10**23}: {10**26:,} steps (1000 an epoch), more than 10,000,000"),
    (["--num-epochs", 10001], "--num-epochs 10001: 10,001,000 steps (1000 an epoch), more than 10,000,000"),
    (["--no-such-flag", 1], "unrecognized arguments: --no-such-flag 1"),
    (["--num-ep", 1], "unrecognized arguments: --num-ep 1"),  # a flag is spelt whole: no abbreviations
    (["envelope", "--seed", 2], "unrecognized arguments: --seed 2"),  # (training's flag: not --seeds)
    # the source's variable names, as flags: the flags' spelling as a hint
    (["--num_epochs", 1], "unrecognized arguments: --num_epochs 1 (did you mean --num-epochs?)"),
    (["--learning_rate=0.1", 1], "unrecognized arguments: --learning_rate=0.1 1 (did you mean --learning-rate?)"),
    (["comapre", 1], "no command 'comapre'; the commands are compare, doctor, envelope, evaluate, predict, and "
                     "without one the flags train a run"),
    # sizes no computer of today holds (config.py's limits), refused on their face
    (["--state-size", 10**6], "--state-size 1000000 --num-classes 2 --num-layers 1 --cell basic: 2e+12 weights, "
                              "more than 1e+08"),
    (["--num-classes", 10**9], "--num-classes 1000000000 --num-layers 1 --cell basic: 9e+09 weights"),
    (["--total-series-length", 10**9], "--total-series-length 1000000000: more than 1e+08 bits"),
    (["--batch-size", 10**7, "--total-series-length", 10**8], "--batch-size 10000000 --truncated-backprop-length "
                                                              "10: 4e+08 activations a step"),
    (["--unroll", "--truncated-backprop-length", 1001, "--total-series-length", 5005],
     "--unroll: a copy of the cell per step of a window of 1001; up to 1000 (without --unroll, any)"),
    (["--engine", "tf2", "--unroll"], "--unroll: only with --engine tf1"),
    (["--engine", "tf2", "--portable"], "--portable: only with --engine tf1"),
    (["--seed", "-1"], "argument --seed: invalid seed -1: must be from 0 to 2**32 - 1"),
    (["--seed", str(2**32)], "argument --seed: invalid seed 4294967296"),
    (["--seed", "x"], "argument --seed: invalid seed 'x': not a whole number"),
    (["envelope", "--seeds", "2", "--first-seed", str(2**32 - 1)],
     "--first-seed 4294967295 --seeds 2: the last seed would pass"),
    (["envelope", "--seeds", str(10**11)], f"--first-seed 0 --seeds {10**11}: the last seed would pass"),
    (["envelope", "--seeds", "0"], "--seeds 0: must be a positive integer"),
    (["evaluate", "somewhere", "--seed", "-3"], "argument --seed: invalid seed -3"),
    (["--out", ""], "argument --out: an empty path (leave --out out for a new folder under runs/)"),
    (["envelope", "--out", ""], "argument --out: an empty path"),
])
def test_bad_input_is_refused_in_one_line_before_anything_is_written(tmp_path, cli, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = cli(*args, *([] if "--out" in args else ["--out", "run"]))
    assert result.returncode == 2 and result.stdout == ""
    assert says in one_error_line(result.stderr) and result.stderr.count("\n") == 1, result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written: no run folder, no runs/


def test_a_rate_is_taken_up_to_float32s_largest_as_numpy_prints_it():
    assert Config(learning_rate=3.4028235e38).learning_rate == 3.4028235e38  # (float32's largest, rounded up)
    assert Config(learning_rate=1e-45).learning_rate == 1e-45  # (rounds to its smallest)


def test_version_is_the_installed_one(capsys):
    from importlib import metadata

    from echo_rnn_tf1.cli import main

    with pytest.raises(SystemExit) as stopped:  # (as --help: argparse prints, then exits 0)
        main(["--version"])
    assert stopped.value.code == 0 and capsys.readouterr().out == f"echo_rnn_tf1 {metadata.version('echo-rnn-tf1')}\n"


def test_bad_input_is_refused_before_tensorflow_is_imported():
    code = ("import sys\nfrom echo_rnn_tf1.cli import main\n"
            "print(main(['--echo-step', '99']), main(['--state-size', str(10**6)]), 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # (0.3 s without TensorFlow)
    assert result.stdout.strip() == "2 2 False", result.stderr


def test_a_bad_value_is_all_a_real_process_says(tmp_path):
    # (the cases above run in this process: here a real one's whole output, nothing before or after the line)
    result = run_cli("--batch-size", "five", "--out", tmp_path / "run")
    assert result.returncode == 2 and result.stdout == "" and not (tmp_path / "run").exists()
    assert result.stderr == ("echo_rnn_tf1: error: python -m echo_rnn_tf1: argument --batch-size: invalid int value: "
                             "'five'\n")


def test_an_out_that_cannot_be_a_run_folder_is_refused(tmp_path, cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli(*TINY_RUN, "--out", blocker / "run")
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: --out {blocker / 'run'}: cannot write there "
                                             f"(Not a directory)")
    # --out naming a file, and a file given where a run folder goes: said so, the file untouched
    result = cli(*TINY_RUN, "--out", blocker)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: --out {blocker}: not a folder (a file, or a link "
                                             f"to nothing)")
    for args in (["evaluate", blocker], ["predict", blocker, "0110"], ["compare", tmp_path]):
        result = cli(*args)
        assert result.returncode == 2
        assert one_error_line(result.stderr) in (f"echo_rnn_tf1: error: {blocker}: not a folder (a run folder holds "
                                                 f"run.json and the files it lists)",
                                                 f"echo_rnn_tf1: error: {tmp_path}: a folder without a train.log: "
                                                 f"give a run folder or a log file")
    assert blocker.read_text() == ""
    # a name the file system cannot hold, or not UTF-8 (a Latin-1 byte, as a file system may hold: TensorFlow
    # would fail to save the checkpoint at the end)
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/odd\xffA")
    for out, says in [(tmp_path / ("x" * 300), "cannot write there (File name too long)"),
                      (odd, "not UTF-8, and TensorFlow saves a checkpoint only under a UTF-8 path")]:
        result = cli(*TINY_RUN, "--out", out)
        assert result.returncode == 2 and says in one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_link_to_nothing_and_a_name_not_utf_8_are_told_alike_by_every_command(tmp_path, cli):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    for command in ([*TINY_RUN], ["envelope", "--seeds", 1]):
        result = cli(*command, "--out", link)
        assert result.returncode == 2 and one_error_line(result.stderr) == (
            f"echo_rnn_tf1: error: --out {link}: not a folder (a file, or a link to nothing)")
    assert os.readlink(link) == str(tmp_path / "nowhere") and not (tmp_path / "nowhere").exists()
    # a byte that is not UTF-8 shows as \xff, as a line break shows as \n: in every command's one line
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/odd\xffA")
    shown = f"{tmp_path}/odd\\xffA"
    for command in (["compare", odd], ["evaluate", odd], ["envelope", "--out", odd], [*TINY_RUN, "--out", odd]):
        result = cli(*command)
        assert result.returncode == 2 and f" {shown}:" in one_error_line(result.stderr), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]
