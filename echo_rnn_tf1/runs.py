"""A run folder: ``train.log``, ``losses.csv``, ``run.json``, ``loss.png`` and the checkpoint.

The log and the losses are written line by line as training goes, so a killed process leaves every row it
had recorded; ``run.json`` and the pictures are written to a temporary name and renamed, so a crash never
leaves half a file.
"""
import json
import os
import platform
import shutil

import numpy as np

from .config import Config, ConfigError

LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG = "train.log", "losses.csv", "run.json", "loss.png", "predictions.png"
CHECKPOINT_PREFIX = "model.ckpt"
_OURS = (LOG, LOSSES, RUN_JSON, LOSS_PNG, PREDICTIONS_PNG, "checkpoint", "tb")


class RunError(Exception):
    """A run folder that cannot be written or read; the message says which and why, in one line."""


def atomic_write(path, write):
    """Call ``write(tmp_path)``, then rename the result to ``path``; a failure leaves ``path`` as it was."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
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


class RunWriter:
    """Writes one run folder. Create it before anything heavy, so a bad ``--out`` is refused at once."""

    def __init__(self, path, force=False):
        self.path = str(path)
        if os.path.isdir(self.path) and os.listdir(self.path):
            if not force:
                raise RunError(f"--out {self.path}: the folder exists and is not empty (give --force to overwrite "
                               f"the files of a run in it)")
            self._remove_old_run()
        try:
            os.makedirs(self.path, exist_ok=True)
            self._log = open(self.file(LOG), "w", buffering=1)        # line-buffered: each line reaches the file
            self._losses = open(self.file(LOSSES), "w", buffering=1)
        except OSError as e:
            raise RunError(f"--out {self.path}: cannot write there ({e.strerror})") from None
        self._losses.write("epoch,batch,loss\n")
        self.steps_done = 0
        self.last_loss = None
        self.info = {}

    def file(self, name):
        return os.path.join(self.path, name)

    def _remove_old_run(self):
        for name in os.listdir(self.path):
            if name in _OURS or name.startswith(CHECKPOINT_PREFIX):
                target = self.file(name)
                shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)

    def log(self, line):
        """Print a log line and append it to ``train.log``."""
        print(line, flush=True)
        self._log.write(line + "\n")

    def record(self, epoch_idx, batch_idx, loss):
        """Append one step's loss to ``losses.csv`` (float32's shortest exact text: it reads back bit for bit)."""
        self._losses.write(f"{epoch_idx},{batch_idx},{np.float32(loss)!s}\n")
        self.steps_done += 1
        self.last_loss = float(loss)

    def write_info(self, **fields):
        """Merge ``fields`` into ``run.json`` and rewrite it atomically."""
        self.info.update(fields)
        write_json(self.file(RUN_JSON), self.info)

    def close(self):
        self._log.close()
        self._losses.close()


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
    """Read ``losses.csv`` back as ``(epochs, batches, losses)`` arrays; losses are float32, bit for bit."""
    with open(path) as f:
        rows = [line.rstrip("\n").split(",") for line in f.readlines()[1:]]
    epochs, batches, losses = zip(*rows) if rows else ((), (), ())
    return np.array(epochs, dtype=int), np.array(batches, dtype=int), np.array(losses, dtype=np.float32)


def load_run(path):
    """Read a run folder's ``run.json``; return ``(info, config)`` or raise RunError."""
    path = str(path)
    if not os.path.isdir(path):
        raise RunError(f"{path}: no such run folder")
    info_path = os.path.join(path, RUN_JSON)
    try:
        with open(info_path) as f:
            info = json.load(f)
        config = Config.from_dict(info["config"])
    except FileNotFoundError:
        raise RunError(f"{path}: not a run folder (it has no {RUN_JSON})") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:  # JSONDecodeError is a ValueError
        raise RunError(f"{info_path}: unreadable run record ({type(e).__name__}: {e})") from None
    return info, config
