"""Command line: ``python -m echo_rnn_tf1 [flags]`` trains; ``python -m echo_rnn_tf1 COMMAND ...`` does the rest.

Nothing heavy is imported here: TensorFlow and matplotlib are imported by the commands that use them, so
``--help`` answers at once and bad flags are refused before anything is loaded or written.
"""
import argparse
import dataclasses
import math
import os
import signal
import sys
import time
import warnings

from .config import Config, ConfigError
from .runs import CHECKPOINT_PREFIX, LOSS_PNG, RunError, RunWriter, versions

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A command line that argparse could not parse."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived during training; the run stops after the step in progress."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line becomes one line and exit code 2 (through ``main``), not usage text."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def train_parser():
    p = Parser(prog="python -m echo_rnn_tf1",
               description="Train the 2017 Echo-RNN (BasicRNNCell + dynamic_rnn through tf.compat.v1) and print "
                           "the source's log.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = Config()
    for field in dataclasses.fields(Config):
        p.add_argument("--" + field.name.replace("_", "-"), type=field.type, default=getattr(defaults, field.name),
                       metavar=field.type.__name__.upper())
    p.add_argument("--seed", type=int, help="seed random, numpy and TensorFlow as a header on the source would "
                                            "(default: draw one and record it in run.json)")
    p.add_argument("--out", help="run folder (default: a new folder under runs/)")
    p.add_argument("--force", action="store_true", help="overwrite the files of a run already in --out")
    return p


def import_quiet_tensorflow():
    """TensorFlow with less chatter on stderr (set TF_CPP_MIN_LOG_LEVEL=0 to see all of it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The source's API is deprecated; that is the point of this project, so the warning says nothing new.
    warnings.filterwarnings("ignore", message=r".*BasicRNNCell. is deprecated", category=UserWarning)
    from .tfcompat import import_tensorflow

    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    return tf


def train_command(argv):
    args = train_parser().parse_args(argv)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}).validate()
    from .train import draw_seed

    seed = args.seed if args.seed is not None else draw_seed()
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-seed{seed}")
    run = RunWriter(out, force=args.force)  # refuses a used or unwritable --out before anything is loaded
    try:
        return _train_into(run, config, seed)
    finally:
        run.close()


def _train_into(run, config, seed):
    received = []  # signals that arrived; the loop stops after the step in progress

    def on_step(epoch_idx, batch_idx, loss):
        run.record(epoch_idx, batch_idx, loss)
        if received:
            raise Interrupted(received[0])

    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run.write_info(status="running", seed=seed, config=config.to_dict(), rnn="dynamic_rnn", versions=versions())
        status, exit_code, train_seconds = _train_session(run, config, seed, on_step, received)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

    run.write_info(status=status, steps_done=run.steps_done, train_seconds=round(train_seconds, 3),
                   final_loss=run.last_loss if math.isfinite(run.last_loss or 0.0) else None)
    _plot_run(run, config)
    written = sorted(name for name in os.listdir(run.path) if not name.startswith(CHECKPOINT_PREFIX))
    checkpoint = f", {CHECKPOINT_PREFIX}-{run.steps_done}" if status != "diverged" else ""
    print(f"Run folder {run.path}: {', '.join(written)}{checkpoint}")
    return exit_code


def _train_session(run, config, seed, on_step, received):
    """Build and train; return ``(status, exit_code, train_seconds)``. Saves a checkpoint unless the run diverged."""
    tf = import_quiet_tensorflow()
    from .train import Diverged, prepare, run_training

    graph, model, inputs_value, targets_value = prepare(config, seed)
    with graph.as_default():
        saver = tf.compat.v1.train.Saver()
    status, exit_code = "finished", EXIT_OK
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        start = time.perf_counter()
        try:
            if received:
                raise Interrupted(received[0])
            run_training(sess, model, inputs_value, targets_value, config, log=run.log, on_step=on_step)
        except Diverged as e:
            status, exit_code = "diverged", EXIT_FAILED
            run.write_info(diverged_at={"epoch": e.epoch_idx, "step": e.batch_idx, "loss": str(e.loss)})
            print(f"echo_rnn_tf1: {e}; training stopped", file=sys.stderr)
        except Interrupted as e:
            status, exit_code = "interrupted", 128 + e.signum  # the shell's code for death by that signal
            print(f"echo_rnn_tf1: {e} received; training stopped after {run.steps_done} steps", file=sys.stderr)
        train_seconds = time.perf_counter() - start
        if status != "diverged":  # a diverged model's weights are not worth keeping
            saver.save(sess, run.file(CHECKPOINT_PREFIX), global_step=run.steps_done)
    return status, exit_code, train_seconds


def _plot_run(run, config):
    from .plots import loss_figure, save_figure
    from .runs import LOSSES, read_losses

    _, _, losses = read_losses(run.file(LOSSES))
    save_figure(loss_figure(losses, config.num_batches), run.file(LOSS_PNG))


COMMANDS = {}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = COMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else train_command(argv)
    except (UsageError, ConfigError, RunError) as e:
        print(f"echo_rnn_tf1: error: {e}", file=sys.stderr)
        return EXIT_USAGE
