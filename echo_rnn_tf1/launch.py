"""Train one run into its folder, with either engine: the log and losses as they come, a clean stop on a
signal or a divergence, then the checkpoint, ``run.json``, the pictures and the verdict against 2017."""
import collections
import math
import os
import signal
import sys
import time

from . import machine
from .config import SEED_LIMIT, Config
from .runs import CHECKPOINT_PREFIX, LOSS_PNG, LOSSES, PREDICTIONS_PNG, versions

EXIT_OK, EXIT_FAILED = 0, 1

Outcome = collections.namedtuple("Outcome", ["status", "exit_code"])


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during training; the run stops at the next step (or epoch, with tf2)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def train_run(run, config, seed, engine="tf1", unroll=False, tensorboard=False, portable=False):
    """Train into ``run`` (a ``RunWriter``); return the exit code: 0 finished, 1 diverged, 128 + signal number.

    ``portable``: the oneDNN settings of ``machine.PORTABLE_ENV`` are in force (the caller applied them before
    TensorFlow loaded); recorded in run.json with the machine."""
    received = []  # signals that arrived; training stops at the next check

    def check(*_):
        if received:
            raise Interrupted(received[0])

    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    writer = None
    try:
        run.write_info(status="running", seed=seed, config=config.to_dict(), engine=engine, versions=versions(),
                       **({"rnn": "static_rnn" if unroll else "dynamic_rnn"} if engine == "tf1" else {}),
                       portable=portable, machine=machine.describe())
        from .tfcompat import import_quiet_tensorflow

        tf = import_quiet_tensorflow()
        run.write_info(machine=machine.describe(tf))  # now with whether this TensorFlow is a CUDA build
        on_step = run.record
        if tensorboard:
            on_step, writer = _with_tensorboard(tf, run.file("tb"), on_step)
        check()
        if engine == "tf1":
            outcome, timing = _train_tf1(tf, run, config, seed, unroll, on_step, check, writer)
        else:
            outcome, timing = _train_tf2(run, config, seed, on_step, check)
    except Interrupted as e:  # before training began
        outcome, timing = _interrupted(run, e), {"train_seconds": 0.0}
    finally:
        if writer is not None:
            writer.close()
        for s, handler in previous.items():
            signal.signal(s, handler)

    run.write_info(status=outcome.status, steps_done=run.steps_done, **{k: round(v, 3) for k, v in timing.items()},
                   final_loss=run.last_loss if math.isfinite(run.last_loss or 0.0) else None)
    has_checkpoint = any(name.startswith(CHECKPOINT_PREFIX) for name in os.listdir(run.path))
    _plot_run(run, config, seed, trained=has_checkpoint)
    written = sorted(name for name in os.listdir(run.path) if not name.startswith(CHECKPOINT_PREFIX))
    checkpoint = f", {CHECKPOINT_PREFIX}-{run.steps_done}" if has_checkpoint else ""
    print(f"Run folder {run.path}: {', '.join(written)}{checkpoint}")
    _print_verdict(run, config)
    return outcome.exit_code


def _attempt(run, train):
    """Call ``train()``; turn a divergence or an interruption into the run's outcome."""
    from .train import Diverged

    try:
        train()
        return Outcome("finished", EXIT_OK)
    except Diverged as e:
        run.write_info(diverged_at={"epoch": e.epoch_idx, "step": e.batch_idx, "loss": str(e.loss)})
        print(f"echo_rnn_tf1: {e}; training stopped", file=sys.stderr)
        return Outcome("diverged", EXIT_FAILED)
    except Interrupted as e:
        return _interrupted(run, e)


def _interrupted(run, e):
    print(f"echo_rnn_tf1: {e} received; training stopped after {run.steps_done} steps", file=sys.stderr)
    return Outcome("interrupted", 128 + e.signum)  # the shell's code for death by that signal


def _train_tf1(tf, run, config, seed, unroll, on_step, check, writer):
    """The faithful graph, one ``sess.run`` per step; stops at the step a signal arrives in."""
    from .train import prepare, run_training

    graph, model, inputs_value, targets_value = prepare(config, seed, unroll)
    if writer is not None:
        writer.add_graph(graph)
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(save_relative_paths=True)  # the run folder can be moved
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        start = time.perf_counter()
        outcome = _attempt(run, lambda: run_training(sess, model, inputs_value, targets_value, config, log=run.log,
                                                     on_step=lambda *step: (on_step(*step), check())))
        train_seconds = time.perf_counter() - start
        if outcome.status != "diverged":  # a diverged model's weights are not worth keeping
            saver.save(sess, run.file(CHECKPOINT_PREFIX), global_step=run.steps_done)
    return outcome, {"train_seconds": train_seconds}


def _train_tf2(run, config, seed, on_step, check):
    """The native TF2 engine, an epoch per compiled call; stops at the end of the epoch a signal arrives in."""
    from . import tf2

    engine, windowsX, windowsY = tf2.start(config, seed)
    compile_seconds = engine.compile(windowsX, windowsY)
    start = time.perf_counter()
    outcome = _attempt(run, lambda: tf2.run_epochs(engine, windowsX, windowsY, run.log, on_step, on_epoch=check))
    train_seconds = time.perf_counter() - start
    if outcome.status != "diverged":
        tf2.save_checkpoint(run.file(CHECKPOINT_PREFIX), run.steps_done, engine.values())
    return outcome, {"train_seconds": train_seconds, "compile_seconds": compile_seconds}


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


def _plot_run(run, config, seed, trained):
    """loss.png (with the 2017 points for the source's settings); predictions.png from the checkpoint."""
    from .logs import parse_log, read_reference
    from .plots import loss_figure, predictions_figure, save_figure
    from .runs import read_losses

    _, _, losses = read_losses(run.file(LOSSES))
    reference = parse_log(read_reference(), "2017 log") if config == Config() else None
    save_figure(loss_figure(losses, config.num_batches, reference), run.file(LOSS_PNG))
    if trained:
        from .evaluate import held_out_predictions, trained_model

        with trained_model(run.path) as (sess, model, _):
            held_out_seed = (seed + 1) % SEED_LIMIT
            figure = predictions_figure(*held_out_predictions(sess, model, config, held_out_seed), config)
        save_figure(figure, run.file(PREDICTIONS_PNG))


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
