"""The echo data (生成数据): a random binary series and the same series shifted by ``echo_step``, drawn as the
source draws it (from numpy's global random state, before ``W2``)."""
import numpy as np


def generate_data(config, rng=np.random):
    """Return ``(inputs_value, targets_value)``, int arrays of shape [batch_size, total_series_length // batch_size].

    ``rng`` is numpy's global random state, as in the source, or a ``np.random.RandomState`` for data that must
    leave the global state alone (``RandomState(s)`` draws what ``np.random.seed(s)`` then the source draws).

    The targets are the inputs rolled right by ``echo_step``; then the first ``echo_step`` targets of every
    ``truncated_backprop_length`` window of the flat series are set to 0. The source does this because each
    window is fed from a zero state: the net cannot know the inputs that came before the window, so those
    targets are made learnable (always 0). The roll also wraps the series' last bits to its front, but those
    land in the first window's zeroed positions.

    With ``config.targets == "series"`` (for a state carried from window to window, as in Hallström's series)
    only the series' first ``echo_step`` targets are zeroed; the rows the series is cut into follow each other
    in it, so rows 1 and on begin with the echo of the previous row's last bits.
    """
    inputs_value = np.array(rng.choice(2, config.total_series_length, p=[0.5, 0.5]))
    if config.targets == "window":
        targets_value = zero_window_starts(np.roll(inputs_value, config.echo_step), config)
    else:
        targets_value = zero_series_start(np.roll(inputs_value, config.echo_step), config)
    inputs_value = inputs_value.reshape((config.batch_size, -1))    # [batch_size, series_length / batch_size]
    targets_value = targets_value.reshape((config.batch_size, -1))  # [batch_size, series_length / batch_size]
    return inputs_value, targets_value


def windows(values, config):
    """``[batch_size, num_batches, truncated_backprop_length]``: row ``b``'s window ``k`` is what the source feeds
    as row ``b`` of batch ``k`` (``values[:, k * length:(k + 1) * length]``)."""
    return values.reshape(config.batch_size, config.num_batches, config.truncated_backprop_length)


def zero_window_starts(targets_value, config):
    """Set the first ``echo_step`` entries of every window of the flat series to 0, in place; return it."""
    for i in range(config.num_batches * config.batch_size):
        start = i * config.truncated_backprop_length
        targets_value[start : start + config.echo_step] = 0
    return targets_value


def zeroed_positions(config):
    """How many positions at the start of every window have target 0: ``echo_step`` with the source's targets,
    none with the series' (``targets == "series"``)."""
    return config.echo_step if config.targets == "window" else 0


def zero_series_start(targets_value, config):
    """Set the first ``echo_step`` entries of the flat series to 0 (the wrapped end of the roll), in place; return it."""
    targets_value[:config.echo_step] = 0
    return targets_value


def echo_targets(bits, config):
    """The targets the net is trained to give for ``bits``, a flat series of whole windows, without ``generate_data``'s
    wrap-around: each window's first ``echo_step`` are 0, the rest echo its own inputs; with ``targets == "series"``,
    only the series' first ``echo_step`` are 0 and the rest echo the input ``echo_step`` steps earlier, across windows.
    """
    if config.targets == "series":
        return zero_series_start(np.roll(np.asarray(bits).reshape(-1), config.echo_step), config)
    windows = np.asarray(bits).reshape(-1, config.truncated_backprop_length)
    targets = np.zeros_like(windows)
    targets[:, config.echo_step:] = windows[:, : config.truncated_backprop_length - config.echo_step]
    return targets.reshape(-1)
