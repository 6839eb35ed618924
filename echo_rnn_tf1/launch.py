"""Train one run into its folder, with either engine: the log and losses as they come, a clean stop on a
signal or a divergence, then the checkpoint, ``run.json``, the pictures and the verdict against 2017.

However the run ends, ``run.json`` says so: ``status`` (finished, diverged, interrupted, failed), ``stage`` (how far
it got: start, training, checkpoint, pictures, done) and ``cause``, and ``steps_done`` equals the rows of
``losses.csv``. A signal is acted on between steps and between files, so nothing is left half written.
"""
import collections
import contextlib
import math
import os
import shutil
import stat
import sys
import time

from . import machine
from .config import SEED_LIMIT, Config
from .failures import EXIT_FAILED, EXIT_OK, DeferredSignals, Interrupted, describe
from .painter import Painter
from .runs import (CHECKPOINT_PREFIX, CHECKPOINT_STATE, LOSS_PNG, LOSSES, PREDICTIONS_PNG, TENSORBOARD,
                   checkpoint_digests, versions)

__all__ = ["EXIT_OK", "EXIT_FAILED", "Interrupted", "train_run"]

Outcome = collections.namedtuple("Outcome", ["status", "exit_code", "cause"])


def train_run(run, config, seed, engine="tf1", unroll=False, tensorboard=False, portable=False, stop=None):
    """Train into ``run`` (a ``RunWriter``); return the exit code: 0 finished, 1 diverged, 128 + signal number.

    ``portable``: the oneDNN settings of ``machine.PORTABLE_ENV`` are in force (the caller applied them before
    TensorFlow loaded), and the update is ``model.exact_adagrad``; recorded in run.json with the machine. ``stop``: the ``DeferredSignals`` installed around
    the command (by default, installed here). A failure is written to run.json as ``"status": "failed"`` with its
    cause, then raised again.
    """
    if stop is None:
        with DeferredSignals().installed() as stop:
            return train_run(run, config, seed, engine, unroll, tensorboard, portable, stop)
    try:
        with Painter.start(stop) as painter:  # (before TensorFlow loads: it readies matplotlib while this process trains)
            outcome = _train_and_draw(run, config, seed, engine, unroll, tensorboard, portable, stop, painter)
    except Interrupted as e:  # after training: during the checkpoint or the pictures
        stage = run.info["stage"]
        run.finish(status="interrupted", cause=f"{e} during the {stage}", steps_done=run.steps_done)
        print(f"echo_rnn_tf1: {e} received during the {stage}; stopped", file=sys.stderr)
        return e.exit_code
    except BaseException as e:
        with contextlib.suppress(Exception):  # the failure itself is what gets reported
            run.finish(status="failed", cause=describe(e)[1], steps_done=run.steps_done)
        raise
    run.finish(status=outcome.status, stage="done", cause=outcome.cause)
    names = [n for n in run.files if "/" not in n and not n.startswith(CHECKPOINT_PREFIX)]
    checkpoint = f", {run.info['checkpoint']['prefix']}" if run.info.get("checkpoint") else ""
    print(f"Run folder {run.path}: {', '.join(sorted(names))}{checkpoint}")
    try:
        stop.check()
        _print_verdict(run, config)
        stop.check()
    except Interrupted as e:
        print(f"echo_rnn_tf1: {e} received; stopped (the run's files are complete)", file=sys.stderr)
        return e.exit_code
    return outcome.exit_code


def _train_and_draw(run, config, seed, engine, unroll, tensorboard, portable, stop, painter):
    """Every stage but the verdict; return the training's ``Outcome``. Raises ``Interrupted`` for a signal
    after training, and whatever fails."""
    writer = None
    try:
        run.write_info(seed=seed, config=config.to_dict(), engine=engine, versions=versions(),
                       **({"rnn": "static_rnn" if unroll else "dynamic_rnn"} if engine == "tf1" else {}),
                       portable=portable, machine=machine.describe())
        stop.check()
        from .tfcompat import import_quiet_tensorflow

        tf = import_quiet_tensorflow()
        run.write_info(machine=machine.describe(tf))  # now with whether this TensorFlow is a CUDA build
        on_step = run.record
        if tensorboard:
            run.add_files([TENSORBOARD])
            on_step, writer = _with_tensorboard(tf, run.file(TENSORBOARD), on_step)
        stop.check()
        run.write_info(stage="training")
        if engine == "tf1":
            outcome, timing = _train_tf1(tf, run, config, seed, unroll, portable, on_step, stop, writer)
        else:
            outcome, timing = _train_tf2(run, config, seed, on_step, stop)
    except Interrupted as e:  # before training began
        outcome, timing = _interrupted(run, e, "start"), {"train_seconds": 0.0}
    finally:
        if writer is not None:
            writer.close()
            run.add_files(f"{TENSORBOARD}/{name}" for name in sorted(os.listdir(run.file(TENSORBOARD))))
    run.write_info(steps_done=run.steps_done, **{k: round(v, 3) for k, v in timing.items()},
                   final_loss=run.last_loss if math.isfinite(run.last_loss or 0.0) else None)
    stop.check()  # (a signal during the checkpoint)
    run.write_info(stage="pictures")
    _plot_run(run, config, seed, trained=bool(run.info.get("checkpoint")), check=stop.check, painter=painter)
    return outcome


def _attempt(run, config, stop, train):
    """Call ``train()``; turn a divergence or an interruption into the run's outcome."""
    from .train import Diverged

    try:
        train()
        return Outcome("finished", EXIT_OK, f"trained all {config.num_epochs} epoch{'s' * (config.num_epochs != 1)}")
    except Diverged as e:
        run.write_info(diverged_at={"epoch": e.epoch_idx, "step": e.batch_idx, "loss": str(e.loss)})
        print(f"echo_rnn_tf1: {e}; training stopped", file=sys.stderr)
        return Outcome("diverged", EXIT_FAILED, str(e))
    except Interrupted as e:
        return _interrupted(run, e, "training")
    finally:
        stop.handled()  # a signal during the last step asked for what has happened anyway: training is over


def _interrupted(run, e, stage):
    print(f"echo_rnn_tf1: {e} received; training stopped after {run.steps_done} steps", file=sys.stderr)
    return Outcome("interrupted", e.exit_code, f"{e} during the {stage}, after {run.steps_done} steps")


def _checked(on_step, stop):
    """``on_step``, then a stop if a signal came; not on a step whose loss diverged, which ends training as diverged."""
    def on_step_checked(epoch_idx, batch_idx, loss):
        on_step(epoch_idx, batch_idx, loss)
        if math.isfinite(loss):
            stop.check()
    return on_step_checked


def _train_tf1(tf, run, config, seed, unroll, portable, on_step, stop, writer):
    """The faithful graph, one session call per step; stops at the step a signal arrives in."""
    from .train import prepare, run_training, session

    graph, model, inputs_value, targets_value = prepare(config, seed, unroll, portable)
    if writer is not None:
        writer.add_graph(graph)
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(save_relative_paths=True)  # the run folder can be moved
        variables = graph.get_collection("trainable_variables")
    with session(graph, portable) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        stop.check()
        start = time.perf_counter()
        outcome = _attempt(run, config, stop, lambda: run_training(sess, model, inputs_value, targets_value, config, log=run.log,
                                                     on_step=_checked(on_step, stop)))
        train_seconds = time.perf_counter() - start
        if outcome.status != "diverged":  # a diverged model's weights are not worth keeping
            _save_checkpoint(run, sess.run(variables),
                             lambda prefix: saver.save(sess, prefix, global_step=run.steps_done))
    return outcome, {"train_seconds": train_seconds}


def _train_tf2(run, config, seed, on_step, stop):
    """The native TF2 engine, an epoch per compiled call; stops at the end of the epoch a signal arrives in."""
    from . import tf2

    engine, windowsX, windowsY = tf2.start(config, seed)
    stop.check()
    compile_seconds = engine.compile(windowsX, windowsY)
    stop.check()
    start = time.perf_counter()
    outcome = _attempt(run, config, stop, lambda: tf2.run_epochs(engine, windowsX, windowsY, run.log, on_step,
                                                   on_epoch=lambda _: stop.check()))
    train_seconds = time.perf_counter() - start
    if outcome.status != "diverged":
        values = engine.values()
        _save_checkpoint(run, values.values(),
                         lambda prefix: tf2.save_checkpoint(prefix, run.steps_done, values))
    return outcome, {"train_seconds": train_seconds, "compile_seconds": compile_seconds}


def _save_checkpoint(run, weights, save):
    """``save(prefix)`` the weights, and record the checkpoint's files and their SHA-256 in run.json; not weights
    that are NaN or infinite (the last update can make them so before any loss shows it)."""
    import numpy as np

    if not all(np.isfinite(w).all() for w in weights):
        run.write_info(checkpoint=None, checkpoint_skipped="the weights are not all finite")
        print("echo_rnn_tf1: the weights are not all finite; no checkpoint saved", file=sys.stderr)
        return
    run.write_info(stage="checkpoint")
    prefix = f"{CHECKPOINT_PREFIX}-{run.steps_done}"
    try:
        save(run.file(CHECKPOINT_PREFIX))
    except BaseException:
        _discard_checkpoint(run.path)  # the Saver's half-written files: ours, as no model.ckpt-* was here before
        raise
    names = [CHECKPOINT_STATE] + sorted(n for n in os.listdir(run.path) if n.startswith(prefix + "."))
    run.add_files(names)
    run.write_info(checkpoint={"prefix": prefix, "sha256": checkpoint_digests(run.path, prefix)})


def _discard_checkpoint(path):
    for name in os.listdir(path):
        if name.startswith((CHECKPOINT_PREFIX + "-", CHECKPOINT_STATE + ".")) or name == CHECKPOINT_STATE:
            target = os.path.join(path, name)
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(target).st_mode):
                    shutil.rmtree(target)
                else:
                    os.remove(target)


def _with_tensorboard(tf, log_dir, on_step):
    """``on_step`` that also writes each step's loss for TensorBoard (no op added to the model's graph); the writer."""
    with tf.Graph().as_default():  # a v1 FileWriter refuses to be made under eager execution
        writer = tf.compat.v1.summary.FileWriter(log_dir)
    step = iter(range(2**62))

    def on_step_tb(epoch_idx, batch_idx, loss):
        value = tf.compat.v1.Summary.Value(tag="loss", simple_value=float(loss))
        writer.add_summary(tf.compat.v1.Summary(value=[value]), global_step=next(step))
        on_step(epoch_idx, batch_idx, loss)

    return on_step_tb, writer


def _plot_run(run, config, seed, trained, check, painter):
    """loss.png (with the 2017 points for the source's settings); predictions.png from the checkpoint, computed here
    while ``painter`` draws loss.png. ``check()`` between the two may stop the run."""
    from .logs import parse_log, read_reference
    from .runs import read_losses

    _, _, losses = read_losses(run.file(LOSSES))
    reference = parse_log(read_reference(), "2017 log") if config == Config() else None
    painter.draw("loss_figure", run.file(LOSS_PNG), losses, config.num_batches, reference)
    try:
        if trained:
            from .evaluate import held_out_predictions, trained_model

            with trained_model(run.path) as (sess, model, _):
                predictions = held_out_predictions(sess, model, config, (seed + 1) % SEED_LIMIT)
    finally:
        painter.wait()
    run.add_files([LOSS_PNG])
    check()
    if trained:
        painter.draw("predictions_figure", run.file(PREDICTIONS_PNG), *predictions, config)
        painter.wait()
        run.add_files([PREDICTIONS_PNG])
        check()


def _print_verdict(run, config):
    """End of training: this run's own log against the 2017 run's."""
    from .compare import compare
    from .logs import LogError, parse_log, read_log, read_reference

    changed = config.changes_from_source()
    if changed:
        print(f"Compared with the 2017 run: not comparable, this run changed the source's {', '.join(changed)}")
        return
    try:
        verdict = compare(read_log(run.file("train.log")), parse_log(read_reference(), "2017 log"))
    except LogError as e:  # e.g. interrupted before the first loss line
        print(f"Compared with the 2017 run: nothing to compare ({e})")
        return
    print(f"Compared with the 2017 run: {verdict.summary}")
