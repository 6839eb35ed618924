"""Stopping a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop a command wherever it is, with 128 + N and one line;
run.json then says how far the run got, and its folder holds what it lists. A run killed outright (SIGKILL) leaves
"running" in a folder nobody holds: evaluate, predict and compare say it died, and --force takes the folder.

Signals come from outside into a real process where the process itself is the point (when exactly they come does
not matter); at a known point of a command run in this process otherwise (conftest.signal_here)."""
import itertools
import json
import math
import os
import signal
import threading
import time

import numpy as np
import pytest

from conftest import (TINY_RUN, TINY_RUN_DRAWN, checked_record, grown, one_error_line, rows, signal_here, started,
                      wait_until)
from echo_rnn_tf1 import failures
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.failures import Interrupted
from echo_rnn_tf1.record import read_losses
from echo_rnn_tf1.train import train_values

# A run far longer than any test waits for, of short epochs (100 steps): a signal in its second epoch comes soon.
LONG_SERIES = 5000
LONG_RUN = ("--num-epochs", 1000, "--total-series-length", LONG_SERIES, "--seed", 0)
SIGNAL_AT = 150  # the step (of the second epoch) a signal comes after
EXIT_CODES = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
# Seconds a process is given to end once stopped or killed: it ends in under a second (a stopped run still saves and
# draws: 2 s); the rest is for a loaded machine, and a process that never ends fails the test instead of hanging it.
ENDS_WITHIN = 120


def at_step(step, num_batches=Config(total_series_length=LONG_SERIES).num_batches):
    """``when`` for signal_here on ``train.after_step``: at overall step ``step`` (0-based) of LONG_RUN."""
    return lambda epoch_idx, batch_idx, *_: epoch_idx * num_batches + batch_idx == step


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code", EXIT_CODES)
def test_a_signal_during_training_stops_it_with_a_truthful_record(tmp_path, cli, monkeypatch, signum, exit_code):
    out = tmp_path / "run"
    if signum == signal.SIGINT:  # from outside, into a real process, whenever it comes
        with started(*LONG_RUN, "--out", out) as process:
            wait_until(rows(out / "losses.csv", SIGNAL_AT), process)
            process.send_signal(signum)
            stdout, stderr = process.communicate(timeout=ENDS_WITHIN)
        returncode = process.returncode
    else:  # the same handler, in this process, at step SIGNAL_AT
        signal_here(monkeypatch, "train", "after_step", signum, when=at_step(SIGNAL_AT))
        returncode, stdout, stderr = cli(*LONG_RUN, "--out", out)
    name = signal.Signals(signum).name
    assert returncode == exit_code, stderr
    assert "Traceback" not in stderr and f"echo_rnn_tf1: {name} received; training stopped after " in stderr
    info = checked_record(out)
    _, batches, losses = read_losses(out / "losses.csv")
    steps = len(losses)
    assert info["status"] == "interrupted" and info["stage"] == "done" and steps >= SIGNAL_AT
    assert info["cause"] == f"{name} during the training, after {steps} steps"
    assert info["final_loss"] == float(losses[-1])
    log = (out / "train.log").read_text()
    assert stdout.startswith(log) and log.count("Step ") == (batches % 100 == 0).sum()  # what was printed, all of it
    # What it learned so far is saved, and drawn.
    assert info["checkpoint"]["prefix"] == f"model.ckpt-{steps}" and (out / "predictions.png").exists()


@pytest.mark.slow
def test_the_checkpoint_of_a_stopped_run_holds_the_steps_it_records(tmp_path, cli, monkeypatch, tf):
    # A signal from outside comes, most likely, while a step's session call runs (most of a step's time): Python
    # acts on it as the call returns. Here, the same, at a known step.
    make_callable, calls = tf.compat.v1.Session.make_callable, itertools.count(1)

    def signalled_after_the_call(session, *args, **kwargs):
        step = make_callable(session, *args, **kwargs)

        def run(*feeds):
            values = step(*feeds)
            if next(calls) == SIGNAL_AT + 1:
                os.kill(os.getpid(), signal.SIGINT)
            return values
        return run

    monkeypatch.setattr(tf.compat.v1.Session, "make_callable", signalled_after_the_call)
    out = tmp_path / "run"
    assert cli(*LONG_RUN, "--out", out, "--no-pictures").returncode == 130
    monkeypatch.undo()
    info = checked_record(out)

    def stop_after(steps):
        count = itertools.count(1)

        def on_step(epoch_idx, batch_idx, loss):
            if next(count) == steps:
                raise KeyboardInterrupt
        return on_step

    values = train_values(Config(num_epochs=1000, total_series_length=LONG_SERIES), 0, log=lambda line: None,
                          on_step=stop_after(info["steps_done"])).values  # the weights after that many updates
    saved = tf.train.load_checkpoint(str(out / info["checkpoint"]["prefix"]))
    assert all(np.array_equal(saved.get_tensor(name), value) for name, value in values.items())


@pytest.mark.slow
def test_a_signal_before_training_leaves_nothing_in_the_way(tmp_path):
    # (SIGTERM here, SIGINT while evaluate loads TensorFlow below: one handler takes both, in the same block)
    signum, out = signal.SIGTERM, tmp_path / "run"
    with started(*LONG_RUN, "--out", out) as process:
        wait_until(grown(out / "run.json", 1), process)  # written before TensorFlow loads
        time.sleep(0.5)  # into the loading (2 s or more): the signal waits for its end
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=ENDS_WITHIN)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum
    assert one_error_line(stderr) == f"echo_rnn_tf1: {name} received during the start; stopped, nothing kept"
    assert not out.exists() and "Step " not in stdout  # nothing was trained: a retry into --out is not refused


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["checkpoint", "pictures"])
def test_a_signal_after_training_ends_the_run_where_it_is(tmp_path, cli, monkeypatch, tf, stage):
    if stage == "checkpoint":  # while TensorFlow's Saver writes the files
        signal_here(monkeypatch, tf.compat.v1.train, "Saver.save")
    else:  # while the held-out predictions are computed, loss.png drawn already
        signal_here(monkeypatch, "evaluate", "held_out_predictions")
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
    assert result.returncode == 130
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: SIGINT received during the {stage}; stopped"
    info = checked_record(out)  # a checkpoint cut short is removed: nothing in the folder that run.json does not list
    assert info["status"] == "interrupted" and info["stage"] == stage and info["steps_done"] == 10
    assert info["cause"] == f"SIGINT during the {stage}, after 10 steps"
    assert (info.get("checkpoint") is not None) == (stage == "pictures")
    assert not (out / "predictions.png").exists()


@pytest.mark.slow
def test_a_second_signal_does_not_cut_the_first_ones_ending_short(tmp_path, cli, monkeypatch):
    # Ctrl-C pressed twice: the first stops training (once the step in progress, the sixth, is recorded), the
    # second (while the run saves and draws) changes nothing.
    signal_here(monkeypatch, "train", "after_step", when=lambda epoch_idx, batch_idx, *_: batch_idx == 5)
    signal_here(monkeypatch, "evaluate", "held_out_predictions")
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
    assert result.returncode == 130 and "SIGINT received; training stopped after 6 steps" in result.stderr
    info = checked_record(out)
    assert info["status"] == "interrupted" and info["stage"] == "done" and info["steps_done"] == 6
    assert info["checkpoint"]["prefix"] == "model.ckpt-6" and (out / "predictions.png").exists()


@pytest.mark.slow
def test_a_signal_as_the_last_step_ends_keeps_what_was_learned(tmp_path, cli, monkeypatch):
    # While the trained weights are read, once the last step is recorded (tens of ms for a large net): they are kept.
    calls = itertools.count(1)
    signal_here(monkeypatch, "train", "trained_variables", when=lambda *_: next(calls) == 2)  # (1: the start's)
    out = tmp_path / "run"
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 130 and "SIGINT received; training stopped after 10 steps" in result.stderr
    info = checked_record(out)
    assert info["status"] == "interrupted" and info["stage"] == "done" and info["steps_done"] == 10
    assert info["checkpoint"]["prefix"] == "model.ckpt-10"


@pytest.mark.slow
def test_a_signal_during_the_verdict_leaves_the_finished_record(tmp_path, cli, monkeypatch):
    signal_here(monkeypatch, "run", "verdict")
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
    assert result.returncode == 130
    assert one_error_line(result.stderr) == "echo_rnn_tf1: SIGINT received; stopped"
    info = checked_record(out)  # every file is there: the run finished
    assert info["status"] == "finished" and info["stage"] == "done" and (out / "predictions.png").exists()
    assert "Compared with the 2017 run" not in result.stdout


@pytest.mark.slow
def test_a_signal_on_the_step_that_diverges_saves_no_nan_weights(tmp_path, cli, monkeypatch):
    # 1e38 (the largest float32 is 3.4e38) sends the loss to inf at step 2; the signal comes on that step, before
    # the divergence is seen: the step ends as it ends, diverged, and so does the run (the stop asked for is done).
    signal_here(monkeypatch, "train", "after_step", when=lambda epoch_idx, batch_idx, loss, *_: not math.isfinite(loss))
    out = tmp_path / "run"
    result = cli(*TINY_RUN_DRAWN, "--learning-rate", "1e38", "--seed", 0, "--out", out)
    assert result.returncode == 1, result.stderr
    info = checked_record(out)
    _, _, losses = read_losses(out / "losses.csv")
    assert info["status"] == "diverged" and not np.isfinite(losses[-1]) and info["steps_done"] == len(losses)
    assert "checkpoint" not in info and not list(out.glob("model.ckpt-*"))  # a diverged run keeps none
    assert (out / "loss.png").exists()


@pytest.mark.slow
def test_tf2_stops_at_an_epochs_end_with_that_epochs_weights(tmp_path, cli, monkeypatch):
    out = tmp_path / "run"
    calls = itertools.count(1)
    signal_here(monkeypatch, "tf2", "Engine.train_epoch", when=lambda *_: next(calls) == 3)  # as the third epoch starts
    result = cli("--engine", "tf2", "--num-epochs", 5000, "--seed", 0, "--out", out)
    assert result.returncode == 130, result.stderr
    info = checked_record(out)
    # An epoch is one compiled call: the one in progress ends and is recorded, and its weights are saved.
    assert info["status"] == "interrupted" and info["steps_done"] == 3000
    assert info["checkpoint"]["prefix"] == "model.ckpt-3000"


# An --unroll graph of a 1000-step window: building it took 23 s here (a copy of the cell per step, in Python; on a
# loaded machine), during which the old shell held a signal back: it ended 21.8 s after the SIGTERM.
BUILDING = ("--unroll", "--truncated-backprop-length", 1000, "--total-series-length", 5000, "--num-epochs", 1)
PROMPT_SECONDS = 5  # from the signal to the exit: under 0.1 s measured; far below the building's 23 s all the same


@pytest.mark.slow
def test_a_signal_while_the_graph_is_built_stops_it_at_once(tmp_path):
    out = tmp_path / "run"
    with started(*BUILDING, "--seed", 0, "--out", out) as process:
        wait_until(lambda: (out / "run.json").exists() and '"stage": "training"' in (out / "run.json").read_text(),
                   process)  # written just before the graph is built
        time.sleep(0.5)  # into the building
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=ENDS_WITHIN)
        took = time.monotonic() - sent
    assert process.returncode == 143 and took < PROMPT_SECONDS, (took, stderr)
    assert one_error_line(stderr) == "echo_rnn_tf1: SIGTERM received during the training; stopped"
    info = checked_record(out)
    assert info["status"] == "interrupted" and info["steps_done"] == 0


@pytest.mark.slow
def test_a_training_folder_is_not_taken_and_a_killed_run_is_reported_as_died(tmp_path, cli):
    out = tmp_path / "run"
    with started(*LONG_RUN, "--out", out) as first:
        wait_until(rows(out / "losses.csv", SIGNAL_AT), first)
        for force in ([], ["--force"]):  # (the lock is another process's)
            result = cli(*TINY_RUN, "--out", out, *force)
            assert result.returncode == 2
            assert one_error_line(result.stderr) == (
                f"echo_rnn_tf1: error: {out}: in use by another run or envelope now (it is locked); wait for it to "
                f"end, or choose another folder")
        result = cli("evaluate", out)
        assert result.returncode == 2
        assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {out}: no checkpoint (status running: the "
                                                 f"run is training now)")
        assert first.poll() is None
        first.kill()  # SIGKILL: no handler runs
        first.communicate(timeout=ENDS_WITHIN)
    lines = (out / "losses.csv").read_text().splitlines()
    _, batches, _ = read_losses(out / "losses.csv")
    assert len(lines) - 1 == len(batches) >= SIGNAL_AT  # every row whole, none torn
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "running" and info["stage"] == "training"  # as it was when killed

    died = f"{out}: no checkpoint (status running: it died before it saved one)"
    for command in (["evaluate", out], ["predict", out, "0" * 10]):
        result = cli(*command)
        assert result.returncode == 2 and one_error_line(result.stderr) == f"echo_rnn_tf1: error: {died}"
    result = cli("compare", out)
    assert result.returncode == 1  # (it changed the source's hyperparameters: no verdict)
    assert "this run is not finished: died (killed, or out of memory, before its end was recorded)" in result.stdout

    result = cli(*TINY_RUN, "--seed", 1, "--out", out, "--force")  # nobody holds the folder: it is taken
    assert result.returncode == 0, result.stderr
    assert checked_record(out)["status"] == "finished"


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
    result = cli(*TINY_RUN_DRAWN, "--seed", 0, "--out", out)
    assert result.returncode == 0 and "SIGHUP" not in result.stderr, result.stderr
    info = checked_record(out)
    assert info["status"] == "finished" and info["steps_done"] == 10
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # and left ignored


def test_only_the_ignored_signal_is_left_alone(sighup_ignored):
    with pytest.raises(Interrupted, match="SIGINT"), failures.stop_signals_raise():
        signal.raise_signal(signal.SIGHUP)  # ignored: nothing happens
        signal.raise_signal(signal.SIGINT)
        raise AssertionError("SIGINT did not stop the block")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers as they were
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


@pytest.mark.slow
def test_a_signal_while_evaluate_works_is_one_line(tiny_run):
    signum = signal.SIGINT  # (Ctrl-C; SIGTERM while training loads TensorFlow above)
    with started("evaluate", tiny_run) as process:
        time.sleep(1.0)  # evaluate is loading TensorFlow (2 s or more) by now
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=ENDS_WITHIN)
    assert process.returncode == 128 + signum
    assert one_error_line(stderr) == f"echo_rnn_tf1: {signal.Signals(signum).name} received; stopped"


def test_a_signal_caught_on_its_way_is_still_the_exit_code(monkeypatch, capsys):
    # A library's ``except BaseException`` can catch the Interrupted a signal raised; the command then goes on to
    # its end, and its exit code must still say it was stopped.
    from echo_rnn_tf1 import cli

    def command(argv):
        try:
            signal.raise_signal(signal.SIGTERM)
        except BaseException:
            pass
        return 0

    monkeypatch.setitem(cli.COMMANDS, "compare", command)
    assert cli.main(["compare", "x"]) == 143
    assert one_error_line(capsys.readouterr().err) == "echo_rnn_tf1: SIGTERM received; stopped"


def test_a_signal_that_reaches_another_thread_stops_the_wait_for_a_worker_at_once():
    # The kernel may hand a process's signal to any of its threads; Python then acts on it in the main thread, but a
    # main thread asleep in a wait is not woken (an envelope, waiting for a chunk's whole training: it ran on past
    # a SIGTERM for over 30 s). failures.completed wakes it to act.
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Event()

    def work():
        time.sleep(0.5)  # the main thread waits by now
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread, not the waiting one
        return gate.wait(60)

    with ThreadPoolExecutor(1) as pool:
        future, started = pool.submit(work), time.monotonic()
        with pytest.raises(Interrupted, match="SIGTERM"), failures.stop_signals_raise():
            list(failures.completed([future]))
        waited = time.monotonic() - started
        gate.set()
    assert waited < 10, waited  # 0.5 s measured (the worker's 0.5 s); without waking, the worker's whole 60 s
