"""The shipped bits: seeds 0-9, one default epoch each, trained as ``--portable`` trains: under
``machine.PORTABLE_ENV``, with ``model.exact_adagrad``.

``portable_losses.csv`` (in the package) holds every step's loss of each seed, float32's shortest exact text, and
``portable.json`` their digests with the versions and the machine they were made on. ``doctor --portable`` says
whether this machine reproduces them; ``scripts/portable_bits.py --ship`` writes them.
"""
import hashlib
import json
from importlib import resources

import numpy as np

from .config import Config

SEEDS = tuple(range(10))
CONFIG = Config(num_epochs=1)  # one default epoch: 1000 steps
LOSSES_NAME, INFO_NAME = "portable_losses.csv", "portable.json"


def digest(losses):
    """The SHA-256 of the losses as little-endian float32 bytes: equal digests, equal bits."""
    return hashlib.sha256(np.asarray(losses, dtype="<f4").tobytes()).hexdigest()


def train_seeds(seeds=SEEDS, config=CONFIG, portable=True):
    """``{seed: losses}`` of the source's graph with ``--portable``'s update (``portable=False``: the source's
    own), in this process (TensorFlow loads here, with the current settings)."""
    from .train import train

    return {seed: np.asarray(train(config, seed, log=lambda line: None, portable=portable), dtype=np.float32)
            for seed in seeds}


def write_csv_text(losses_by_seed):
    seeds = sorted(losses_by_seed)
    rows = zip(*(losses_by_seed[seed] for seed in seeds))
    return "step," + ",".join(f"seed{seed}" for seed in seeds) + "\n" + "".join(
        f"{step}," + ",".join(f"{np.float32(x)!s}" for x in row) + "\n" for step, row in enumerate(rows))


def parse_csv_text(text):
    """``{seed: losses}`` from ``write_csv_text``'s output."""
    header, *lines = text.splitlines()
    seeds = [int(name.removeprefix("seed")) for name in header.split(",")[1:]]
    table = np.array([line.split(",")[1:] for line in lines], dtype=np.float32).reshape(len(lines), len(seeds))
    return {seed: table[:, i] for i, seed in enumerate(seeds)}


def shipped():
    """``(losses by seed, info)`` as shipped in the package."""
    files = resources.files(__package__)
    losses = parse_csv_text(files.joinpath(LOSSES_NAME).read_text())
    info = json.loads(files.joinpath(INFO_NAME).read_text())
    return losses, info
