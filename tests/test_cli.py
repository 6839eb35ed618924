"""The command line end to end: in fresh processes, as a user runs it, or in this one where the process is not
what is tested."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
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
    assert cli("--num-epochs", 1, "--total-series-length", 1000, "--out", first).returncode == 0
    seed = json.loads((first / "run.json").read_text())["seed"]
    assert isinstance(seed, int)
    assert cli("--num-epochs", 1, "--total-series-length", 1000, "--seed", seed, "--out", again).returncode == 0
    assert (first / "losses.csv").read_text() == (again / "losses.csv").read_text()


@pytest.mark.slow
def test_default_out_is_a_new_folder_under_runs(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("--num-epochs", 1, "--total-series-length", 500, "--seed", 5)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.endswith("-seed5") and (folder / "run.json").exists()


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
