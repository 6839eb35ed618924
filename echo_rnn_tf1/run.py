"""One run, top to bottom: make the folder, train (either engine), save the checkpoint, draw, judge.

The losses stay in memory as they come, and feed the picture and the verdict; the folder gets them too, a whole
line at a time, so a killed run leaves every row it had. However the run ends, ``run.json`` says so: ``status``
(running, finished, diverged, interrupted, failed), ``stage`` (start, training, checkpoint, pictures, done) and
``cause``; it is replaced whole each time. A stop signal raises ``Interrupted`` wherever the run is: stopped while
training, the run still saves what it learned and draws it; stopped later, it ends where it is. A run killed
outright leaves ``running`` in a folder nobody holds: ``record.read_run`` says it died. (``folder.py`` writes the
folder.)
"""
import contextlib
import dataclasses
import gc
import math
import os
import sys
import traceback

from . import machine
from .config import SEED_LIMIT, Config
from .failures import EXIT_FAILED, EXIT_OK, HeldStops, Interrupted, escaped, exit_code_and_line
from .folder import RunFolder
from .record import (CHECKPOINT_PREFIX, CHECKPOINT_STATE, LOSS_PNG, MEMORY_PNG, PREDICTIONS_PNG, STATES_PNG,
                     TENSORBOARD, WEIGHTS_PNG, checkpoint_digests)


def train_run(config, seed, out=None, force=False, engine="tf1", unroll=False, tensorboard=False, portable=False,
              pictures=True):
    """Train a run into folder ``out`` (None: a new one under runs/, named by the time and the seed); return the exit
    code: 0 finished, 1 diverged, 128 + N stopped by signal N. ``portable``: the caller applied
    ``machine.PORTABLE_ENV`` before TensorFlow loaded."""
    folder = RunFolder(out, force, f"seed{seed}",  # a used, locked or unwritable folder is refused before anything loads
                       status="running", stage="start", seed=seed, config=config.to_dict(), engine=engine,
                       **({"rnn": "static_rnn" if unroll else "dynamic_rnn"} if engine == "tf1" else {}),
                       portable=portable, versions=machine.versions(), machine=machine.describe())
    try:
        return _train_run(folder, config, seed, engine, unroll, tensorboard, portable, pictures)
    finally:
        folder.close()


def _train_run(folder, config, seed, engine, unroll, tensorboard, portable, pictures):
    from .tfcompat import import_quiet_tensorflow

    losses, board = [], None

    steps = HeldStops()  # a stop signal acts between steps: the weights saved are those of the steps recorded

    def on_step(epoch_idx, batch_idx, loss):
        folder.record(epoch_idx, batch_idx, loss)
        losses.append(loss)
        if board is not None:
            board.add(loss)
        if math.isfinite(loss) and (engine == "tf1" or batch_idx == config.num_batches - 1):  # (tf2: an epoch is
            steps.act()  # one compiled call; a step that diverged ends training as diverged, stopped or not)

    try:
        tf = import_quiet_tensorflow()
        folder.write(machine=machine.describe(tf))  # now with whether this TensorFlow is a CUDA build
        folder.write(stage="training")  # (then TensorBoard: a stopped start removes the folder, which closing it would write)
        if tensorboard:
            board = TensorBoard(tf, folder)
        if engine == "tf1":
            from .train import train_values

            trained = train_values(config, seed, folder.log, on_step, unroll, portable, steps,
                                   on_graph=board and board.writer.add_graph)
        else:
            from . import tf2

            trained = tf2.train_values(config, seed, folder.log, on_step, steps)
        stopped = trained.stopped
        folder.write(steps_done=len(losses), **{name: round(seconds, 3) for name, seconds in trained.timing.items()},
                     final_loss=float(losses[-1]) if losses and math.isfinite(losses[-1]) else None)

        status, code, cause = "finished", EXIT_OK, f"trained all {config.num_epochs} epochs"
        if isinstance(stopped, Interrupted):
            status, code = "interrupted", stopped.exit_code
            cause = f"{stopped} during the training, after {len(losses)} steps"
            print(f"echo_rnn_tf1: {stopped} received; training stopped after {len(losses)} steps", file=sys.stderr)
        elif stopped is not None:  # Diverged
            status, code, cause = "diverged", EXIT_FAILED, str(stopped)
            folder.write(diverged_at={"epoch": stopped.epoch_idx, "step": stopped.batch_idx, "loss": str(stopped.loss)})
            print(f"echo_rnn_tf1: {stopped}; training stopped", file=sys.stderr)

        saved = status != "diverged" and _save_checkpoint(folder, trained.values, trained.steps_trained)
        if pictures:
            folder.write(stage="pictures")
            _draw(folder, config, seed, losses, trained if saved else None, unroll)
        folder.write(status=status, stage="done", cause=cause)
    except BaseException as e:  # stopped or failed before training, or after it: in the checkpoint or the pictures
        stage = folder.info["stage"]
        if stage == "start":  # nothing trained, nothing to keep: nothing in the way of a retry
            folder.discard()
        elif isinstance(e, Interrupted):
            folder.write(status="interrupted", cause=f"{e} during the {stage}, after {len(losses)} steps",
                         steps_done=len(losses))
        else:
            traceback.clear_frames(e.__traceback__)  # what the failed code held goes (out of memory: what filled it),
            gc.collect()  # a figure among it: a web of references, which only the collector frees
            with contextlib.suppress(Exception):  # (a full disk, say: the failure itself is what gets reported)
                folder.write(status="failed", cause=exit_code_and_line(e)[1], steps_done=len(losses))
        if not isinstance(e, Interrupted):
            raise
        print(f"echo_rnn_tf1: {e} received during the {stage}; stopped{', nothing kept' * (stage == 'start')}",
              file=sys.stderr)
        return e.exit_code
    finally:
        if board is not None:
            board.close(folder)  # (its files listed in run.json)

    names = [n for n in folder.files if "/" not in n and not n.startswith(CHECKPOINT_PREFIX)]
    checkpoint = f", {folder.info['checkpoint']['prefix']}" if folder.info.get("checkpoint") else ""
    print(f"Run folder {escaped(folder.path)}: {', '.join(sorted(names))}{checkpoint}")  # (one line, as errors)
    print(f"Compared with the 2017 run: {verdict(config, losses)}")
    return code


def verdict(config, losses):
    """This run's losses against the 2017 run's log: the summary of ``compare``, or why there is none."""
    from .compare import compare
    from .logs import logged_points, reference_points

    changed = config.changes_from_source()
    if changed:
        return f"not comparable, this run changed the source's {', '.join(changed)}"
    if not losses:
        return "nothing to compare (the run logged no loss)"
    return compare(logged_points(losses, config.num_batches), reference_points()).summary


def _save_checkpoint(folder, values, step):
    """Save ``values`` (arrays by the faithful graph's variable names) as a TF1 checkpoint, and record its files and
    their SHA-256 in run.json; not weights that are NaN or infinite (the last update can make them so before any
    loss shows it). Return whether it was saved."""
    import numpy as np

    from .tfcompat import import_tensorflow
    from .train import session

    if not all(np.isfinite(w).all() for w in values.values()):
        folder.write(checkpoint=None, checkpoint_skipped="the weights are not all finite")
        print("echo_rnn_tf1: the weights are not all finite; no checkpoint saved", file=sys.stderr)
        return False
    folder.write(stage="checkpoint")
    tf = import_tensorflow()
    prefix = f"{CHECKPOINT_PREFIX}-{step}"
    listed = [CHECKPOINT_STATE] + [f"{prefix}.{part}" for part in ("data-00000-of-00001", "index", "meta")]
    folder.add_files(listed)  # before the Saver writes them: a run killed meanwhile leaves no file of its own unlisted
    try:
        graph = tf.Graph()
        with graph.as_default():
            variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
            saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)  # the folder can be moved
            with session(graph) as sess:
                sess.run(tf.compat.v1.variables_initializer(variables))
                saver.save(sess, folder.file(CHECKPOINT_PREFIX), global_step=step)
    except BaseException:
        folder.remove_checkpoint()  # the Saver's half-written files, and their names
        raise
    saved = [CHECKPOINT_STATE] + sorted(n for n in os.listdir(folder.path) if n.startswith(prefix + "."))
    folder.files = [name for name in folder.files if name not in listed] + saved  # (as TensorFlow named them)
    folder.write(checkpoint={"prefix": prefix, "sha256": checkpoint_digests(folder.path, prefix)})
    return True


# Windows of the fresh series memory.png probes: at most this many (a default run: 1000 of 5000), 0.1 s a probe
MEMORY_WINDOWS = 1000


def _draw(folder, config, seed, losses, trained, unroll):
    """loss.png (with the 2017 points for the source's settings); given ``trained`` (a ``train.Trained``), from one
    inference graph: predictions.png on a held-out series; what the network learned (``memory.py``): memory.png, what
    its state holds, trained and as the seed started; states.png, the states on their principal axes; weights.png,
    the weights and what each unit holds."""
    from . import plots
    from .logs import reference_points

    reference = reference_points() if config == Config() else None
    _save_picture(folder, LOSS_PNG, plots.loss_figure(losses, config.num_batches, reference))
    if trained is not None:
        from . import memory
        from .evaluate import held_out_predictions, model_with_values

        window_block = config.batch_size * config.truncated_backprop_length
        probed = dataclasses.replace(config, total_series_length=min(
            config.total_series_length, window_block * (MEMORY_WINDOWS // config.batch_size or 1)))
        with model_with_values(config, trained.values, unroll) as (sess, model):
            predictions = held_out_predictions(sess, model, config, (seed + 1) % SEED_LIMIT)
            table = memory.Memory(memory.memory_lags(config), *(memory.probed(sess, model, probed, values)
                                                                 for values in (trained.start, trained.values)))
        _save_picture(folder, PREDICTIONS_PNG, plots.predictions_figure(*predictions, config))
        drawn = [(MEMORY_PNG, memory.memory_figure), (WEIGHTS_PNG, memory.weights_figure)]
        if config.state_size >= 2:  # (two principal axes to draw the states on)
            drawn.insert(1, (STATES_PNG, memory.states_figure))
        for name, figure in drawn:
            _save_picture(folder, name, figure(table, config))


def _save_picture(folder, name, figure):
    """Save ``figure`` as ``name``, listed in run.json before it is written: a run killed meanwhile leaves no file of
    its own unlisted; a save that fails leaves neither the file nor its name."""
    from .plots import save_figure

    folder.add_files([name])
    try:
        save_figure(figure, folder.file(name))
    except BaseException:
        if not os.path.exists(folder.file(name)):
            folder.files.remove(name)
        raise


class TensorBoard:
    """Every step's loss as a summary under the run's ``tb/``; ``writer.add_graph`` adds the tf1 engine's graph (no op
    is added to it)."""

    def __init__(self, tf, folder):
        folder.add_files([TENSORBOARD])
        with tf.Graph().as_default():  # a v1 FileWriter refuses to be made under eager execution
            self.writer = tf.compat.v1.summary.FileWriter(folder.file(TENSORBOARD))
        self.summary, self.step = tf.compat.v1.Summary, 0

    def add(self, loss):
        value = self.summary.Value(tag="loss", simple_value=float(loss))
        self.writer.add_summary(self.summary(value=[value]), global_step=self.step)
        self.step += 1

    def close(self, folder):
        self.writer.close()
        folder.add_files(f"{TENSORBOARD}/{name}" for name in sorted(os.listdir(folder.file(TENSORBOARD))))
