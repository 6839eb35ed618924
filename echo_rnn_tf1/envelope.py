"""The seed envelope: how far honest runs of the source differ from each other, and where the 2017 run falls.

Trains K seeds of the default configuration, one process per core, and keeps every step's loss. The band
(per-step min and max over the seeds) and the per-seed verdicts are the evidence behind ``compare``'s
criterion.
"""
import concurrent.futures
import multiprocessing
import os

import numpy as np

from .compare import compare
from .config import Config
from .logs import logged_points
from .runs import write_csv


def train_seed(seed):
    """One seed of the source's defaults, in a worker process; returns its losses as float32."""
    from .tfcompat import import_quiet_tensorflow
    from .train import train

    import_quiet_tensorflow()

    return np.asarray(train(Config(), seed, log=lambda line: None), dtype=np.float32)


def train_seeds(seeds, jobs, on_done=None):
    """Losses of every seed, ``[len(seeds), num_steps]``; ``on_done(seed, losses)`` as each finishes."""
    results = {}
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(train_seed, seed): seed for seed in seeds}
        for future in concurrent.futures.as_completed(futures):
            seed = futures[future]
            results[seed] = future.result()
            if on_done is not None:
                on_done(seed, results[seed])
    return np.stack([results[seed] for seed in seeds])


def band(all_losses):
    """Per-step ``(min, p10, median, p90, max)`` over the seeds."""
    return tuple(np.percentile(all_losses, [0, 10, 50, 90, 100], axis=0))


def reference_inside(reference_points, low, high, config=Config()):
    """How many reference points lie within ``[low, high]`` at their step."""
    at = [p.epoch * config.num_batches + p.step for p in reference_points]
    return sum(low[i] <= p.loss <= high[i] for i, p in zip(at, reference_points))


def envelope_figure(seeds, all_losses, matches, reference_points, config=Config()):
    """The band of all seeds, its 10-90 % core, the median, the seeds that do not match, and the 2017 run."""
    from matplotlib.figure import Figure

    low, p10, median, p90, high = band(all_losses)
    steps = np.arange(all_losses.shape[1])
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(steps, low, high, color="tab:blue", alpha=0.15, lw=0, label=f"{len(seeds)} seeds: min to max")
    ax.fill_between(steps, p10, p90, color="tab:blue", alpha=0.35, lw=0, label="10th to 90th percentile")
    ax.plot(steps, median, color="tab:blue", lw=0.8, label="median")
    for seed, losses, match in zip(seeds, all_losses, matches):
        if not match:
            ax.plot(steps, losses, color="0.4", lw=0.4, label=f"seed {seed}: no match")
    at = [p.epoch * config.num_batches + p.step for p in reference_points]
    ax.plot(at, [p.loss for p in reference_points], "o", ms=4, color="tab:red", label="2017 run (TF 1.4)")
    for epoch_start in range(config.num_batches, all_losses.shape[1], config.num_batches):
        ax.axvline(epoch_start, color="0.8", lw=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel(f"step ({config.num_batches} per epoch)")
    ax.set_ylabel("batch loss")
    ax.set_title("Seed envelope of the Echo-RNN on today's TensorFlow, with the 2017 run")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def seed_rows(seeds, all_losses, reference_points, config=Config()):
    """Per seed: ``(seed, match, widest gap in decades among the judged epochs, last epoch's mean, verdict summary)``."""
    rows = []
    for seed, losses in zip(seeds, all_losses):
        verdict = compare(logged_points(losses, config.num_batches), reference_points)
        widest = max(abs(e[3]) for e in verdict.epochs if e[4] is not None and e[3] is not None)
        rows.append((seed, verdict.match, widest, float(losses[-config.num_batches:].mean()), verdict.summary))
    return rows


def save(out, seeds, all_losses, reference_points, config=Config()):
    """Write envelope.csv, seeds.csv, losses.npy and envelope.png into ``out``; return the summary's lines."""
    from .plots import save_figure

    low, p10, median, p90, high = band(all_losses)
    epoch, step = divmod(np.arange(all_losses.shape[1]), config.num_batches)
    write_csv(os.path.join(out, "envelope.csv"), "epoch,step,min,p10,median,p90,max",
              zip(epoch, step, low, p10, median, p90, high))
    rows = seed_rows(seeds, all_losses, reference_points, config)
    write_csv(os.path.join(out, "seeds.csv"), "seed,match,widest_epoch_gap_decades,last_epoch_mean_loss",
              ((seed, int(match), f"{gap:.3f}", f"{mean:.4g}") for seed, match, gap, mean, _ in rows))
    np.save(os.path.join(out, "losses.npy"), all_losses)  # [seeds, steps] float32, every step of every seed
    figure = envelope_figure(seeds, all_losses, [row[1] for row in rows], reference_points, config)
    save_figure(figure, os.path.join(out, "envelope.png"))

    matching = [row for row in rows if row[1]]
    widest = f" (widest epoch gap among them: {max(r[2] for r in matching):.2f} decades)" if matching else ""
    return [f"The 2017 run lies inside the band [min, max] of {len(seeds)} seeds at "
            f"{reference_inside(reference_points, low, high, config)} of its {len(reference_points)} points, "
            f"inside [10th, 90th percentile] at {reference_inside(reference_points, p10, p90, config)}.",
            f"{len(matching)} of {len(seeds)} seeds match the 2017 run by compare's criterion{widest}.",
            *(f"  seed {seed}: {summary}" for seed, match, _, _, summary in rows if not match),
            f"Wrote {out}: envelope.csv, seeds.csv, losses.npy, envelope.png"]
