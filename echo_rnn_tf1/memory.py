"""What the network remembers: a linear probe of its state, lag by lag, before and after training; and pictures.

The state is the net's only memory. A probe asks how much of the past can be read from it: for each lag ``k``, a
least-squares fit (the state's values and a bias) of the input ``k`` steps back, thresholded at 0.5, fitted on one
half of the (state, past input) pairs of a fresh series and scored on the other. Lag 0 is the current input.
Trained, the source's net (seed 0) reads lags 0 to ``echo_step`` without error and older ones at 0.48-0.57 (40 series):
it keeps what the echo needs, a 4-unit delay line. Untrained, it already holds the newest bits, fading with age.

The state probed is ``rnn_outputs``, what the output layer ``W2`` reads: for the source's ``BasicRNNCell`` (and a
GRU) that is the whole state at each step. For an LSTM it is ``h``, not ``c``; for stacked layers, the last layer's:
the memory the readout can use, which is the memory the echo needs, and the only part the graph gives step by step.
"""
import collections

import numpy as np

from .data import generate_data, windows
from .model import trained_variables
from .plots import figure

DATA_SEED = 12345  # the fresh series probed (variations.py's eval_seed too); any seed: the series is new numbers
MOST_POINTS = 5000  # states drawn in each panel of states_figure: more only overdraw the clusters

PROBE = ("a linear probe: least squares on the state and a bias, fitted on the first half of a fresh series' "
         "(state, input k steps back) pairs, scored on the second")
Probed = collections.namedtuple("Probed", ["values", "states", "inputs", "accuracy"])
Memory = collections.namedtuple("Memory", ["lags", "untrained", "trained"])  # two Probed: the net before and after


def memory_lags(config):
    """The lags probed: 0 to ``echo_step + 4``, the echo's and four older."""
    return np.arange(config.echo_step + 5)


def pairs(states, inputs, lag):
    """``(states [pairs, state_size], inputs [pairs])``: each state with the input ``lag`` steps before it.

    ``states`` ``[runs, steps, state_size]``, ``inputs`` ``[runs, steps]``: each run starts from a zero state, so the
    state at step ``t`` can know inputs ``0..t`` of its run and none before: the pairs are those with ``t >= lag``.
    A window fed from zeros is a run; a row carrying its state from window to window is one run, across windows.
    """
    steps = max(inputs.shape[1] - lag, 0)  # none when the runs are shorter than the lag
    return states[:, lag:].reshape(-1, states.shape[-1]), inputs[:, :steps].reshape(-1)


def probe_accuracy(states, inputs, lags):
    """For each of ``lags``, the accuracy of a least-squares probe (state and bias, thresholded at 0.5) reading the
    input that many steps back (see ``pairs``). The pairs, run by run and step by step, are split in two: the probe is
    fitted on the first half of the series and scored on the second, with no randomness. NaN: fewer than 2 pairs, or
    a state that is not finite (weights grown huge by a large learning rate: nothing can be read from it)."""
    states, inputs = np.asarray(states, np.float64), np.asarray(inputs)
    accuracy = []
    for lag in lags:
        X, y = pairs(states, inputs, lag)
        half = len(y) // 2
        if not half or not np.isfinite(X).all():
            accuracy.append(np.nan)
            continue
        X = np.column_stack([X, np.ones(len(X))])  # [pairs, state_size + 1]: the bias
        weights = np.linalg.lstsq(X[:half], y[:half], rcond=None)[0]
        accuracy.append(np.mean((X[half:] @ weights > 0.5) == y[half:]))
    return np.array(accuracy)


def unit_correlations(states, inputs, lags):
    """``[state_size, len(lags)]``: each unit's correlation with the input ``lag`` steps back (see ``pairs``); NaN
    where there are fewer than 2 pairs (see ``correlation``)."""
    correlations = np.full((np.shape(states)[-1], len(lags)), np.nan)
    for column, lag in enumerate(lags):
        X, y = pairs(np.asarray(states), np.asarray(inputs), lag)
        correlations[:, column] = [correlation(unit, y) for unit in X.T]
    return correlations


def correlation(x, y):
    """Pearson's r of two series; NaN where it means nothing: fewer than 2 values, one of them constant (a unit
    saturated at 1 by huge weights, a bit that never changes) or not finite."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2:
        return np.nan
    with np.errstate(all="ignore"):  # (inf - inf: NaN, as it should be)
        x, y = x - x.mean(), y - y.mean()
        norm = np.sqrt((x @ x) * (y @ y))
    return x @ y / norm if np.isfinite(norm) and norm > 0 else np.nan


def fresh_states(sess, model, config, seed=DATA_SEED):
    """``(states [runs, steps, state_size], inputs [runs, steps])`` of a fresh series drawn with ``seed``, fed as
    ``config`` trains (``train.run_windows``): each window a run from zeros, or (``carry_state``) each row one run."""
    from .train import run_windows

    inputs_value, targets_value = generate_data(config, np.random.RandomState(seed))
    fed = run_windows(sess, model, inputs_value, targets_value, model.rnn_outputs, config.carry_state)
    states = np.stack([outputs for _, outputs in fed], axis=1)  # [batch_size, num_batches, length, state_size]
    if config.carry_state:
        return states.reshape(config.batch_size, -1, states.shape[-1]), inputs_value
    length = config.truncated_backprop_length
    return states.reshape(-1, length, states.shape[-1]), windows(inputs_value, config).reshape(-1, length)


def memory(sess, model, config, seed=DATA_SEED):
    """The probe's accuracy at ``memory_lags(config)`` for ``model`` in ``sess`` (e.g. a run folder's
    ``evaluate.trained_model``), on the fresh series of ``seed``."""
    return probe_accuracy(*fresh_states(sess, model, config, seed), memory_lags(config))


def probed(sess, model, config, values=None, seed=DATA_SEED):
    """A ``Probed``: ``model`` in ``sess`` (an inference graph: ``evaluate.model_with_values``, ``trained_model``) set
    to ``values`` (by variable name; None: as it is), its states and the probe's accuracy on the fresh series of
    ``seed``."""
    from .evaluate import load_values

    if values is not None:
        load_values(sess, values)
    else:
        values = sess.run(trained_variables(sess.graph))
    states, inputs = fresh_states(sess, model, config, seed)
    return Probed(values, states, inputs, probe_accuracy(states, inputs, memory_lags(config)))


def probe(config, *values, seed=DATA_SEED):
    """``probed`` for each of ``values`` (weights by variable name), in one inference graph of ``config``."""
    from .evaluate import model_with_values

    with model_with_values(config) as (sess, model):  # (``probed`` loads each)
        return [probed(sess, model, config, each, seed) for each in values]


def of_run(sess, model, config, run_seed, seed=DATA_SEED):
    """A run's memory, for ``evaluate``: ``{"probe", "lags", "untrained", "trained"}``, the accuracies as lists (None
    for NaN: JSON has none), of its trained ``model`` in ``sess`` and of the net its seed ``run_seed`` started from
    (which ``sess`` holds afterwards), on the fresh series of ``seed``."""
    from .train import faithful_start

    trained = probed(sess, model, config, seed=seed).accuracy
    untrained = probed(sess, model, config, faithful_start(config, run_seed)[0], seed).accuracy
    as_json = lambda accuracy: [None if np.isnan(a) else float(a) for a in accuracy]  # noqa: E731
    return {"probe": PROBE, "lags": memory_lags(config).tolist(), "untrained": as_json(untrained),
            "trained": as_json(trained)}


def memory_figure(table, config):
    """The memory curve: the probe's accuracy by lag, untrained and trained, the echo's lag and chance marked."""
    fig = figure((7, 3.5), left=0.65, right=0.1, bottom=0.5, top=0.35)
    ax = fig.add_subplot()
    for name, color in (("untrained", "0.55"), ("trained", "tab:blue")):
        accuracy = getattr(table, name).accuracy
        ax.plot(table.lags, accuracy, "o-", color=color, label=f"{name}: " + " ".join(f"{a:.2f}" for a in accuracy))
    ax.axhline(0.5, color="0.5", ls=":", lw=1)
    ax.annotate("chance", (table.lags[0], 0.5), textcoords="offset points", xytext=(0, 3), fontsize=8, color="0.4")
    ax.axvline(config.echo_step, color="tab:red", lw=1, alpha=0.6)
    ax.annotate(f"the echo: {config.echo_step} back", (config.echo_step, 0.42), textcoords="offset points",
                xytext=(4, 0), fontsize=8, color="tab:red")
    ax.set_xticks(table.lags)
    ax.set_ylim(0.4, 1.04)
    ax.set_xlabel("lag k: the input k steps back (0: the current input)")
    ax.set_ylabel("accuracy of a linear probe")
    ax.set_title("What the state remembers: the input k steps back, read from it linearly")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def states_figure(table, config):
    """The states of a fresh series on their principal axes (numpy's SVD), untrained and trained, each coloured by
    the last ``echo_step + 1`` inputs (the bits the echo needs), at the steps where its run has them. Each axis says
    which of those inputs it follows; each row how often the nearest of the codes' mean states names a state's code."""
    bits = config.echo_step + 1
    panels = [(0, 1), (2, 3)] if config.state_size >= 4 else [(0, 1)]
    fig = figure((11, 8), left=1, right=0.2, bottom=0.7, top=0.6, wspace=0.4, hspace=0.35)  # one panel too: its titles
    axes = fig.subplots(2, len(panels), squeeze=False)
    for row, name in zip(axes, ("untrained", "trained")):
        probed = getattr(table, name)
        points = probed.states[:, bits - 1:].reshape(-1, config.state_size)[:MOST_POINTS]
        code = last_inputs(probed.inputs, bits).reshape(-1)[:MOST_POINTS]
        finite = np.isfinite(points).all(axis=1)  # (a state of huge weights may not be: it is left out)
        points, code = points[finite], code[finite]
        projected, share = principal_components(points)
        for ax, (i, j) in zip(row, panels):
            dots = ax.scatter(projected[:, i], projected[:, j], c=code, cmap="turbo", vmin=-0.5, vmax=2 ** bits - 0.5,
                              s=4, alpha=0.5, lw=0)
            ax.set_xlabel(_component_label(projected[:, i], i, share[i], code, bits))
            ax.set_ylabel(_component_label(projected[:, j], j, share[j], code, bits))
        row[0].set_title(f"{name}: the nearest code's mean state names {nearest_centre(points, code):.1%} of the "
                         f"states' codes", loc="left", fontsize=10)
    colorbar = fig.colorbar(dots, ax=axes, shrink=0.9, fraction=0.1, pad=0.04)
    colorbar.set_ticks(codes := range(0, 2 ** bits, 2 ** bits // 16 or 1),  # (at most 16 labels: more would overlap)
                       labels=[format(c, f"0{bits}b") for c in codes], fontsize=7, family="monospace")
    colorbar.set_label(f"the last {bits} inputs, oldest first")
    fig.suptitle(f"The state at steps {bits - 1} and on of each run, on a fresh series ({len(code)} states), "
                 f"on its principal components")
    return fig


def principal_components(points):
    """``(points [n, dims] on their principal axes, each axis's share of the variance)``, numpy's SVD of the centred
    points; an axis beyond their rank (fewer points than dimensions, or points that do not vary) is all zeros."""
    projected, share = np.zeros(points.shape), np.zeros(points.shape[1])
    if len(points):
        centred = points - points.mean(axis=0)
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        projected[:, :len(singular)], variance = centred @ components.T, singular ** 2
        share[:len(singular)] = variance / variance.sum() if variance.sum() > 0 else 0
    return projected, share


def last_inputs(inputs, bits):
    """``[runs, steps - bits + 1]``: at each step from ``bits - 1`` on, the last ``bits`` inputs as a number (the
    oldest the highest bit)."""
    steps = inputs.shape[1]
    return sum(inputs[:, bits - 1 - lag:steps - lag] << lag for lag in range(bits))


def nearest_centre(points, code):
    """The fraction of ``points`` whose nearest mean point of a code (among the codes present) is their own code's:
    1 where the codes are separate clusters; NaN for no points."""
    if not len(points):
        return np.nan
    codes = np.unique(code)
    centres = np.array([points[code == c].mean(axis=0) for c in codes])
    return np.mean(codes[np.argmin(((points[:, None] - centres[None]) ** 2).sum(axis=-1), axis=1)] == code)


def _component_label(values, index, share, code, bits):
    """A principal axis's name, share of the variance, and the input among the last ``bits`` it follows most."""
    r = np.array([correlation(values, code >> lag & 1) for lag in range(bits)])
    name = f"component {index + 1} ({100 * share:.3g} % of the variance)"
    if np.isnan(r).all():  # (an axis along which the states do not vary)
        return f"{name}\nfollows no input"
    lag = int(np.nanargmax(np.abs(r)))
    return f"{name}\nfollows the input {lag} back (r = {r[lag]:+.2f})"


def weights_figure(table, config):
    """The trained weights as heat maps with their values (one colour scale), and what each unit holds: its
    correlation with the input k steps back on the fresh series."""
    inputs_and_state = [f"x={c}" for c in range(config.num_classes)] + [f"h{i}" for i in range(config.state_size)]
    units = [f"h{i}" for i in range(config.state_size)]
    weights = [(name, np.atleast_2d(value)) for name, value in table.trained.values.items()]
    largest = max(np.abs(matrix).max() for _, matrix in weights) or 1
    maps = [(name, matrix, largest) for name, matrix in weights] + [
        ("what each unit holds: its correlation\nwith the input k steps back",
         unit_correlations(table.trained.states, table.trained.inputs, table.lags), 1)]
    fig = figure((2 + 0.55 * sum(m.shape[1] for _, m, _ in maps) + 0.6 * len(maps), 4.3),
                 left=0.5, right=0.15, bottom=0.55, top=0.75, wspace=0.2)
    axes = fig.subplots(1, len(maps), gridspec_kw=dict(width_ratios=[m.shape[1] for _, m, _ in maps]))
    for ax, (name, matrix, limit) in zip(axes, maps):
        ax.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
        for (i, j), value in np.ndenumerate(matrix):
            ax.annotate(f"{value:.2f}", (j, i), ha="center", va="center", fontsize=7,
                        color="white" if abs(value) > 0.6 * limit else "black")
        rows = {len(inputs_and_state): inputs_and_state, config.state_size: units}.get(matrix.shape[0])
        # columns by name, not by size (2 units, 2 classes): the output layer's, the classes; the cell's, its units
        columns = [f"class {c}" for c in range(config.num_classes)] if name in ("W2", "b2") else units
        ax.set_yticks(range(matrix.shape[0]), rows or [""] * matrix.shape[0])
        ax.set_xticks(range(matrix.shape[1]), columns if len(columns) == matrix.shape[1] else range(matrix.shape[1]),
                      fontsize=8)  # (an LSTM's or a GRU's gates: numbered)
        ax.set_title(name, fontsize=9)
    axes[-1].set_xticks(range(len(table.lags)), table.lags)
    axes[-1].set_xlabel("lag k")
    fig.suptitle("The trained weights: a cell's kernel takes [one-hot input x, previous state h] (rows) to the new "
                 "state (columns); W2 takes the state to the classes' logits", fontsize=10)
    return fig
