"""Pictures of a run. Figures are built with matplotlib's object API (no pyplot, no display needed); a
notebook shows the returned ``Figure``, the CLI saves it."""
import numpy as np

from .runs import atomic_write


def loss_figure(losses, num_batches, reference=None, title="Echo-RNN training loss"):
    """Loss against step on a log scale, epochs marked; ``reference`` is a list of (step, loss) points to overlay."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.add_subplot()
    steps = np.arange(len(losses))
    ax.plot(steps, losses, lw=0.6, color="tab:blue", label="this run, every step")
    for epoch_start in range(num_batches, len(losses), num_batches):
        ax.axvline(epoch_start, color="0.8", lw=0.8, zorder=0)
    if reference is not None:
        ref_steps, ref_losses = zip(*reference)
        ax.plot(ref_steps, ref_losses, "o", ms=4, color="tab:red", label="2017 run, every 100th step")
    ax.axhline(np.log(2), color="0.5", ls=":", lw=1)
    ax.annotate("ln 2: untrained", (0, np.log(2)), textcoords="offset points", xytext=(4, 3), fontsize=8, color="0.4")
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({num_batches} per epoch)")
    ax.set_ylabel("batch loss (cross-entropy)")
    ax.set_title(title)
    ax.legend(loc="lower left")
    return fig


def save_figure(fig, path):
    """Save as PNG under a temporary name, then rename: a crash never leaves half a picture."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
