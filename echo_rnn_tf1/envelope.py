"""The seed envelope: how far honest runs of the source differ from each other, and where the 2017 run falls.

Trains K seeds of the default configuration, one worker process per core, and keeps every step's loss. The band
(per-step min and max over the seeds) and the per-seed verdicts are the evidence behind ``compare``'s
criterion. A signal or a failure kills the workers at once: none is left behind.
"""
import collections
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import signal

import numpy as np

from .compare import compare
from .config import Config
from .failures import MachineError, describe
from .logs import logged_points
from .machine import usable_cores
from .runs import atomic_write, write_csv, write_json

WORKER_BYTES = 640 * 2**20  # a worker training a seed of the defaults: peak RSS measured at 635 MB
KEPT_BYTES = 64 * 2**10  # per seed of the envelope: its 5000 losses (20 KiB) and the summary's float64 copy


def plural(count, noun):
    """``"1 seed"``, ``"2 seeds"``."""
    return f"{count} {noun}{'s' * (count != 1)}"


def seeds_text(seeds):
    """``"seed 7"`` for one, ``"seeds 7-9"`` for consecutive seeds from the first to the last."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def capped_jobs(jobs, seeds, available_memory):
    """``(jobs to run, why it is fewer than asked or None)``: at most one worker per usable core (TensorFlow keeps
    a core busy; more workers only share it), per seed, and per WORKER_BYTES of available memory. Raise
    MachineError if the seeds' losses, kept until the end, would not fit beside the workers."""
    limits = [(usable_cores(), f"one process per core ({usable_cores()} usable)"), (seeds, f"one per seed ({seeds})")]
    if available_memory is not None:
        if available_memory < WORKER_BYTES:
            raise MachineError(f"envelope: a worker needs about {WORKER_BYTES / 2**30:.2g} GiB of memory and "
                               f"{available_memory / 2**30:.2g} GiB is available")
        fit = (available_memory - seeds * KEPT_BYTES) // WORKER_BYTES  # the seeds' losses are kept to the end
        if fit < 1:
            raise MachineError(f"--seeds {seeds}: their losses need about {seeds * KEPT_BYTES / 2**30:.3g} GiB of "
                               f"memory beside a worker's {WORKER_BYTES / 2**30:.2g} GiB, and "
                               f"{available_memory / 2**30:.3g} GiB is available (about "
                               f"{(available_memory - WORKER_BYTES) // KEPT_BYTES} seeds fit)")
        limits.append((fit, f"each worker needs about {WORKER_BYTES // 2**20} MiB and "
                            f"{available_memory / 2**30:.3g} GiB is available"))
    limit, why = min(limits)
    return (jobs, None) if jobs <= limit else (limit, why)


def train_seed(seed):
    """One seed of the source's defaults, in a worker process; returns its losses as float32."""
    from .tfcompat import import_quiet_tensorflow
    from .train import train

    import_quiet_tensorflow()

    return np.asarray(train(Config(), seed, log=lambda line: None), dtype=np.float32)


def _worker(connection):
    """A worker process: train each seed it is sent and send back ``(seed, losses, None)``, or ``(seed, None,
    (exit code, one line))`` if it fails; stop at None, or when the parent is gone."""
    from .tfcompat import freeze_on_import

    freeze_on_import()
    for signum in (signal.SIGINT, signal.SIGHUP):  # Ctrl-C, a closed terminal: to the whole process group; the
        signal.signal(signum, signal.SIG_IGN)       # parent decides
    try:
        while (seed := connection.recv()) is not None:
            try:
                connection.send((seed, train_seed(seed), None))
            except Exception as e:
                connection.send((seed, None, describe(e)))
    except (EOFError, OSError):  # the parent is gone
        pass


def train_seeds(seeds, jobs, on_done=None):
    """Losses of every seed, ``[len(seeds), num_steps]``; ``on_done(seed, losses)`` as each finishes.

    ``jobs`` worker processes, each training one seed at a time. However this ends (done, a failure, a signal
    raising in the parent), every worker is killed before it returns.
    """
    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    waiting, results = collections.deque(seeds), {}
    workers = {}  # connection -> [process, the seed it trains, or None]
    try:
        for _ in range(min(jobs, len(seeds))):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker, args=(child_end,), daemon=True)
            workers[parent_end] = [process, None]
            process.start()
            child_end.close()
            _give_work(parent_end, workers, waiting)
        while len(results) < len(seeds):
            busy = {c: w for c, w in workers.items() if w[1] is not None}
            ready = multiprocessing.connection.wait([*busy, *(w[0].sentinel for w in busy.values())])
            for connection, (process, seed) in busy.items():
                if connection in ready:
                    try:
                        seed, losses, error = connection.recv()
                    except (EOFError, OSError):
                        raise _died(process, seed) from None
                    if error is not None:
                        raise MachineError(f"seed {seed}: {error[1]}") if error[0] == 3 else RuntimeError(error[1])
                    results[seed] = losses
                    if on_done is not None:
                        on_done(seed, losses)
                    _give_work(connection, workers, waiting)
                elif process.sentinel in ready:
                    raise _died(process, seed)
    finally:
        for process, _ in workers.values():
            if process.is_alive():
                process.kill()  # SIGKILL: a worker holds nothing that needs saving
        for connection, (process, _) in workers.items():
            if process.pid is not None:  # (started)
                process.join(timeout=10)
            connection.close()
    return np.stack([results[seed] for seed in seeds])


def _give_work(connection, workers, waiting):
    seed = waiting.popleft() if waiting else None
    connection.send(seed)
    workers[connection][1] = seed


def _died(process, seed):
    process.join(timeout=10)
    how = (f"killed by {signal.Signals(-process.exitcode).name}" if process.exitcode and process.exitcode < 0
           else f"exit code {process.exitcode}")
    return MachineError(f"the worker training seed {seed} died ({how}; out of memory?)")


def band(all_losses):
    """Per-step ``(min, p10, median, p90, max)`` over the seeds."""
    return tuple(np.percentile(all_losses, [0, 10, 50, 90, 100], axis=0))


def reference_inside(reference_points, low, high, config=Config()):
    """How many reference points lie within ``[low, high]`` at their step."""
    at = [p.epoch * config.num_batches + p.step for p in reference_points]
    return sum(low[i] <= p.loss <= high[i] for i, p in zip(at, reference_points))


def reference_percentiles(all_losses, reference_points, config=Config()):
    """Where the 2017 run sits among the seeds: per reference point ``(epoch, step, its loss, percentile)``, the
    percentile being the percentage of seeds whose loss at that step is below the 2017 run's (ties count half):
    0 means the 2017 run is below every seed, 100 above every seed."""
    rows = []
    for p in reference_points:
        at = all_losses[:, p.epoch * config.num_batches + p.step]
        below, ties = np.sum(at < p.loss), np.sum(at == p.loss)
        rows.append((p.epoch, p.step, p.loss, 100 * (below + ties / 2) / len(at)))
    return rows


def percentile_lines(rows):
    """The percentiles of ``reference_percentiles``, compactly: a line per epoch, whole numbers."""
    epochs = sorted({row[0] for row in rows})
    return [f"  epoch {epoch}: " + " ".join(f"{round(row[3]):>3}" for row in rows if row[0] == epoch)
            for epoch in epochs]


def envelope_figure(seeds, all_losses, matches, reference_points, config=Config()):
    """The band of all seeds, its 10-90 % core, the median, the seeds that do not match, and the 2017 run."""
    from matplotlib.figure import Figure

    from .plots import mark_epochs

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
    mark_epochs(ax, config.num_batches, all_losses.shape[1])
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
        widest = max((abs(e[3]) for e in verdict.epochs if e[4] is not None and e[3] is not None), default=math.inf)
        rows.append((seed, verdict.match, widest, float(losses[-config.num_batches:].mean()), verdict.summary))
    return rows


FILES = ("envelope.csv", "seeds.csv", "losses.npy", "reference_percentiles.csv", "envelope.png", "envelope.json")


def discard(out):
    """Remove from ``out`` whatever ``save`` wrote (each file whole: they are written atomically)."""
    for name in FILES:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))


def _save_npy(path, array):
    with open(path, "wb") as f:  # (given a name, np.save would add .npy to it)
        np.save(f, array)  # [seeds, steps] float32, every step of every seed


def save(out, seeds, all_losses, reference_points, config=Config(), record=None):
    """Write envelope.csv, seeds.csv, losses.npy, reference_percentiles.csv, envelope.png and (given ``record``, a
    dict: how the envelope was made) envelope.json into ``out``; return the summary's lines."""
    from .plots import save_figure

    low, p10, median, p90, high = band(all_losses)
    epoch, step = divmod(np.arange(all_losses.shape[1]), config.num_batches)
    write_csv(os.path.join(out, "envelope.csv"), "epoch,step,min,p10,median,p90,max",
              zip(epoch, step, low, p10, median, p90, high))
    rows = seed_rows(seeds, all_losses, reference_points, config)
    write_csv(os.path.join(out, "seeds.csv"), "seed,match,widest_epoch_gap_decades,last_epoch_mean_loss",
              ((seed, int(match), f"{gap:.3f}", f"{mean:.4g}") for seed, match, gap, mean, _ in rows))
    atomic_write(os.path.join(out, "losses.npy"), lambda tmp: _save_npy(tmp, all_losses))
    percentiles = reference_percentiles(all_losses, reference_points, config)
    write_csv(os.path.join(out, "reference_percentiles.csv"), "epoch,step,loss_2017,percentile_among_seeds",
              ((epoch, step, loss, f"{percentile:.1f}") for epoch, step, loss, percentile in percentiles))
    figure = envelope_figure(seeds, all_losses, [row[1] for row in rows], reference_points, config)
    save_figure(figure, os.path.join(out, "envelope.png"))
    if record is not None:
        write_json(os.path.join(out, "envelope.json"), record)

    matching = [row for row in rows if row[1]]
    widest = f" (widest epoch gap among them: {max(r[2] for r in matching):.2f} decades)" if matching else ""
    return [f"The 2017 run lies inside the band [min, max] of {plural(len(seeds), 'seed')} at "
            f"{reference_inside(reference_points, low, high, config)} of its {len(reference_points)} points, "
            f"inside [10th, 90th percentile] at {reference_inside(reference_points, p10, p90, config)}.",
            f"{len(matching)} of {len(seeds)} seeds match the 2017 run by compare's criterion{widest}.",
            *(f"  seed {seed}: {summary}" for seed, match, _, _, summary in rows if not match),
            f"The 2017 run's percentile among the {plural(len(seeds), 'seed')} at its logged points (the percentage "
            f"of seeds below it; 0: below them all):",
            *percentile_lines(percentiles),
            f"Wrote {out}: envelope.csv, seeds.csv, losses.npy, reference_percentiles.csv, envelope.png"
            + (", envelope.json" if record is not None else "")]
