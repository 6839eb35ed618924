"""A run folder read back: its files' names, ``run.json`` as one typed, validated ``Run``, and ``losses.csv``.

Every command asks ``read_run``: a damaged record is one answer everywhere (``RunError``, exit code 2), and a
record can never be read as "no changes". While a run trains, it holds a lock on its folder (``flock``); a record
that says ``running`` in a folder nobody holds is a run that died (killed, out of memory, its machine gone).
"""
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import reprlib
import stat

import numpy as np

from .config import SEED_LIMIT, Config, ConfigError
from .failures import BadInput

LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG = "train.log", "losses.csv", "run.json", "loss.png", "predictions.png"
MEMORY_PNG, STATES_PNG, WEIGHTS_PNG = "memory.png", "states.png", "weights.png"
CHECKPOINT_PREFIX, CHECKPOINT_STATE, TENSORBOARD = "model.ckpt", "checkpoint", "tb"
CHECKPOINT_NAME = re.compile(r"checkpoint|model\.ckpt-\d+\.(?:index|meta|data-\d{5}-of-\d{5})")  # a Saver's files
RUN_FILES = (LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG, MEMORY_PNG, STATES_PNG, WEIGHTS_PNG, CHECKPOINT_STATE,
             TENSORBOARD)  # and the checkpoint's model.ckpt-N.*
STATUSES = ("running", "finished", "diverged", "interrupted", "failed")
LOSSES_HEADER = "epoch,batch,loss\n"  # losses.csv's first line
RUN_JSON_LIMIT = 1024 * 1024  # a run record is a few KB; a larger file is not one


class RunError(BadInput):
    """A run folder that cannot be written or read; the message says which and why, in one line."""


@dataclasses.dataclass(frozen=True)
class Run:
    """What ``run.json`` says of a run, checked. ``died``: it says ``running`` but nobody holds the folder."""
    path: str
    status: str                 # one of STATUSES
    stage: str                  # how far it got: start, training, checkpoint, pictures, done
    cause: str | None
    seed: int
    config: Config
    engine: str                 # tf1 or tf2
    rnn: str | None             # tf1: dynamic_rnn or static_rnn
    portable: bool
    machine: dict | None        # machine.describe()
    files: tuple                # the run's own files: what --force removes
    checkpoint: dict | None     # {"prefix": "model.ckpt-N", "sha256": {file name: digest}}
    steps_done: int
    died: bool

    @property
    def state(self):
        """The status in words, for people: ``died`` for a run that says ``running`` in a folder nobody holds."""
        return "died (killed, or out of memory, before its end was recorded)" if self.died else self.status


def read_run(path):
    """The run in folder ``path``, or RunError naming the file and what is wrong with it."""
    path = str(path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as e:  # (no such folder, a link to nothing, a name too long: as compare and --out say it)
        raise RunError(f"{path}: cannot read ({e.strerror})") from None
    if not is_folder:
        raise RunError(f"{path}: not a folder (a run folder holds {RUN_JSON} and the files it lists)")
    info_path = os.path.join(path, RUN_JSON)
    if not os.path.lexists(info_path):
        raise RunError(f"{path}: not a run folder (it has no {RUN_JSON})")
    with open_regular(info_path, "run record") as f:
        text = f.read(RUN_JSON_LIMIT + 1)
    try:
        if len(text) > RUN_JSON_LIMIT:
            raise ValueError(f"larger than {RUN_JSON_LIMIT // 1024} KiB; a run record is a few KB")
        info = json.loads(text)
        if not isinstance(info, dict):
            raise ValueError(f"a JSON {type(info).__name__}, not an object")
        return _run(path, info)
    except RecursionError:
        raise RunError(f"{info_path}: unreadable run record (nested too deeply)") from None
    except (ValueError, TypeError, KeyError, ConfigError) as e:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        what = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise RunError(f"{info_path}: unreadable run record ({what})") from None


def _run(path, info):
    def field(name, kinds, rule=lambda value: True, default=KeyError):
        value = info.get(name, default)
        if value is KeyError:
            raise KeyError(name)
        if not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool or not rule(value):
            raise ValueError(f"{name}: {reprlib.repr(value)} is not what a run records")  # (long: elided with ...)
        return value

    files = field("files", list)
    foreign = [name for name in files if not (isinstance(name, str) and is_run_file(name))]
    if foreign:  # (named: in a long list, the one that is wrong)
        raise ValueError(f"files: {reprlib.repr(foreign[0])} is not a name a run gives its files")
    checkpoint = field("checkpoint", (dict, type(None)), _checkpoint_record, default=None)
    status = field("status", str, lambda s: s in STATUSES)
    steps_done = field("steps_done", int, lambda n: n >= 0, default=0)
    if checkpoint is not None and checkpoint["prefix"] != f"{CHECKPOINT_PREFIX}-{steps_done}":
        raise ValueError(f"checkpoint: {checkpoint['prefix']} is not of the {steps_done} steps it says the run trained")
    return Run(path=path, status=status, stage=field("stage", str), cause=field("cause", (str, type(None)), default=None),
               seed=field("seed", int, lambda s: 0 <= s < SEED_LIMIT), config=Config.from_dict(field("config", dict)),
               engine=field("engine", str, lambda e: e in ("tf1", "tf2")),
               rnn=field("rnn", (str, type(None)), lambda r: r in (None, "dynamic_rnn", "static_rnn"), default=None),
               portable=field("portable", bool), steps_done=steps_done,
               machine=field("machine", (dict, type(None)), _machine_record, default=None),
               files=tuple(files), checkpoint=checkpoint, died=status == "running" and not is_locked(path))


def _machine_record(machine):
    """``machine.describe()``'s record: names and numbers, and whether TensorFlow is a CUDA build (or not known)."""
    return (all(isinstance(v, (str, int, type(None))) for v in machine.values())
            and machine.get("cuda_build") in (True, False, None))


def is_run_file(name):
    """A name a run gives its files: ``train.log``, ``losses.csv``, ``run.json``, the pictures, the checkpoint's
    (``checkpoint``, ``model.ckpt-N.*``), TensorBoard's ``tb`` and its ``tb/events.out.tfevents.*``. Only these
    are what ``--force`` may remove: a record listing a user's file is refused."""
    top, _, inner = name.partition("/")
    if "\0" in name or inner and (top != TENSORBOARD or not inner.startswith("events.out.tfevents.") or "/" in inner):
        return False
    return top in RUN_FILES or CHECKPOINT_NAME.fullmatch(top) is not None


def _checkpoint_record(record):
    if record is None:
        return True
    prefix, digests = record.get("prefix"), record.get("sha256")
    return (isinstance(prefix, str) and re.fullmatch(r"model\.ckpt-\d+", prefix) is not None
            and isinstance(digests, dict) and digests and all(
                isinstance(n, str) and n.startswith(prefix + ".") and CHECKPOINT_NAME.fullmatch(n)
                and isinstance(d, str) for n, d in digests.items()))


def lock(path):
    """An open descriptor of folder ``path``, locked (``flock``) for as long as it stays open; RunError if another
    process holds it. A lock dies with its process, however that ends."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError(f"{path}: in use by another run or envelope now (it is locked); wait for it to end, or "
                       f"choose another folder") from None
    except OSError:  # a file system without locks (some network ones): go on unlocked
        pass
    return fd


def is_locked(path):
    """Whether a process holds folder ``path``'s lock now."""
    try:
        os.close(lock(path))
    except RunError:
        return True
    except OSError:
        pass
    return False


def open_regular(path, what="file"):
    """Open ``path`` for reading in binary, or raise RunError: a FIFO, a device or a folder is refused at once
    (reading a FIFO would wait for a writer forever, /dev/zero never ends)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{path}: not a regular {what}")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_losses(path, steps=None):
    """``losses.csv`` as ``(epochs, batches, losses)`` arrays; losses are float32, bit for bit. The rows must be what a
    run writes: whole (a run writes whole rows, even when killed), ASCII, epoch 0 step 0 first, each the next step of
    its epoch or the first of the next, every epoch as long as the first but the last; and ``steps`` of them if given
    (``Run.steps_done``). Anything else is RunError, naming the line."""
    epochs, batches, losses, first_length = [], [], [], None
    with open_regular(path) as f:
        for number, line in enumerate(f, start=1):
            try:
                if number == 1:
                    if line != LOSSES_HEADER.encode():
                        raise ValueError(f"not the header {LOSSES_HEADER.strip()}")
                    continue
                if not line.endswith(b"\n"):
                    raise ValueError("cut short: no line end")
                if not line.isascii():
                    raise ValueError("not ASCII")
                text = line.decode().rstrip("\n")
                fields = text.split(",")
                if len(fields) != 3:
                    raise ValueError(f"{text[:40]!r} is not epoch,step,loss")
                epoch, batch, loss = int(fields[0]), int(fields[1]), np.float32(fields[2])
                if fields != [str(epoch), str(batch), str(loss)]:  # (int() reads " 1", "1_0" and any script's digits)
                    raise ValueError(f"{text[:40]!r} is not as a run writes it")
                expected = [(0, 0)] if not epochs else [(epochs[-1], batches[-1] + 1), (epochs[-1] + 1, 0)]
                if (epoch, batch) not in expected:
                    raise ValueError(f"epoch {epoch} step {batch} where a run writes "
                                     + " or ".join(f"epoch {e} step {b}" for e, b in expected))
                first_length = len(epochs) if epoch == 1 and batch == 0 else first_length
                if epoch > 1 and batch == 0 and batches[-1] + 1 != first_length:
                    raise ValueError(f"epoch {epoch - 1} has {batches[-1] + 1} steps, epoch 0 has {first_length}")
                epochs.append(epoch)
                batches.append(batch)
                losses.append(loss)
            except ValueError as e:
                raise RunError(f"{path}: unreadable (line {number}: {e})") from None
    if steps is not None and steps != len(losses):
        raise RunError(f"{path}: {len(losses)} rows, where run.json says the run trained {steps} steps")
    return np.array(epochs, dtype=int), np.array(batches, dtype=int), np.array(losses, dtype=np.float32)


def file_digest(path):
    digest = hashlib.sha256()
    with open_regular(path, "checkpoint file") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_digests(path, prefix):
    """SHA-256 of each of the checkpoint's files that hold the weights (``PREFIX.index``, ``PREFIX.data-*``)."""
    return {name: file_digest(os.path.join(path, name)) for name in sorted(os.listdir(path))
            if name == f"{prefix}.index" or name.startswith(f"{prefix}.data-")}


def atomic_write(path, write):
    """Call ``write(temporary path)``, then rename it to ``path``: ``path`` is whole, or as it was. The temporary
    file is removed however this ends (a killed process leaves it: ``--force`` removes it)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # (a failed write names no file; the one line it makes should: a full disk's)
            e.filename = str(path)
        raise
    finally:
        if os.path.lexists(tmp):
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
