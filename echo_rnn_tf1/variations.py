"""The source's variants measured side by side: what a reader of the source asks, answered by running.

Each variant is a ``Config`` that changes the source in one place. ``measure`` trains it for a few seeds (in this
process, one graph each), evaluates each net on a fresh series fed as it was trained, and keeps a ``Result`` for
``notebooks/variations.ipynb`` to tabulate and draw; its memory is how well a linear probe reads the input ``k`` steps
back from the state (``memory.memory``; ``probed`` says which state; a carried state's lags reach across windows).
"""
import collections
import dataclasses
import time

import numpy as np

from .evaluate import evaluate_model, model_with_values
from .memory import DATA_SEED, memory, memory_lags
from .model import trained_variables
from .tfcompat import import_quiet_tensorflow
from .train import prepare, run_training, session

LEARNED = 0.01  # a loss that stays under this has learned the echo (the no-memory plateau is 0.485)
EXACT = 0.995  # a lag the probe reads at least this well is held without error: at most 1 in 200 wrong
FINAL_STEPS = 100  # the final loss is the mean of the last this many steps: one step's loss is noisy

# The questions, each a change from the source (a row of the page).
ROWS = {
    "source": {},
    "carried state, window targets": {"carry_state": True},
    "carried state, series targets": {"carry_state": True, "targets": "series"},
    "series targets, state from zeros": {"targets": "series"},
    "new data each epoch": {"new_data_each_epoch": True},
    "LSTM": {"cell": "lstm"},
    "GRU": {"cell": "gru"},
    "two layers": {"num_layers": 2},
    "dropout 0.1": {"dropout": 0.1},
    "dropout 0.3": {"dropout": 0.3},
}
# A harder task, where the cells part ways: the echo of 6 steps ago, still within windows of 10 from zeros.
HARDER = {
    "basic, echo_step 6": {"echo_step": 6},
    "LSTM, echo_step 6": {"echo_step": 6, "cell": "lstm"},
    "GRU, echo_step 6": {"echo_step": 6, "cell": "gru"},
}

Result = collections.namedtuple("Result", ["seed", "losses", "steps_to_learn", "final_loss", "accuracy",
                                           "accuracy_by_position", "memory"])  # memory: at memory_lags(config)


def steps_to_learn(losses, num_batches, level=LEARNED):
    """The number of steps after which every loss is under ``level`` (0 if all are), or None if the last is not.

    The first step of each epoch after the first is not counted: with a carried state and the series' targets it
    is the one window that starts from zeros again, and 4 of its 5 rows begin with the echo of the previous row's
    end, which no net can know; it alone would push the answer to the last epoch's start.
    """
    losses = np.asarray(losses)
    steps = np.arange(len(losses))
    counted = (steps % num_batches != 0) | (steps < num_batches) | (num_batches == 1)
    above = np.flatnonzero((losses >= level) & counted)
    if not above.size:
        return 0
    return None if above[-1] == np.flatnonzero(counted)[-1] else int(above[-1]) + 1


def train_and_evaluate(config, seed, eval_seed):
    """Train ``config`` with ``seed`` as the CLI does (no run folder), then evaluate it and probe its memory on
    ``eval_seed``'s fresh series."""
    tf = import_quiet_tensorflow()
    graph, model, inputs_value, targets_value = prepare(config, seed)
    with session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        losses = np.array(run_training(sess, model, inputs_value, targets_value, config, log=lambda line: None))
        values = sess.run(trained_variables(graph))
    with model_with_values(config, values) as (sess, inference):
        report = evaluate_model(sess, inference, config, eval_seed)
        remembered = memory(sess, inference, config, eval_seed)
    return Result(seed, losses, steps_to_learn(losses, config.num_batches), float(losses[-FINAL_STEPS:].mean()),
                  report["accuracy"], np.array(report["accuracy_by_position"]), remembered)


def measure_rows(base, rows, seeds, log=print):
    """``{name: (config, [train_and_evaluate(config, seed, DATA_SEED) for each seed])}`` for each of ``rows``
    (``{name: changes from base}``), in order: every net evaluated on the same fresh series; ``log`` gets a line for
    each row, with the seconds it took."""
    results = {}
    for name, changes in rows.items():
        start = time.perf_counter()
        config = dataclasses.replace(base, **changes)  # (validated, as every Config)
        results[name] = (config, [train_and_evaluate(config, seed, DATA_SEED) for seed in seeds])
        log(f"{name:<34} {len(seeds)} seeds in {time.perf_counter() - start:5.1f} s")
    return results


def table(results_by_row):
    """A markdown table, a row per variant (all of one ``echo_step`` and window), each column seed by seed."""
    echo_step, length = next((c.echo_step, c.truncated_backprop_length) for c, _ in results_by_row.values())
    lines = [f"| variant | steps until the loss stays < {LEARNED} | final loss (mean of the last {FINAL_STEPS} "
             f"steps) | accuracy at positions 0-{echo_step - 1} (%) | accuracy at positions {echo_step}-{length - 1} "
             f"(%) |", "|---|---|---|---|---|"]
    for name, (config, results) in results_by_row.items():
        steps = ", ".join("never" if r.steps_to_learn is None else str(r.steps_to_learn) for r in results)
        finals = ", ".join(f"{r.final_loss:.2g}" for r in results)
        first = ", ".join(f"{100 * r.accuracy_by_position[:config.echo_step].mean():.2f}" for r in results)
        rest = ", ".join(f"{100 * r.accuracy_by_position[config.echo_step:].mean():.2f}" for r in results)
        lines.append(f"| {name} | {steps} | {finals} | {first} | {rest} |")
    return "\n".join(lines)


def memory_summary(results_by_row):
    """A markdown table of the memory measured, a row per variant (all of one ``echo_step``): the lags every seed holds
    without error, the probe at the echo's lag seed by seed, and the seeds' lowest and highest at the older lags."""
    echo_step = next(config.echo_step for config, _ in results_by_row.values())
    lines = [f"| variant | lags every seed holds without error (≥ {100 * EXACT:g} %) | the echo's lag, {echo_step}: seed "
             f"by seed | older lags: lowest to highest |", "|---|---|---|---|"]
    for name, (config, results) in results_by_row.items():
        accuracy = np.array([r.memory for r in results])  # [seeds, lags]
        exact = np.flatnonzero((accuracy >= EXACT).all(axis=0))
        older = accuracy[:, config.echo_step + 1:]
        older = older[np.isfinite(older)]  # (NaN: a lag no window reaches)
        lines.append(f"| {name} | {', '.join(map(str, exact)) or 'none'} | "
                     f"{', '.join(f'{a:.3f}' for a in accuracy[:, config.echo_step])} | "
                     f"{older.min():.2f} to {older.max():.2f} |")
    return "\n".join(lines)


def losses_figure(results_by_row, columns=3, smooth=20, title=None):
    """A panel per variant: each seed's loss by step (a running mean over ``smooth`` steps), log scale, with the
    ``LEARNED`` level and the epochs marked."""
    names = list(results_by_row)
    fig, axes = _panels(names, columns, 2.5)
    for ax, name in zip(axes, names):
        config, results = results_by_row[name]
        for result in results:
            window = max(1, min(smooth, len(result.losses) // 10))  # a short run keeps its shape
            smoothed = np.convolve(result.losses, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window - 1, len(result.losses)), smoothed, lw=0.8, label=f"seed {result.seed}")
        for epoch_start in range(config.num_batches, config.num_steps, config.num_batches):
            ax.axvline(epoch_start, color="0.85", lw=0.8, zorder=0)
        ax.axhline(LEARNED, color="0.4", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.supxlabel(f"step ({names and results_by_row[names[0]][0].num_batches} per epoch)")
    fig.supylabel(f"batch loss, running mean of {smooth} steps")
    if title:
        fig.suptitle(title)
    return fig


def memory_figure(results_by_row, columns=3, title=None):
    """A panel per variant: each seed's memory, the probe's accuracy by lag (``memory.memory``), with the echo's lag
    and chance marked; in the other panels, the first variant's mean over its seeds in grey, to compare with."""
    names = list(results_by_row)
    fig, axes = _panels(names, columns, 2.2)
    first_config, first_results = results_by_row[names[0]]
    first_mean = np.mean([r.memory for r in first_results], axis=0)
    for ax, name in zip(axes, names):
        config, results = results_by_row[name]
        if name != names[0]:
            ax.plot(memory_lags(first_config), first_mean, color="0.75", lw=3, zorder=0,
                    label=f"{names[0]}, mean of the seeds")
        for result in results:
            ax.plot(memory_lags(config), result.memory, "o-", ms=3, lw=0.8, label=f"seed {result.seed}")
        ax.axvline(config.echo_step, color="tab:red", lw=1, alpha=0.6)
        ax.axhline(0.5, color="0.5", ls=":", lw=1)
        ax.set_xticks(memory_lags(config))
        ax.set_ylim(0.4, 1.04)
        ax.set_title(name + probed(config), fontsize=10)
    fig.legend(*axes[min(1, len(axes) - 1)].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    fig.supxlabel("lag k: the input k steps back (0: the current input); red: the echo's lag; dotted: chance")
    fig.supylabel("accuracy of a linear probe")
    if title:
        fig.suptitle(title)
    return fig


def probed(config):
    """For a title: what ``memory.memory`` reads where it is not the whole state (``""`` for one basic or GRU cell)."""
    what = "h probed, not c" if config.cell == "lstm" else ""
    if config.num_layers > 1:
        what = f"{what or 'probed'}: the last layer"
    return f" ({what})" if what else ""


def _panels(names, columns, height):
    """A figure with a panel for each of ``names``, ``columns`` to a row, sharing both axes; ``(fig, panels)``."""
    from matplotlib.figure import Figure

    rows = -(-len(names) // columns)
    fig = Figure(figsize=(3.6 * columns, height * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return fig, axes[:len(names)]


def accuracy_figure(results_by_row, title="Accuracy by position in the window, fresh data: at each position, the "
                                          "lowest of the seeds"):
    """A heat map: a row per variant, a column per position of the window, the lowest accuracy over the seeds."""
    from matplotlib.figure import Figure

    names = list(results_by_row)
    lowest = np.array([np.min([r.accuracy_by_position for r in results], axis=0)
                       for _, results in results_by_row.values()])
    fig = Figure(figsize=(1.0 + 0.62 * lowest.shape[1] + 2.2, 0.42 * len(names) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(100 * lowest, cmap="RdYlGn", vmin=50, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(lowest):
        ax.annotate(f"{100 * value:.1f}", (j, i), ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(names)), names)
    ax.set_xticks(range(lowest.shape[1]))
    ax.set_xlabel("position in the window")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    return fig
