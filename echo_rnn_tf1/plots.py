"""Pictures of a run and of a seed envelope. Figures are built with matplotlib's object API (no pyplot, no display
needed); a notebook shows the returned ``Figure``, the CLI saves it."""
import numpy as np

from .data import zeroed_positions
from .record import atomic_write

MOST_POINTS = 100_000  # points of a loss curve drawn; past that each bucket's highest and lowest (a million take 3 s)
MOST_EPOCH_LINES = 50  # epochs marked; more would fill the plot (and took 80 s for 100,000)
MOST_ROWS, MOST_WINDOWS = 5, 4  # of a predictions picture: a panel per row, drawn at 110 dpi


def loss_figure(losses, num_batches, reference=None, title="Echo-RNN training loss"):
    """Loss against step on a log scale, epochs marked; ``reference``: ``logs.Point``s (the 2017 run) to overlay."""
    fig = figure((8, 4), left=0.7, right=0.15, bottom=0.5, top=0.35)
    ax = fig.add_subplot()
    steps, shown, bucket = thinned(np.asarray(losses))
    ax.plot(steps, shown, lw=0.6, color="tab:blue",
            label="this run, every step" if bucket == 1 else f"this run, highest and lowest of every {bucket} steps")
    mark_epochs(ax, num_batches, len(losses))
    if reference is not None:
        mark_reference(ax, reference, num_batches, "2017 run, every 100th step")
    ax.axhline(np.log(2), color="0.5", ls=":", lw=1)
    ax.annotate("ln 2: untrained", (0, np.log(2)), textcoords="offset points", xytext=(4, 3), fontsize=8, color="0.4")
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({num_batches} per epoch)")
    ax.set_ylabel("batch loss (cross-entropy)")
    ax.set_title(title)
    ax.legend(loc="lower left")
    return fig


def figure(size, left, right, bottom, top, **spacing):
    """A ``Figure`` of ``size`` inches whose subplots leave margins given in inches (and ``wspace``, ``hspace``): fixed
    margins cost one drawing of the figure, where ``layout="constrained"`` draws it twice to measure its labels."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    fig.subplots_adjust(left / size[0], bottom / size[1], 1 - right / size[0], 1 - top / size[1], **spacing)
    return fig


def thinned(losses, most=MOST_POINTS):
    """``(steps, losses, bucket)`` to draw: every step, or each bucket of ``bucket`` steps' highest and lowest (so
    a spike survives), about ``most`` points in all."""
    steps = np.arange(len(losses))
    if len(losses) <= most:
        return steps, losses, 1
    bucket = -(-len(losses) // (most // 2))
    whole = len(losses) // bucket * bucket
    buckets = losses[:whole].reshape(-1, bucket)
    pairs = np.column_stack([buckets.max(axis=1), buckets.min(axis=1)]).ravel()
    return np.r_[np.repeat(steps[:whole:bucket], 2), steps[whole:]], np.r_[pairs, losses[whole:]], bucket


def mark_reference(ax, reference, num_batches, label):
    """The 2017 run's points (``logs.Point``s), each at its step."""
    ax.plot([p.epoch * num_batches + p.step for p in reference], [p.loss for p in reference],
            "o", ms=4, color="tab:red", label=label)


def mark_epochs(ax, num_batches, num_steps):
    """A light vertical line where each epoch starts, if there are few enough to tell apart."""
    starts = np.arange(num_batches, num_steps, num_batches)
    if 0 < len(starts) < MOST_EPOCH_LINES:
        ax.vlines(starts, 0, 1, transform=ax.get_xaxis_transform(), color="0.8", lw=0.8, zorder=0)


def predictions_figure(inputs, targets, probabilities, config):
    """A row per batch element: input bits (bars), target bits (steps), and the net's probability of a 1.

    Window boundaries are marked, and the first ``echo_step`` positions of each window (target always 0) shaded
    (with ``config.targets == "window"``, the source's). At most MOST_ROWS rows and MOST_WINDOWS windows of what is
    given are drawn.
    """
    from matplotlib.collections import PolyCollection

    length = min(inputs.shape[1], MOST_WINDOWS * config.truncated_backprop_length)
    inputs, targets, probabilities = (a[:MOST_ROWS, :length] for a in (inputs, targets, probabilities))
    rows = inputs.shape[0]
    steps = np.arange(length)
    zeroed = zeroed_positions(config)
    fig = figure((10, 1.3 * rows + 0.8), left=0.6, right=0.1, bottom=0.5, top=0.7, hspace=0.25)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    for row, ax in enumerate(axes):
        for start in range(0, length, config.truncated_backprop_length):
            if zeroed:
                ax.axvspan(start - 0.5, start + zeroed - 0.5, color="0.92", lw=0)
            ax.axvline(start - 0.5, color="0.6", lw=0.8)
        ax.add_collection(PolyCollection(  # the input's bars as one artist: a patch per bar costs far more
            [[(s - 0.4, 0), (s - 0.4, v), (s + 0.4, v), (s + 0.4, 0)] for s, v in zip(steps, inputs[row]) if v],
            color="tab:blue", alpha=0.35, lw=0, label="input"))
        ax.step(steps, targets[row], where="mid", color="tab:red", lw=1.5, label=f"target (input {config.echo_step} steps earlier)")
        ax.plot(steps, probabilities[row], "o", ms=3.5, color="tab:green", label="predicted probability of a 1")
        ax.set_ylim(-0.1, 1.15)
        ax.set_yticks([0, 1])
        ax.set_ylabel(f"row {row}")
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=3, fontsize=8, frameon=False)
    fed = "the state carried from window to window" if config.carry_state else "each from a zero state"
    shaded = f"; shaded: the first {zeroed}, whose target is always 0" if zeroed else ""
    axes[-1].set_xlabel(f"step (windows of {config.truncated_backprop_length}, {fed}{shaded})")
    fig.suptitle("What the trained Echo-RNN predicts on a held-out batch")
    return fig


def accuracy_figure(accuracy_by_position, config, title="Accuracy by position in the window, fresh data"):
    """Accuracy at each position of the window (bars), the echo positions told apart from the always-0 ones."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(accuracy_by_position))
    zeroed = zeroed_positions(config)
    colors = ["0.6" if i < zeroed else "tab:green" for i in positions]
    ax.bar(positions, 100 * np.asarray(accuracy_by_position), color=colors)
    for i, a in zip(positions, accuracy_by_position):
        ax.annotate(f"{100 * a:.1f}", (i, 100 * a), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
    ax.axhline(50, color="0.5", ls=":", lw=1)
    ax.set_xticks(positions, [f"{i}\n{'0' if i < zeroed else 'echo'}" for i in positions])
    ax.set_ylim(0, 109)
    ax.set_xlabel("position in the window, and its target")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    return fig


def envelope_figure(seeds, all_losses, band, matches, reference, num_batches):
    """An envelope: the band of all seeds (``band``: per-step min, 10th percentile, median, 90th, max), its 10-90 %
    core, the median, the seeds that do not match (``matches``: one bool a seed), and the 2017 run."""
    from matplotlib.figure import Figure

    low, p10, median, p90, high = band
    steps = np.arange(all_losses.shape[1])
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(steps, low, high, color="tab:blue", alpha=0.15, lw=0, label=f"{len(seeds)} seeds: min to max")
    ax.fill_between(steps, p10, p90, color="tab:blue", alpha=0.35, lw=0, label="10th to 90th percentile")
    ax.plot(steps, median, color="tab:blue", lw=0.8, label="median")
    for seed, losses, match in zip(seeds, all_losses, matches):
        if not match:
            ax.plot(steps, losses, color="0.4", lw=0.4, label=f"seed {seed}: no match")
    mark_reference(ax, reference, num_batches, "2017 run (TF 1.4)")
    mark_epochs(ax, num_batches, all_losses.shape[1])
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({num_batches} per epoch)")
    ax.set_ylabel("batch loss")
    ax.set_title("Seed envelope of the Echo-RNN on today's TensorFlow, with the 2017 run")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def save_figure(fig, path):
    """Save as PNG under a temporary name, then rename: a crash never leaves half a picture."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
