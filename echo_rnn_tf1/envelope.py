"""The seed envelope: how far honest runs of the source differ from each other, and where the 2017 run falls.

Trains K seeds of the defaults, one worker process per core (``--engine tf2``: side by side in compiled programs), and
keeps every step's loss. The band (per-step min and max over the seeds) and the per-seed verdicts are the evidence
behind ``compare``'s criterion. The folder is new or empty, and locked while the envelope works; a stop signal or a
failure kills the workers at once and removes what the envelope wrote."""
import concurrent.futures
import contextlib
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from .compare import compare
from .config import SEED_LIMIT, Config, ConfigError, folder_type, number_type, seed_type
from .failures import EXIT_OK, Interrupted, MachineError, Parser, completed, escaped
from .folder import refused, take_folder
from .logs import logged_points
from .machine import usable_cores
from .record import RunError, atomic_write, write_csv, write_json

SEEDS_LIMIT = 10**6  # 5000 float32 losses a seed kept to the end, and the band's copy: 40 GB (193 MiB at 10,000 seeds)
FILES = ("envelope.csv", "seeds.csv", "losses.npy", "reference_percentiles.csv", "envelope.png", "envelope.json")


def plural(count, noun):
    return f"{count} {noun}{'s' * (count != 1)}"


def seeds_text(seeds):
    """``"seed 7"``, or ``"seeds 7-9"`` for consecutive seeds."""
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"


def train_seed(seed):
    """One seed of the source's defaults, in a worker process; returns its losses as float32."""
    from .tfcompat import import_quiet_tensorflow
    from .train import train

    import_quiet_tensorflow()
    return np.asarray(train(Config(), seed, log=lambda line: None), dtype=np.float32)


def _worker_start():
    """A worker leaves Ctrl-C and a closed terminal (sent to the whole process group) to the parent, which stops it;
    and ends as soon as the parent is gone (killed outright, as by the out-of-memory killer: nobody would stop it)."""
    from .tfcompat import freeze_on_import

    freeze_on_import()
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def train_seeds(seeds, jobs, on_done=lambda seed, losses: None):
    """Losses of every seed, ``[len(seeds), num_steps]``, trained by ``jobs`` worker processes one seed at a time;
    ``on_done(seed, losses)`` as each finishes. However this ends, every worker is stopped before it returns."""
    # SIGHUP is blocked while the pool starts multiprocessing's resource tracker, which keeps it so: a hang-up sent to
    # the whole group killed the tracker, and the pool's shutdown then printed tracebacks.
    hup = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGHUP])
    try:
        pool = concurrent.futures.ProcessPoolExecutor(jobs, multiprocessing.get_context("spawn"),  # (TensorFlow does
                                                      initializer=_worker_start)                 # not survive fork)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, hup)
    workers = pool._processes  # by pid (concurrent.futures stops running workers only from Python 3.14)
    try:
        futures = {pool.submit(train_seed, seed): seed for seed in seeds}
        for future in completed(futures):
            on_done(futures[future], future.result())
    except concurrent.futures.process.BrokenProcessPool:  # (every seed not done then fails so, whoever died)
        pool.shutdown(wait=True)  # the pool has stopped the other workers, with SIGTERM
        killed = sorted({-p.exitcode for p in workers.values() if (p.exitcode or 0) < 0} - {signal.SIGTERM})
        how = "".join(f"killed by {signal.Signals(signum).name}; " for signum in killed)
        raise MachineError(f"an envelope worker died ({how}out of memory?)") from None
    except BaseException:
        for process in list(workers.values()):
            process.kill()  # a worker holds nothing that needs saving
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return np.stack([future.result() for future in futures])


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
    at = [all_losses[:, p.epoch * config.num_batches + p.step] for p in reference_points]  # each [seeds]
    return [(p.epoch, p.step, p.loss, 100 * (np.sum(losses < p.loss) + np.sum(losses == p.loss) / 2) / len(losses))
            for p, losses in zip(reference_points, at)]


def percentile_lines(rows):
    """The percentiles of ``reference_percentiles``, compactly: a line per epoch, whole numbers."""
    return [f"  epoch {epoch}: " + " ".join(f"{round(row[3]):>3}" for row in rows if row[0] == epoch)
            for epoch in sorted({row[0] for row in rows})]


def save(out, seeds, all_losses, reference_points, config=Config(), record=None, written=None):
    """Write FILES into ``out`` (envelope.json only given ``record``: how it was made), each name added to ``written``
    as it begins; return the summary's lines."""
    from .plots import envelope_figure, save_figure

    written = [] if written is None else written

    def path(name):
        written.append(name)
        return os.path.join(out, name)

    def write_npy(tmp):
        with open(tmp, "wb") as f:  # (given a name, np.save would add .npy to it)
            np.save(f, all_losses)  # [seeds, steps] float32, every step of every seed

    verdicts = [compare(logged_points(losses, config.num_batches), reference_points) for losses in all_losses]
    matches = [verdict.match for verdict in verdicts]
    gaps = [max((abs(e[3]) for e in verdict.epochs if e[4] is not None and e[3] is not None), default=math.inf)
            for verdict in verdicts]  # each seed's widest gap in decades among the judged epochs
    low, p10, median, p90, high = bands = band(all_losses)
    epoch, step = divmod(np.arange(all_losses.shape[1]), config.num_batches)
    write_csv(path("envelope.csv"), "epoch,step,min,p10,median,p90,max",
              zip(epoch, step, low, p10, median, p90, high))
    write_csv(path("seeds.csv"), "seed,match,widest_epoch_gap_decades,last_epoch_mean_loss",
              ((seed, int(match), f"{gap:.3f}", f"{losses[-config.num_batches:].mean():.4g}")
               for seed, match, gap, losses in zip(seeds, matches, gaps, all_losses)))
    atomic_write(path("losses.npy"), write_npy)
    percentiles = reference_percentiles(all_losses, reference_points, config)
    write_csv(path("reference_percentiles.csv"), "epoch,step,loss_2017,percentile_among_seeds",
              ((epoch, step, loss, f"{percentile:.1f}") for epoch, step, loss, percentile in percentiles))
    figure = envelope_figure(seeds, all_losses, bands, matches, reference_points, config.num_batches)
    save_figure(figure, path("envelope.png"))
    if record is not None:
        write_json(path("envelope.json"), record)

    matching_gaps = [gap for gap, match in zip(gaps, matches) if match]
    widest = f" (widest epoch gap among them: {max(matching_gaps):.2f} decades)" if matching_gaps else ""
    return [f"The 2017 run lies inside the band [min, max] of {plural(len(seeds), 'seed')} at "
            f"{reference_inside(reference_points, low, high, config)} of its {len(reference_points)} points, "
            f"inside [10th, 90th percentile] at {reference_inside(reference_points, p10, p90, config)}.",
            f"{len(matching_gaps)} of {len(seeds)} seeds match the 2017 run by compare's criterion{widest}.",
            *(f"  seed {seed}: {verdict.summary}" for seed, verdict in zip(seeds, verdicts) if not verdict.match),
            f"The 2017 run's percentile among the {plural(len(seeds), 'seed')} at its logged points (the percentage "
            f"of seeds below it; 0: below them all):",
            *percentile_lines(percentiles),
            f"Wrote {escaped(out)}: {', '.join(FILES if record is not None else FILES[:-1])}"]


def envelope_command(argv):
    """Train the seeds, then write the envelope into a folder that was new or empty, and locked meanwhile: another
    command cannot take it, and if this one stops, only what it wrote goes."""
    p = Parser(prog="python -m echo_rnn_tf1 envelope",
               description="Train K seeds of the source's defaults; write the per-step min / median / max, each "
                           "seed's verdict and where the 2017 run sits among them; draw the band with the 2017 run.")
    p.add_argument("--seeds", type=number_type(int), default=20, help="how many seeds (default: 20)")
    p.add_argument("--first-seed", type=seed_type, default=0,
                   help="seeds are FIRST_SEED, FIRST_SEED + 1, ... (default: 0)")
    p.add_argument("--engine", choices=("tf1", "tf2"), default="tf1",
                   help="tf1 (the default): each seed through the source's graph, one process per core; tf2: all "
                        "seeds side by side in XLA-compiled programs of up to 1000 seeds, from the same starting "
                        "points (its last line says how the two agree)")
    p.add_argument("--jobs", type=number_type(int), default=usable_cores(),
                   help="tf1: processes at once (about 640 MiB each); tf2: compiled programs at once, one thread each "
                        "(the seeds are split among at least this many); both at most one per usable core and per seed "
                        "(default: %(default)s)")
    p.add_argument("--out", type=folder_type,
                   help=f"a new or empty folder for {', '.join(FILES)} (default: a new one under runs/)")
    args = p.parse_args(argv)
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: must be a positive integer")
    if args.first_seed + args.seeds > SEED_LIMIT:
        raise ConfigError(f"--first-seed {args.first_seed} --seeds {args.seeds}: the last seed would pass 2**32 - 1, "
                          f"the largest numpy takes")
    if args.seeds > SEEDS_LIMIT:
        raise ConfigError(f"--seeds {args.seeds}: more than {SEEDS_LIMIT:.0e}, whose losses alone take 20 GB")
    out, created, held = _take_folder(args.out)
    written = []
    try:
        return _envelope(args, out, written)
    except BaseException as e:
        for name in written:  # what this envelope wrote, if it began: its folder was empty and is locked
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out, name))
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)
        if not isinstance(e, Interrupted):
            raise
        print(f"echo_rnn_tf1: {e} received; stopped, no envelope written", file=sys.stderr)
        return e.exit_code
    finally:
        os.close(held)


def _take_folder(out):
    """``(folder, whether this made it, its lock)``: ``out`` if new or empty, by default a new folder under runs/."""
    out, created, held = take_folder(out, "envelope")
    try:  # (locked, then looked at: another envelope may be writing there)
        if present := set(os.listdir(out)):
            raise RunError(f"--out {out}: " + ("holds an envelope already; choose another folder" if present & set(FILES)
                                               else "not empty; envelope writes only into a new or empty folder"))
        tempfile.TemporaryFile(dir=out).close()  # writable: refused now, not once every seed has trained
        return out, created, held
    except BaseException as e:
        os.close(held)
        raise refused(out, e) from None


def _envelope(args, out, written):
    """Train the seeds with ``args.engine``, printing as it goes; write the envelope into ``out``."""
    from . import machine
    from .logs import reference_points

    started, config = time.perf_counter(), Config()
    seeds, jobs = list(range(args.first_seed, args.first_seed + args.seeds)), min(args.jobs, args.seeds, usable_cores())
    capped = f" (--jobs {args.jobs} capped at {jobs}: one per seed and per usable core)" if jobs < args.jobs else ""
    how, trained = {"jobs": jobs}, plural(len(seeds), "seed")
    if args.engine == "tf1":
        print(f"Training {trained} of the source's defaults, {jobs} at a time{capped}", flush=True)
        all_losses = train_seeds(seeds, jobs, on_done=lambda seed, losses: print(
            f"seed {seed}: last epoch's mean loss {losses[-config.num_batches:].mean():.3g}", flush=True))
        engine_line, engine_note = f"Engine tf1: {trained}, {jobs} worker process{'es' * (jobs != 1)} at a time", ""
    else:
        from . import tf2_seeds
        from .tfcompat import import_quiet_tensorflow

        def done(chunk, losses):
            last = losses[:, -config.num_batches:].mean(axis=1)
            print(f"{seeds_text(chunk)}: last epoch's mean loss: median {np.median(last):.3g}, "
                  f"largest {last.max():.3g}", flush=True)

        parts, _ = tf2_seeds.chunks(seeds, jobs)
        how.update(programs=len(parts), seeds_per_program=len(parts[0]))
        programs = plural(len(parts), "compiled program")
        print(f"Training {trained} of the source's defaults with the tf2 engine: {programs} of "
              f"{plural(len(parts[0]), 'seed')}, {jobs} at a time{capped}", flush=True)
        import_quiet_tensorflow()
        all_losses = tf2_seeds.train_seeds(config, seeds, jobs, on_chunk=done)
        engine_line = f"Engine tf2: {trained} in {programs} of {len(parts[0])}, {jobs} at a time"
        engine_note = f", loading TensorFlow and compiling included\n{tf2_seeds.AGREEMENT}"
    train_seconds = time.perf_counter() - started
    record = {"engine": args.engine, "first_seed": seeds[0], "seeds": len(seeds), **how,
              "config": config.to_dict(), "seconds": round(train_seconds, 2), "versions": machine.versions(),
              "machine": machine.describe(sys.modules.get("tensorflow")),  # (with cuda_build where it is loaded)
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    print(*save(out, seeds, all_losses, reference_points(), config, record, written), sep="\n")
    print(f"{engine_line}: {train_seconds:.1f} s of training{engine_note}")
    return EXIT_OK
