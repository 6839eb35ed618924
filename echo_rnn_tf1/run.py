"""One run, top to bottom: make the folder, train (either engine), save the checkpoint, draw, judge.

The losses stay in memory as they come, and feed the picture and the verdict; the folder gets them too, a whole
line at a time, so a killed run leaves every row it had. However the run ends, ``run.json`` says so: ``status``
(running, finished, diverged, interrupted, failed), ``stage`` (start, training, checkpoint, pictures, done) and
``cause``; it is replaced whole each time. A stop signal raises ``Interrupted`` wherever the run is: stopped while
training, the run still saves what it learned and draws it; stopped later, it ends where it is. A run killed
outright leaves ``running`` in a folder nobody holds: ``record.read_run`` says it died.
"""
import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import sys

from . import machine
from .config import SEED_LIMIT, Config
from .failures import EXIT_FAILED, EXIT_OK, EXIT_USAGE, BadInput, Interrupted, HeldStops, describe
from .record import (CHECKPOINT_PREFIX, CHECKPOINT_STATE, LOG, LOSS_PNG, LOSSES, LOSSES_HEADER, PREDICTIONS_PNG,
                     RUN_JSON, TENSORBOARD, RunError, checkpoint_digests, lock, read_run, write_json)

# The longest paths a run writes inside its folder (seen with strace): the Saver's
# "model.ckpt-N.data-00000-of-00001.tempstate<up to 20 digits>" (85 characters) and TensorBoard's
# "tb/events.out.tfevents.<10 digits>.<host name, up to 64>" (98). 200 leave room.
INNER_PATH = 200
# What a killed process left half written under a temporary name: ``record.atomic_write``'s ``<name>.tmp<pid>``,
# TensorFlow's ``<checkpoint file>.tempstate<number>`` and ``checkpoint.tmp<hex>``.
LEFTOVER = re.compile(r"(.+)\.(?:tmp|tempstate)[0-9a-f]+")


def train_run(config, seed, out, force=False, engine="tf1", unroll=False, tensorboard=False, portable=False):
    """Train a run into folder ``out``; return the exit code: 0 finished, 1 diverged, 128 + N stopped by signal N.
    ``portable``: the caller applied ``machine.PORTABLE_ENV`` before TensorFlow loaded."""
    folder = RunFolder(out, force)  # a used, locked or unwritable folder is refused before anything loads
    try:
        return _train_run(folder, config, seed, engine, unroll, tensorboard, portable)
    finally:
        folder.close()


def _train_run(folder, config, seed, engine, unroll, tensorboard, portable):
    from .tfcompat import import_quiet_tensorflow

    folder.write(status="running", stage="start", seed=seed, config=config.to_dict(), engine=engine,
                 **({"rnn": "static_rnn" if unroll else "dynamic_rnn"} if engine == "tf1" else {}),
                 portable=portable, versions=machine.versions(), machine=machine.describe())
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
        if tensorboard:
            graph = training_graph(tf, config, seed, unroll, portable) if engine == "tf1" else None
            board = TensorBoard(tf, folder, graph)
        folder.write(stage="training")
        if engine == "tf1":
            from .train import train_values

            values, trained, stopped, timing = train_values(config, seed, folder.log, on_step, unroll, portable, steps)
        else:
            from . import tf2

            values, trained, stopped, timing = tf2.train_values(config, seed, folder.log, on_step, steps)
        folder.write(steps_done=len(losses), **{name: round(seconds, 3) for name, seconds in timing.items()},
                     final_loss=float(losses[-1]) if losses and math.isfinite(losses[-1]) else None)
        if board is not None:
            board.close(folder)
            board = None

        status, code, cause = "finished", EXIT_OK, f"trained all {config.num_epochs} epochs"
        if isinstance(stopped, Interrupted):
            status, code = "interrupted", stopped.exit_code
            cause = f"{stopped} during the training, after {len(losses)} steps"
            print(f"echo_rnn_tf1: {stopped} received; training stopped after {len(losses)} steps", file=sys.stderr)
        elif stopped is not None:  # Diverged
            status, code, cause = "diverged", EXIT_FAILED, str(stopped)
            folder.write(diverged_at={"epoch": stopped.epoch_idx, "step": stopped.batch_idx, "loss": str(stopped.loss)})
            print(f"echo_rnn_tf1: {stopped}; training stopped", file=sys.stderr)

        saved = status != "diverged" and _save_checkpoint(folder, values, trained)
        folder.write(stage="pictures")
        _draw(folder, config, seed, losses, values if saved else None, unroll)
        folder.write(status=status, stage="done", cause=cause)
    except Interrupted as e:  # before training, or after it: during the checkpoint or the pictures
        stage = folder.info["stage"]
        if stage == "start":  # nothing trained, nothing to keep: nothing in the way of a retry
            folder.discard()
            print(f"echo_rnn_tf1: {e} received during the start; stopped, nothing kept", file=sys.stderr)
            return e.exit_code
        folder.write(status="interrupted", cause=f"{e} during the {stage}, after {len(losses)} steps",
                     steps_done=len(losses))
        print(f"echo_rnn_tf1: {e} received during the {stage}; stopped", file=sys.stderr)
        return e.exit_code
    except BaseException as e:
        if folder.info["stage"] == "start":  # nothing trained, nothing to keep: nothing in the way of a retry
            folder.discard()
            raise
        with contextlib.suppress(Exception):  # (a full disk, say: the failure itself is what gets reported)
            folder.write(status="failed", cause=describe(e)[1], steps_done=len(losses))
        raise
    finally:
        if board is not None:
            board.close(folder)

    names = [n for n in folder.files if "/" not in n and not n.startswith(CHECKPOINT_PREFIX)]
    checkpoint = f", {folder.info['checkpoint']['prefix']}" if folder.info.get("checkpoint") else ""
    print(f"Run folder {folder.path}: {', '.join(sorted(names))}{checkpoint}")
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
    try:
        graph = tf.Graph()
        with graph.as_default():
            variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
            saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)  # the folder can be moved
            with session(graph) as sess:
                sess.run(tf.compat.v1.variables_initializer(variables))
                saver.save(sess, folder.file(CHECKPOINT_PREFIX), global_step=step)
    except BaseException:
        folder.remove_checkpoint()  # the Saver's half-written files
        raise
    folder.add_files([CHECKPOINT_STATE] + sorted(n for n in os.listdir(folder.path) if n.startswith(prefix + ".")))
    folder.write(checkpoint={"prefix": prefix, "sha256": checkpoint_digests(folder.path, prefix)})
    return True


def _draw(folder, config, seed, losses, values, unroll):
    """loss.png (with the 2017 points for the source's settings); predictions.png on a held-out series."""
    from . import plots
    from .logs import reference_points

    reference = reference_points() if config == Config() else None
    plots.save_figure(plots.loss_figure(losses, config.num_batches, reference), folder.file(LOSS_PNG))
    folder.add_files([LOSS_PNG])
    if values is not None:
        from .evaluate import held_out_predictions, model_with_values

        with model_with_values(config, values, unroll) as (sess, model):
            predictions = held_out_predictions(sess, model, config, (seed + 1) % SEED_LIMIT)
        plots.save_figure(plots.predictions_figure(*predictions, config), folder.file(PREDICTIONS_PNG))
        folder.add_files([PREDICTIONS_PNG])


def training_graph(tf, config, seed, unroll, portable):
    """The tf1 engine's training graph, built as ``train.prepare`` builds it, to be shown in TensorBoard. (Training
    builds its own: ``prepare`` seeds everything again first, so this one changes no bit of the run.)"""
    from .model import build_model

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        build_model(config, unroll=unroll, portable=portable)
    return graph


class TensorBoard:
    """Every step's loss as a summary under the run's ``tb/``, and ``graph`` if given (no op is added to it)."""

    def __init__(self, tf, folder, graph=None):
        folder.add_files([TENSORBOARD])
        with tf.Graph().as_default():  # a v1 FileWriter refuses to be made under eager execution
            self.writer = tf.compat.v1.summary.FileWriter(folder.file(TENSORBOARD), graph=graph)
        self.summary, self.step = tf.compat.v1.Summary, 0

    def add(self, loss):
        value = self.summary.Value(tag="loss", simple_value=float(loss))
        self.writer.add_summary(self.summary(value=[value]), global_step=self.step)
        self.step += 1

    def close(self, folder):
        self.writer.close()
        folder.add_files(f"{TENSORBOARD}/{name}" for name in sorted(os.listdir(folder.file(TENSORBOARD))))


class RunFolder:
    """The folder of one run, locked while the run writes it: ``train.log`` and ``losses.csv`` grow by whole
    lines, ``run.json`` is replaced whole, and lists the files the run made (``files``).

    ``force``: the folder may hold a run already; the files its ``run.json`` lists (and those a killed run left
    under a temporary name) are removed, and nothing else. A folder without ``run.json``, a listed file that is a
    symbolic link, or a file of the run's names that the record does not list is refused before anything is
    removed.
    """

    def __init__(self, path, force=False):
        self.path = str(path)
        check_folder_path(self.path)
        self.info, self.files, self._fd, self._lines = {}, [], None, {}
        try:
            self.made = not os.path.isdir(self.path)
            os.makedirs(self.path, exist_ok=True)
            self._fd = lock(self.path)
            if force:
                self._remove_old_run()
            elif os.listdir(self.path):
                raise RunError(f"--out {self.path}: the folder exists and is not empty (give --force to overwrite "
                               f"the files of a run in it)")
            for name in (LOG, LOSSES):
                self._lines[name] = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                                            0o666, dir_fd=self._fd)
                self.files.append(name)
            self.files.append(RUN_JSON)
            self._append(LOSSES, LOSSES_HEADER)
        except BaseException as e:
            for name in self.files:  # what this start made, all of it new (O_EXCL)
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._fd)
            self.close()
            if isinstance(e, (NotADirectoryError, FileExistsError)) and os.path.lexists(self.path) \
                    and not os.path.isdir(self.path):  # (a file on the way to it: cannot write there)
                raise RunError(f"--out {self.path}: a file, not a folder") from None
            if isinstance(e, OSError) and describe(e)[0] == EXIT_USAGE:
                raise RunError(f"--out {self.path}: cannot write there ({e.strerror})") from None
            raise

    def file(self, name):
        return os.path.join(self.path, name)

    def log(self, line):
        """Print a log line and append it to ``train.log``."""
        print(line, flush=True)
        self._append(LOG, line + "\n")

    def record(self, epoch_idx, batch_idx, loss):
        """Append one step's loss to ``losses.csv`` (float32's shortest exact text: it reads back bit for bit)."""
        import numpy as np

        self._append(LOSSES, f"{epoch_idx},{batch_idx},{np.float32(loss)!s}\n")

    def _append(self, name, line):
        """One whole line, or (a full disk) none: a part written is cut back."""
        fd, data = self._lines[name], line.encode()
        size = os.lseek(fd, 0, os.SEEK_END)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, os.strerror(28))  # ENOSPC: only part of it fitted
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise OSError(e.errno, e.strerror, self.file(name)) from None

    def add_files(self, names):
        """Record more files as the run's own (in ``run.json``'s ``files``)."""
        self.files.extend(name for name in names if name not in self.files)
        self.write()

    def write(self, **fields):
        """Merge ``fields`` into ``run.json`` and replace it whole; on a disk too full for the new copy, rewrite it in
        the room the old one holds (a record of 1.5 KB in a 4 KB block), so that a run ended by a full disk says so
        rather than ``running`` (which reads as a run that died)."""
        self.info.update(fields)
        data = {**self.info, "files": self.files}
        try:
            write_json(self.file(RUN_JSON), data)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not os.path.isfile(self.file(RUN_JSON)):
                raise
            with open(self.file(RUN_JSON), "r+") as f:
                json.dump(data, f, indent=2, allow_nan=False)
                f.write("\n")
                f.truncate()

    def discard(self):
        """Remove the run's files, and the folder if this run made it."""
        for name in reversed(self.files):
            with contextlib.suppress(OSError):
                shutil.rmtree(self.file(name)) if os.path.isdir(self.file(name)) else os.remove(self.file(name))
        self.files = []
        if self.made:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)

    def remove_checkpoint(self):
        for name in os.listdir(self.path):
            if name.startswith((CHECKPOINT_PREFIX + "-", CHECKPOINT_STATE)):
                with contextlib.suppress(OSError):
                    os.remove(self.file(name))

    def _remove_old_run(self):
        present = os.listdir(self.path)
        if RUN_JSON not in present:
            if present:
                raise RunError(f"--out {self.path}: holds no {RUN_JSON}, so nothing in it is known to be a run's; "
                               f"--force replaces only the files of a run")
            return
        listed = set(read_run(self.path).files)
        for name in listed:
            if "/" in name and name.split("/")[0] not in listed:
                raise RunError(f"{self.file(RUN_JSON)}: lists {name} but not its folder")
        leftovers = [n for n in present if _is_leftover(n) and stat.S_ISREG(os.lstat(self.file(n)).st_mode)]
        for name in present:
            if _is_ours(name) and name not in listed and name not in leftovers:
                raise RunError(f"--out {self.path}: {name} is in the way and {RUN_JSON} does not list it as the "
                               f"run's; move it, or choose another folder")
        for name in listed:
            with contextlib.suppress(FileNotFoundError):
                mode = os.lstat(self.file(name)).st_mode
                if stat.S_ISLNK(mode):
                    raise RunError(f"--out {self.path}: {name} is a symbolic link; --force removes a run's own files "
                                   f"and follows no link")
                if stat.S_ISDIR(mode):
                    foreign = [n for n in os.listdir(self.file(name)) if f"{name}/{n}" not in listed
                               and not n.startswith("events.out.tfevents.")]  # (TensorBoard's, of a killed run)
                    if foreign:
                        raise RunError(f"--out {self.path}: {name}/ holds {foreign[0]}, which the run did not make")
        for name in [*leftovers, *sorted(listed, key=lambda n: (-n.count("/"), n == RUN_JSON))]:  # run.json last
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(self.file(name)) if os.path.isdir(self.file(name)) else os.remove(self.file(name))

    def close(self):
        """Close the files and unlock the folder."""
        for fd in self._lines.values():
            os.close(fd)
        self._lines = {}
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _is_ours(name):
    """A name this package writes in a run folder."""
    return (name in (LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG, CHECKPOINT_STATE, TENSORBOARD)
            or name.startswith(CHECKPOINT_PREFIX + "-"))


def _is_leftover(name):
    match = LEFTOVER.fullmatch(name)
    return match is not None and _is_ours(match.group(1))


def check_folder_path(path, flag="--out"):
    """Refuse (BadInput, exit code 2) a folder path the file system cannot hold with a run's files inside."""
    if "\0" in path:
        raise BadInput(f"{flag} {path!r}: a path cannot hold a NUL byte")
    try:
        os.path.abspath(path).encode("utf-8")
    except UnicodeEncodeError:  # a byte of another encoding, as the file system handed it to Python
        raise BadInput(f"{flag} {os.fsencode(path)!r}: not UTF-8, and TensorFlow saves a checkpoint only under "
                       f"a UTF-8 path") from None
    absolute = existing = os.path.abspath(path)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    longest = max(len(os.fsencode(part)) for part in absolute.split(os.sep))
    if longest > name_max:
        raise BadInput(f"{flag} {path[:60]}...: a name in it has {longest} bytes; the file system allows {name_max}")
    if len(os.fsencode(absolute)) + INNER_PATH >= path_max:
        raise BadInput(f"{flag} {path[:60]}...: the path has {len(os.fsencode(absolute))} bytes; with the run's "
                       f"files inside (up to {INNER_PATH} more) it would pass the file system's {path_max}")
