"""A run's folder, as the run writes it: locked while it does, ``train.log`` and ``losses.csv`` grown a whole line at
a time, ``run.json`` replaced whole; ``--force`` removes only the files of the run that was there."""
import contextlib
import errno
import json
import os
import re
import stat
import time

from .failures import BadInput, machine_failure
from .record import (CHECKPOINT_NAME, LOG, LOSSES, LOSSES_HEADER, RUN_JSON, TENSORBOARD, RunError, is_run_file,
                     lock, read_run, write_json)

# The longest paths a run writes inside its folder (seen with strace): the Saver's
# "model.ckpt-N.data-00000-of-00001.tempstate<up to 20 digits>" (85 characters) and TensorBoard's
# "tb/events.out.tfevents.<10 digits>.<host name, up to 64>" (98). 200 leave room.
INNER_PATH = 200
# What a killed process left half written under a temporary name: ``record.atomic_write``'s ``<name>.tmp<pid>``,
# TensorFlow's ``<checkpoint file>.tempstate<number>`` and ``checkpoint.tmp<hex>``.
LEFTOVER = re.compile(r"(.+)\.(?:tmp|tempstate)[0-9a-f]+")


class RunFolder:
    """The folder of one run, locked while the run writes it: ``train.log`` and ``losses.csv`` grow by whole
    lines, ``run.json`` is replaced whole, and lists the files the run made (``files``).

    ``force``: the folder may hold a run already; the files its ``run.json`` lists (and those a killed run left
    under a temporary name) are removed, and nothing else. A folder without ``run.json``, a listed file that is a
    symbolic link, or a file of the run's names that the record does not list is refused before anything is
    removed.
    """

    def __init__(self, out, force=False, name="run", **record):
        self.info, self.files, self._lines = {}, [], {}
        self.path, self.made, self._fd = take_folder(out, name)
        try:
            if force:
                self._remove_old_run()
            elif os.listdir(self.path):
                raise RunError(f"--out {self.path}: the folder exists and is not empty (give --force to replace "
                               f"the run in it)")
            self.files = [RUN_JSON, LOG, LOSSES]
            self.write(**record)  # first: a run killed from here on leaves a record that lists its files
            for name in (LOG, LOSSES):
                self._lines[name] = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                                            0o666, dir_fd=self._fd)
            self._append(LOSSES, LOSSES_HEADER)
        except BaseException as e:
            for name in self.files:  # what this start made: the folder held none of them (empty, or emptied)
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._fd)
            self.close()
            raise refused(self.path, e) from None

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
        size = written = os.lseek(fd, 0, os.SEEK_END)
        try:
            while written < size + len(data):  # a write cut short: the next says why (disk full, a file size limit)
                written += os.write(fd, data[written - size:])
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
                self._remove(name)
        self.files = []
        if self.made:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)

    def remove_checkpoint(self):
        """Remove the checkpoint's files (a save cut short), and their names from ``files``."""
        is_checkpoint = lambda name: CHECKPOINT_NAME.fullmatch(_run_name(name)) is not None  # noqa: E731
        for name in filter(is_checkpoint, os.listdir(self.path)):
            with contextlib.suppress(OSError):
                self._remove(name)
        self.files = [name for name in self.files if not is_checkpoint(name)]

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
            if is_run_file(name) and name not in listed and name not in leftovers:
                raise RunError(f"--out {self.path}: {name} is in the way and {RUN_JSON} does not list it as the "
                               f"run's; move it, or choose another folder")
        for name in listed:
            with contextlib.suppress(FileNotFoundError):
                mode = os.lstat(self.file(name)).st_mode
                if stat.S_ISLNK(mode):
                    raise RunError(f"--out {self.path}: {name} is a symbolic link; --force removes a run's own files "
                                   f"and follows no link")
                for inner in os.listdir(self.file(name)) if stat.S_ISDIR(mode) else []:
                    path = f"{name}/{inner}"  # (TensorBoard's file a killed run left unlisted: removed as a leftover)
                    if path not in listed and is_run_file(path) and stat.S_ISREG(os.lstat(self.file(path)).st_mode):
                        leftovers.append(path)
                    elif path not in listed:
                        raise RunError(f"--out {self.path}: {name}/ holds {inner}, which the run did not make")
        for name in [*leftovers, *sorted(listed, key=lambda n: (-n.count("/"), n == RUN_JSON))]:  # run.json last
            with contextlib.suppress(FileNotFoundError):
                self._remove(name)

    def _remove(self, name):
        os.rmdir(self.file(name)) if os.path.isdir(self.file(name)) else os.remove(self.file(name))  # (tb/: emptied)

    def close(self):
        """Close the files and unlock the folder."""
        for fd in self._lines.values():
            os.close(fd)
        self._lines = {}
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


def _run_name(name):
    """The run's name of a file: its own, or the one a killed process left it under a temporary name."""
    match = LEFTOVER.fullmatch(name)
    return match.group(1) if match else name


def _is_leftover(name):
    """Whether ``name`` is what a killed process left of a file a run writes whole (run.json, a picture, a checkpoint's
    file: ``train.log`` and ``losses.csv`` grow in place, ``tb`` is a folder)."""
    run_name = _run_name(name)
    return run_name != name and is_run_file(run_name) and run_name not in (LOG, LOSSES, TENSORBOARD)


def take_folder(out, name):
    """``(path, whether this made it, its lock)``: folder ``out``, made if missing, and locked (``record.lock``); without
    ``out``, a new folder ``runs/<time>-NAME`` (``-2``, ``-3``, ... if that is taken: made by this process alone, so
    that two commands started in the same second get two)."""
    if out is None:
        os.makedirs("runs", exist_ok=True)
        base = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-{name}")
        for path in [base, *(f"{base}-{n}" for n in range(2, 1000))]:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
                return path, True, lock(path)
        raise RunError(f"{base}: a thousand folders of that name made this second; give --out")
    check_folder_path(out)
    try:
        made = not os.path.isdir(out)
        os.makedirs(out, exist_ok=True)
        return str(out), made, lock(out)
    except OSError as e:
        raise refused(out, e) from None


def refused(out, error):
    """What to raise for ``error`` in taking folder ``out``: an OSError of the user's path is ``--out OUT: not a
    folder`` or ``cannot write there`` (exit code 2); a full disk is the machine's (exit code 3)."""
    if isinstance(error, (NotADirectoryError, FileExistsError)) and os.path.lexists(out) and not os.path.isdir(out):
        return RunError(f"--out {out}: not a folder (a file, or a link to nothing)")  # (or a file on the way to it)
    if isinstance(error, OSError) and not machine_failure(error):
        return RunError(f"--out {out}: cannot write there ({error.strerror})")
    return error


def check_folder_path(path, flag="--out"):
    """Refuse (BadInput, exit code 2) a folder path TensorFlow or the file system cannot hold with a run's files
    inside (a name too long is the file system's own error, when the folder is made)."""
    try:
        os.path.abspath(path).encode("utf-8")
    except UnicodeEncodeError:  # a byte of another encoding, as the file system handed it to Python
        raise BadInput(f"{flag} {path}: not UTF-8, and TensorFlow saves a checkpoint only under "
                       f"a UTF-8 path") from None
    absolute = existing = os.path.abspath(path)
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    path_max = os.pathconf(existing, "PC_PATH_MAX")
    if len(os.fsencode(absolute)) + INNER_PATH >= path_max:
        raise BadInput(f"{flag} {path[:60]}...: the path has {len(os.fsencode(absolute))} bytes; with the run's "
                       f"files inside (up to {INNER_PATH} more) it would pass the file system's {path_max}")
