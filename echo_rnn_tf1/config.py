"""Hyperparameters of the Echo-RNN (定义参数), with the 2017 source's values as defaults.

The last six fields are variants the source's own lineage went on to (Erik Hallström's series "How to build a
Recurrent Neural Network in TensorFlow", on which the notebook is built), each defaulting to what the source does.
"""
import dataclasses
import math
import struct

from .failures import BadInput

FLOAT32_MAX = 3.4028234663852886e38  # the graph computes in float32: a rate that rounds past it is infinite there
FLOAT32_TINY = 1.401298464324817e-45  # the smallest float32 above 0: a rate below about half of it is 0 there
ADAGRAD_INITIAL_ACCUMULATOR = 0.1    # tf.compat.v1.train.AdagradOptimizer's default, which the source uses
SEED_LIMIT = 2**32                   # numpy's legacy seeding, which the source uses, takes 0 <= seed < 2**32
LOG_EVERY = 100                      # the source prints a loss line every 100 batches
# Sizes no run on a computer of today can hold, refused up front (a run of the defaults: 50,000 bits, 26 parameters,
# 200 activations a step); below them, a run that does not fit ends out of memory, and its folder says so.
SERIES_LIMIT = 10**8       # bits of the series: numpy holds 24 bytes of each (draws, roll, targets): 2.4 GB
PARAMETERS_LIMIT = 10**8   # trained weights: each with its accumulator, gradient and initial value, 1.6 GB
ACTIVATIONS_LIMIT = 10**8  # a step's cell activations (batch x window x units x layers): 400 MB each copy
STEPS_LIMIT = 10**7        # steps of a run: its losses kept in memory take 400 MB (a default run has 5000; 10**7 take
                           # 3 hours here), and its train.log stays within what compare reads (16 MiB: 40 million)
VARIANTS = ("carry_state", "targets", "new_data_each_epoch", "cell", "num_layers", "dropout")
CHOICES = {"targets": ("window", "series"), "cell": ("basic", "lstm", "gru")}  # the first of each is the source's


class ConfigError(BadInput, ValueError):
    """A hyperparameter value the model cannot use; the message names the flag, the value and the rule."""


@dataclasses.dataclass(frozen=True)
class Config:
    num_epochs: int = 5                    # passes over the same series (the source never regenerates it)
    total_series_length: int = 50000       # length of the random binary series
    truncated_backprop_length: int = 10    # steps per window, each fed from a zero state (unless carry_state)
    state_size: int = 4                    # units in the RNN cell (the source's: a BasicRNNCell)
    num_classes: int = 2                   # 0 and 1
    echo_step: int = 3                     # the target is the input this many steps earlier
    batch_size: int = 5                    # rows the series is cut into
    learning_rate: float = 0.3             # Adagrad, TF1's initial accumulator 0.1
    # Variants, not in the source; each default is what the source does.
    carry_state: bool = False              # feed each window's final_state as the next window's initial state
    targets: str = "window"                # zero the first echo_step targets of every window; series: of the series
    new_data_each_epoch: bool = False      # draw a fresh series at every epoch after the first
    cell: str = "basic"                    # BasicRNNCell; lstm: LSTMCell; gru: GRUCell (tf.compat.v1.nn.rnn_cell)
    num_layers: int = 1                    # cells stacked in a MultiRNNCell
    dropout: float = 0.0                   # dropout on each cell's outputs while training (DropoutWrapper)

    def __post_init__(self):
        self.validate()  # a Config that exists is one the model can use

    @property
    def num_batches(self) -> int:
        """Windows per row, i.e. training steps per epoch (1000 with the defaults)."""
        return self.total_series_length // self.batch_size // self.truncated_backprop_length

    @property
    def num_steps(self) -> int:
        return self.num_epochs * self.num_batches

    def validate(self) -> "Config":
        """Return self, or raise ConfigError naming the first bad value (as its CLI flag)."""
        for name in ("num_epochs", "total_series_length", "truncated_backprop_length", "state_size", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _refuse(name, value, "must be a positive integer")
        if not _is_int(self.num_classes) or self.num_classes < 2:
            _refuse("num_classes", self.num_classes, "must be an integer of at least 2")
        if not _is_int(self.echo_step) or not 0 <= self.echo_step < self.truncated_backprop_length:
            _refuse("echo_step", self.echo_step,
                    f"must be an integer from 0 to truncated_backprop_length - 1 "
                    f"({self.truncated_backprop_length - 1}); a larger echo zeroes every target")
        window_block = self.batch_size * self.truncated_backprop_length
        if self.total_series_length % window_block:
            _refuse("total_series_length", self.total_series_length,
                    f"must be a multiple of batch_size * truncated_backprop_length ({window_block}), "
                    f"or the zeroed targets fall out of step with the windows")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < _float32(lr) < math.inf:
            _refuse("learning_rate", lr, f"must be a number greater than 0 and finite in float32 (from "
                                         f"{FLOAT32_TINY:.4g} to {FLOAT32_MAX:.4g}; a smaller rate is 0 there)")
        for name in ("carry_state", "new_data_each_epoch"):
            if not isinstance(getattr(self, name), bool):
                _refuse(name, getattr(self, name), "must be true or false")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                _refuse(name, getattr(self, name), f"must be one of {', '.join(choices)}")
        if not _is_int(self.num_layers) or self.num_layers < 1:
            _refuse("num_layers", self.num_layers, "must be a positive integer")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not (math.isfinite(p) and 0 <= p < 1):
            _refuse("dropout", p, "must be a number from 0 (no dropout) to less than 1")
        if self.total_series_length > SERIES_LIMIT:
            _refuse("total_series_length", self.total_series_length, f"more than {SERIES_LIMIT:.0e} bits")
        if self.num_steps > STEPS_LIMIT:
            raise ConfigError(f"--num-epochs {self.num_epochs}: {self.num_steps:,} steps ({self.num_batches} an "
                              f"epoch), more than {STEPS_LIMIT:,}")
        gates = {"basic": 1, "gru": 3, "lstm": 4}[self.cell]
        state = self.state_size * (2 if self.cell == "lstm" else 1)
        parameters = (self.num_layers * gates * (self.state_size + max(self.num_classes, self.state_size) + 1)
                      * self.state_size + (self.state_size + 1) * self.num_classes)
        if parameters > PARAMETERS_LIMIT:
            raise ConfigError(f"--state-size {self.state_size} --num-classes {self.num_classes} --num-layers "
                              f"{self.num_layers} --cell {self.cell}: {parameters:.3g} weights, more than "
                              f"{PARAMETERS_LIMIT:.0e}")
        activations = self.batch_size * self.truncated_backprop_length * max(
            gates * state * self.num_layers, self.num_classes)
        if activations > ACTIVATIONS_LIMIT:
            raise ConfigError(f"--batch-size {self.batch_size} --truncated-backprop-length "
                              f"{self.truncated_backprop_length}: {activations:.3g} activations a step (with "
                              f"--state-size {self.state_size} --num-classes {self.num_classes}), more than "
                              f"{ACTIVATIONS_LIMIT:.0e}")
        return self

    def changes_from_source(self) -> list:
        """The names of the fields whose values are not the source's, in field order."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != f.default]

    def variant(self) -> list:
        """The ``VARIANTS`` among ``changes_from_source()``: [] for the source's network."""
        return [name for name in self.changes_from_source() if name in VARIANTS]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        """Build from a dict (e.g. a run.json), which must hold every hyperparameter of the source and nothing unknown;
        a variant missing takes the source's way (a record from before the variants has none)."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown hyperparameter(s): {', '.join(unknown)}")
        missing = [name for name in known if name not in values and name not in VARIANTS]
        if missing:  # (never read as the source's value: a record missing it is damaged)
            raise ConfigError(f"no {', '.join(missing)} among the hyperparameters")
        return cls(**values)


def _float32(value) -> float:
    """``value`` rounded to float32 (inf where it rounds past float32's largest)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.inf


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse(name, value, rule):
    shown = repr(value) if isinstance(value, str) and name not in CHOICES else value  # (a record's "4" is not 4)
    raise ConfigError(f"--{name.replace('_', '-')} {shown}: {rule}")


# What each field means, for --help: in English, and the source's own comment where it has one.
MEANING = {
    "num_epochs": "passes over the series (the source reuses one series) · 全部数据一共反复训练次数",
    "total_series_length": "length of the random binary series",
    "truncated_backprop_length": "steps per window, each fed from a zero state unless --carry-state · "
                                 "输入X1,x2,...Xn 的长度",
    "state_size": "units in the RNN cell · 隐藏层大小",
    "num_classes": "output classes; the echo has 0 and 1 · 输出的class，本程序只有0,1两种输出",
    "echo_step": "the target is the input this many steps earlier · 输出偏移位数",
    "batch_size": "rows the series is cut into, one window of each per step",
    "learning_rate": "Adagrad's learning rate (the source writes AdagradOptimizer(0.3))",
    # the variants'
    "carry_state": "with --engine tf1: feed each window's final state as the next window's initial state, row by "
                   "row, from zeros at every epoch (the source starts every window from zeros)",
    "targets": "with --engine tf1: window: zero the first echo_step targets of every window, as the source; "
               "series: only the series' first echo_step (what a carried state can learn)",
    "new_data_each_epoch": "with --engine tf1: draw a fresh series every epoch (the source prints 'New data' but "
                           "reuses its one series)",
    "cell": "with --engine tf1: the tf.compat.v1.nn.rnn_cell class: BasicRNNCell (the source's), LSTMCell, GRUCell",
    "num_layers": "with --engine tf1: cells stacked in a MultiRNNCell",
    "dropout": "with --engine tf1: dropout probability on each cell's outputs, while training only",
}


def number_type(kind):
    """argparse type for a flag of ``kind`` (int or float), written as Python writes numbers: ``int()`` and ``float()``
    alone also read other scripts' digits (``٣`` is 3), underscores (``1_0``) and spaces, which the logs refuse."""
    def number(text):
        if not text.isascii() or "_" in text or text != text.strip():
            raise ValueError(text)
        value = kind(text)
        if kind is int and text != str(value):  # ("05", "+5": int() reads them, Python writes neither)
            raise ValueError(text)
        return value

    number.__name__ = kind.__name__  # (argparse's "invalid int value: ...")
    return number


def seed_type(text):
    """argparse type for a seed: a whole number numpy can seed with."""
    import argparse

    try:
        seed = number_type(int)(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not a whole number as Python writes it") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}: must be from 0 to 2**32 - 1, as numpy requires")
    return seed


def folder_type(text):
    """argparse type for --out: a path, not an empty one (which would fall back to a new folder unasked)."""
    import argparse

    if not text:
        raise argparse.ArgumentTypeError("an empty path (leave --out out for a new folder under runs/)")
    return text
