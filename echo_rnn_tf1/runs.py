"""A run folder: ``train.log``, ``losses.csv``, ``run.json``, ``loss.png`` and the checkpoint.

The log and the losses are written line by line as training goes, each line whole or not at all, so a killed
or failed process leaves every row it had recorded and never half a row; ``run.json`` and the pictures are
written to a temporary name and renamed, so a crash never leaves half a file. ``run.json`` lists the files the
run made (``files``): ``--force`` removes those and nothing else. While a run trains, its folder is locked
(``flock`` on the folder itself), and ``run.json.reserve`` holds disk space for the last ``run.json``, which
must be written even on a full disk.
"""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import stat

import numpy as np

from .config import Config, ConfigError
from .failures import BadInput, machine_failure
from .limits import check_folder_path

LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG = "train.log", "losses.csv", "run.json", "loss.png", "predictions.png"
CHECKPOINT_PREFIX = "model.ckpt"
CHECKPOINT_STATE, TENSORBOARD = "checkpoint", "tb"
RESERVE = "run.json.reserve"
RESERVE_BYTES = 64 * 1024  # a finished run.json is about 1.5 KB
RUN_JSON_LIMIT = 1024 * 1024  # a run record is a few KB; a larger file is not one
_EVENT_FILE = "events.out.tfevents."  # TensorBoard's event files, in tb/


def _is_ours_by_name(name):
    """A name this package writes in a run folder."""
    return (name in (LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG, CHECKPOINT_STATE, TENSORBOARD, RESERVE)
            or name.startswith(CHECKPOINT_PREFIX + "-"))


# What a process was writing when it was killed: atomic_write's ``<name>.tmp<pid>``, TensorFlow's
# ``<checkpoint file>.tempstate<number>`` and ``checkpoint.tmp<hex>``.
_TEMPORARY_NAME = re.compile(r"(.+)\.(?:tmp|tempstate)[0-9a-f]+")


def _is_leftover(name):
    """A file of the run's, left under its temporary name by a process killed while it wrote it."""
    match = _TEMPORARY_NAME.fullmatch(name)
    return match is not None and _is_ours_by_name(match.group(1))


class RunError(BadInput):
    """A run folder that cannot be written or read; the message says which and why, in one line."""


def open_regular(path, what="file"):
    """Open ``path`` for reading in binary, or raise RunError: a FIFO, a device or a folder is refused at once
    (reading a FIFO would wait for a writer forever, /dev/zero never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{path}: not a regular {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def temporary_path(path, pid=None):
    """Where process ``pid`` (default: this one) writes ``path`` before renaming it (``atomic_write``)."""
    return f"{path}.tmp{os.getpid() if pid is None else pid}"


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the result to ``path``; a failure leaves ``path`` as it was."""
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # (a failed write names no file; the one line it makes should: a full disk's)
            e.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path, data):
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)  # strict JSON: no NaN
            f.write("\n")
    atomic_write(path, write)


def write_csv(path, header, rows):
    """A CSV of ``rows`` (each a sequence of values) under ``header``, written atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(header + "\n")
            f.writelines(",".join(map(str, row)) + "\n" for row in rows)
    atomic_write(path, write)


class _LineFile:
    """A new file that grows by whole lines: a write that fails (a full disk) is cut back, so the file never
    ends in half a line."""

    def __init__(self, folder, name, folder_fd):
        self._fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                           0o666, dir_fd=folder_fd)
        self._path = os.path.join(folder, name)
        self._size = 0

    def write(self, line):
        data = line.encode()
        try:
            written = 0
            while written < len(data):
                n = os.write(self._fd, data[written:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            raise OSError(e.errno, e.strerror, self._path) from None
        self._size += len(data)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RunWriter:
    """Writes one run folder. Create it before anything heavy, so a bad ``--out`` is refused at once.

    ``force``: the folder may hold a run already (its ``run.json`` listing its files); those files are removed,
    and nothing else. A folder without ``run.json``, a listed file that is a symbolic link, or a file of the
    run's names that the record does not list is refused, before anything is removed.
    """

    def __init__(self, path, force=False):
        self.path = str(path)
        check_folder_path(self.path)
        try:
            os.path.abspath(self.path).encode("utf-8")
        except UnicodeEncodeError:  # a byte of another encoding, as the file system handed it to Python
            raise RunError(f"--out {os.fsencode(self.path)!r}: not UTF-8, and TensorFlow saves a checkpoint only "
                           f"under a UTF-8 path") from None
        if self._holds_files() and not force:
            os.close(_lock_folder(self.path))  # a folder whose run is training says so
            raise RunError(f"--out {self.path}: the folder exists and is not empty (give --force to overwrite "
                           f"the files of a run in it)")
        self.steps_done = 0
        self.last_loss = None
        self.info = {"status": "running", "stage": "start"}
        self.files = []
        self._folder = self._log = self._losses = None
        try:
            os.makedirs(self.path, exist_ok=True)
            self._folder = _lock_folder(self.path)
            if force:
                self._remove_old_run()
            elif self._holds_files():  # another start filled it since the first look
                raise RunError(f"--out {self.path}: the folder exists and is not empty (give --force to overwrite "
                               f"the files of a run in it)")
            self._log = _LineFile(self.path, LOG, self._folder)
            self.files.append(LOG)
            self._losses = _LineFile(self.path, LOSSES, self._folder)
            self.files.append(LOSSES)
            self._losses.write("epoch,batch,loss\n")
            self._reserve()
            self.files.append(RUN_JSON)
            self.write_info()
        except BaseException as e:
            for name in self.files:  # what this start made, all of it new (O_EXCL)
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self._folder)
            self.files = []
            self.close()
            if isinstance(e, OSError) and not machine_failure(e):
                if os.path.lexists(self.path) and not os.path.isdir(self.path):
                    raise RunError(f"--out {self.path}: a file, not a folder") from None
                raise RunError(f"--out {self.path}: cannot write there ({e.strerror})") from None
            raise

    def file(self, name):
        return os.path.join(self.path, name)

    def _holds_files(self):
        try:
            return os.path.isdir(self.path) and bool(os.listdir(self.path))
        except OSError as e:
            raise RunError(f"--out {self.path}: cannot read the folder ({e.strerror})") from None

    def _remove_old_run(self):
        """Remove the files the folder's run.json lists as its run's, and those a killed run left under a temporary
        name, after checking that nothing else is in the way."""
        if not os.path.lexists(self.file(RUN_JSON)):
            if self._holds_files():
                raise RunError(f"--out {self.path}: holds no {RUN_JSON}, so nothing in it is known to be a run's; "
                               f"--force replaces only the files of a run")
            return
        listed, present = _listed_files(self.path), os.listdir(self.path)
        leftovers = [name for name in present if _is_leftover(name) and stat.S_ISREG(os.lstat(self.file(name)).st_mode)]
        for name in present:
            if _is_ours_by_name(name) and name not in listed and name not in leftovers:
                raise RunError(f"--out {self.path}: {name} is in the way and {RUN_JSON} does not list it as the "
                               f"run's; move it, or choose another folder")
        for name in listed:
            try:
                mode = os.lstat(self.file(name)).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise RunError(f"--out {self.path}: {name} is a symbolic link; --force removes a run's own files and "
                               f"follows no link")
            if stat.S_ISDIR(mode):
                foreign = [n for n in os.listdir(self.file(name))
                           if f"{name}/{n}" not in listed and not n.startswith(_EVENT_FILE)]
                if foreign:
                    raise RunError(f"--out {self.path}: {name}/ holds {foreign[0]}, which the run did not make")
        for name in [*leftovers, *sorted(listed, key=lambda n: (-n.count("/"), n == RUN_JSON))]:  # run.json last
            _remove(self._folder, name)

    def _reserve(self):
        """Hold RESERVE_BYTES of disk in RESERVE until the run's last record is written."""
        reserve = _LineFile(self.path, RESERVE, self._folder)
        self.files.append(RESERVE)
        try:
            reserve.write("\n" * RESERVE_BYTES)
        finally:
            reserve.close()

    def _free_reserve(self):
        if RESERVE in self.files and self._folder is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(RESERVE, dir_fd=self._folder)
            self.files.remove(RESERVE)

    def log(self, line):
        """Print a log line and append it to ``train.log``."""
        print(line, flush=True)
        self._log.write(line + "\n")

    def record(self, epoch_idx, batch_idx, loss):
        """Append one step's loss to ``losses.csv`` (float32's shortest exact text: it reads back bit for bit)."""
        self._losses.write(f"{epoch_idx},{batch_idx},{np.float32(loss)!s}\n")
        self.steps_done += 1
        self.last_loss = float(loss)

    def add_files(self, names):
        """Record more files as the run's own (in ``run.json``'s ``files``)."""
        self.files.extend(name for name in names if name not in self.files)
        self.write_info()

    def write_info(self, **fields):
        """Merge ``fields`` into ``run.json`` and rewrite it atomically; on a full disk, with the reserve's space."""
        self.info.update(fields)
        record = {**{k: v for k, v in self.info.items() if k != "files"}, "files": self.files}
        try:
            write_json(self.file(RUN_JSON), record)
        except OSError as e:
            if not machine_failure(e) or RESERVE not in self.files:
                raise
            self._free_reserve()
            self.write_info()

    def finish(self, **fields):
        """The run's last record: the reserve is given back first."""
        self._free_reserve()
        self.write_info(**fields)

    def close(self):
        """Close the files, give back the reserve, and unlock the folder."""
        for f in (self._log, self._losses):
            if f is not None:
                f.close()
        if self._folder is not None:
            with contextlib.suppress(OSError):
                self._free_reserve()
            os.close(self._folder)  # releases the lock
            self._folder = None


def _lock_folder(path):
    """An open descriptor of the folder, locked (``flock``) for as long as it stays open; RunError if another
    process holds the lock."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError(f"--out {path}: a run is training in this folder now (it is locked); wait for it to end, "
                       f"or choose another folder") from None
    except OSError:  # a file system without locks (some network ones): go on unlocked
        pass
    return fd


def _listed_files(path):
    """The run's own files by its run.json: plain names in the folder, or name/name one folder down."""
    info = read_run_json(os.path.join(path, RUN_JSON))
    files = info.get("files")

    def plain(name):
        parts = name.split("/") if isinstance(name, str) else []
        return 1 <= len(parts) <= 2 and all(p not in ("", ".", "..") and "\0" not in p for p in parts)

    if not isinstance(files, list):
        raise RunError(f"{os.path.join(path, RUN_JSON)}: lists no files of the run (written by an older "
                       f"echo_rnn_tf1?), so --force cannot tell them from yours; remove them yourself")
    odd = next((name for name in files if not plain(name)), None)
    if odd is not None:
        raise RunError(f"{os.path.join(path, RUN_JSON)}: lists {odd!r}, not a file of the run's folder (a run lists "
                       f"names in it, or one folder down), so --force removes nothing; remove them yourself")
    for name in files:
        if "/" in name and name.split("/")[0] not in files:
            raise RunError(f"{os.path.join(path, RUN_JSON)}: lists {name} but not its folder")
    return set(files)


def _remove(folder_fd, name):
    """Remove the file or empty folder ``name`` (``a`` or ``a/b``) relative to ``folder_fd``, following no link."""
    parent_fd = folder_fd
    *inside, leaf = name.split("/")
    try:
        if inside:
            parent_fd = os.open(inside[0], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder_fd)
        if stat.S_ISDIR(os.lstat(leaf, dir_fd=parent_fd).st_mode):
            inner_fd = os.open(leaf, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            try:
                for entry in os.listdir(inner_fd):
                    if entry.startswith(_EVENT_FILE):  # TensorBoard's, from a run killed before it listed them
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry, dir_fd=inner_fd)
            finally:
                os.close(inner_fd)
            with contextlib.suppress(OSError):  # not empty: something came in since the check; leave it
                os.rmdir(leaf, dir_fd=parent_fd)
        else:
            os.unlink(leaf, dir_fd=parent_fd)
    except FileNotFoundError:
        pass
    finally:
        if parent_fd != folder_fd:
            os.close(parent_fd)


def checkpoint_digests(path, prefix):
    """SHA-256 of each of the checkpoint's files that hold the weights (``PREFIX.index``, ``PREFIX.data-*``)."""
    digests = {}
    for name in sorted(os.listdir(path)):
        if name == f"{prefix}.index" or name.startswith(f"{prefix}.data-"):
            digests[name] = file_digest(os.path.join(path, name))
    return digests


def file_digest(path):
    digest = hashlib.sha256()
    with open_regular(path, "checkpoint file") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions():
    """Versions of what a run depends on, for run.json."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def read_losses(path):
    """Read ``losses.csv`` back as ``(epochs, batches, losses)`` arrays; losses are float32, bit for bit. A row
    without its line end is a cut file (a run writes whole rows, even when killed): ValueError, as for a bad row."""
    epochs, batches, losses = [], [], []
    with open_regular(path) as f:
        next(f, None)  # the header
        for number, line in enumerate(f, start=2):
            if not line.endswith(b"\n"):
                raise ValueError(f"line {number} is cut short: no line end")
            epoch, batch, loss = line.decode().rstrip("\n").split(",")
            epochs.append(epoch)
            batches.append(batch)
            losses.append(loss)
    return np.array(epochs, dtype=int), np.array(batches, dtype=int), np.array(losses, dtype=np.float32)


def read_run_json(info_path):
    """The record in a ``run.json`` (a JSON object), or RunError naming the file and what is wrong."""
    with open_regular(info_path, "run record") as f:
        text = f.read(RUN_JSON_LIMIT + 1)
    try:
        if len(text) > RUN_JSON_LIMIT:
            raise ValueError(f"larger than {RUN_JSON_LIMIT // 1024} KiB; a run record is a few KB")
        info = json.loads(text)
        if not isinstance(info, dict):
            raise TypeError(f"a JSON {type(info).__name__}, not an object")
    except RecursionError:
        raise RunError(f"{info_path}: unreadable run record (nested too deeply)") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RunError(f"{info_path}: unreadable run record ({type(e).__name__}: {e})") from None
    return info


def load_run(path):
    """Read a run folder's ``run.json``; return ``(info, config)`` or raise RunError."""
    path = str(path)
    if not os.path.isdir(path):
        raise RunError(f"{path}: not a run folder (a file)" if os.path.lexists(path) else f"{path}: no such run folder")
    info_path = os.path.join(path, RUN_JSON)
    if not os.path.lexists(info_path):
        raise RunError(f"{path}: not a run folder (it has no {RUN_JSON})")
    info = read_run_json(info_path)
    try:
        config = Config.from_dict(info["config"])
    except (ValueError, KeyError, TypeError, ConfigError) as e:
        raise RunError(f"{info_path}: unreadable run record ({type(e).__name__}: {e})") from None
    return info, config
