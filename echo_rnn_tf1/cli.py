"""Command line: ``python -m echo_rnn_tf1 [flags]`` trains; ``python -m echo_rnn_tf1 COMMAND ...`` does the rest.

Nothing heavy is imported here: TensorFlow and matplotlib are imported by the commands that use them, so
``--help`` answers at once and bad flags are refused before anything is loaded or written.
"""
import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time

from . import failures
from .config import CHOICES, MEANING, SEED_LIMIT, Config, ConfigError
from .failures import EXIT_FAILED, EXIT_OK, BadInput, Interrupted
from .limits import check_folder_path, check_memory
from .logs import LogError
from .runs import RunError, RunWriter
from .tfcompat import freeze_on_import


class UsageError(BadInput):
    """A command line that argparse could not parse."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line becomes one line and exit code 2 (through ``main``), not usage text."""

    def error(self, message):
        if message.startswith("unrecognized arguments: "):  # the source's variable names, as flags: a hint
            flags = [arg.split("=")[0].replace("_", "-") for arg in message.split()[2:] if arg.startswith("--")]
            known = [flag for flag in flags if flag in self._option_string_actions]
            message += f" (did you mean {' '.join(known)}?)" if known else ""
        raise UsageError(f"{self.prog}: {message}")


def seed_type(text):
    """argparse type for a seed: a whole number numpy can seed with."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: not a whole number") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"invalid seed {seed}: must be from 0 to 2**32 - 1, as numpy requires")
    return seed


def folder_type(text):
    """argparse type for --out: a path, not an empty one (which would fall back to a new folder unasked)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (leave --out out for a new folder under runs/)")
    return text


VARIANT_HELP = {  # the flags of the variants (config.MEANING has the source's hyperparameters)
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


def train_parser():
    p = Parser(prog="python -m echo_rnn_tf1",
               description="Train the 2017 Echo-RNN (BasicRNNCell + dynamic_rnn through tf.compat.v1) and print "
                           "the source's log. Other commands: compare, doctor, envelope, evaluate, predict (see: COMMAND --help).",
)
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        meaning = MEANING.get(field.name) or VARIANT_HELP.get(field.name) or field.name.replace("_", " ")
        if field.type is bool:
            p.add_argument(flag, action="store_true", help=meaning)
        elif field.name in CHOICES:
            p.add_argument(flag, choices=CHOICES[field.name], default=field.default,
                           help=f"{meaning} (default: {field.default})")
        else:
            p.add_argument(flag, type=field.type, default=field.default, metavar=field.type.__name__.upper(),
                           help=f"{meaning} (default: {field.default})")
    p.add_argument("--seed", type=seed_type, help="seed random, numpy and TensorFlow as a header on the source would "
                                            "(default: draw one and record it in run.json)")
    p.add_argument("--out", type=folder_type, help="run folder (default: a new folder under runs/)")
    p.add_argument("--force", action="store_true", help="overwrite the files of a run already in --out")
    p.add_argument("--engine", choices=("tf1", "tf2"), default="tf1",
                   help="tf1 (the default): the source's graph, one session call per step; tf2: the same training in "
                        "native TensorFlow 2, an epoch per XLA-compiled call")
    p.add_argument("--unroll", action="store_true",
                   help="with --engine tf1: the same cell over static_rnn instead of dynamic_rnn: same math, "
                        "faster per step")
    p.add_argument("--tensorboard", action="store_true",
                   help="write every step's loss under OUT/tb/, and the graph with --engine tf1")
    p.add_argument("--portable", action="store_true",
                   help="with --engine tf1: oneDNN settings under which a seed gives the same bits on any x86-64 "
                        "CPU that the measurements could stand for (see docs/machines.md); slower")
    return p


def train_command(argv):
    if argv and not argv[0].startswith("-"):
        raise UsageError(f"python -m echo_rnn_tf1: no command {argv[0]!r}; the commands are "
                         f"{', '.join(sorted(COMMANDS))}, and without one the flags train a run (see --help)")
    args = train_parser().parse_args(argv)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    if args.unroll and args.engine != "tf1":
        raise UsageError("--unroll: only with --engine tf1 (the tf2 engine writes the recurrence out already)")
    if args.portable and args.engine != "tf1":
        raise UsageError("--portable: only with --engine tf1 (XLA compiles the tf2 engine for this very CPU)")
    if args.engine == "tf2":
        from .tf2 import refuse_variant

        refuse_variant(config)
    check_memory(config)
    from .launch import train_run
    from .train import draw_seed

    seed = args.seed if args.seed is not None else draw_seed()
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + f"-seed{seed}")
    # From here to the end a signal is acted on where nothing is left half written (see launch.py).
    with failures.DeferredSignals().installed() as stop:
        run = RunWriter(out, force=args.force)  # refuses a used, locked or unwritable --out before anything is loaded
        if args.portable:
            from .machine import apply_portable

            apply_portable()  # before TensorFlow loads
        try:
            return train_run(run, config, seed, args.engine, args.unroll, args.tensorboard, args.portable, stop)
        finally:
            run.close()


def compare_parser():
    p = Parser(prog="python -m echo_rnn_tf1 compare",
               description="Judge a run's loss log against the 2017 run's (or another reference log); a run "
                           "folder that changed the source's hyperparameters or chose a variant (--carry-state, "
                           "--cell, ...) is not comparable with 2017, as its end said. Given two "
                           "run folders of the same seed and hyperparameters, also compare their losses.csv step by "
                           "step: bit-identical, or where they first differ, with both runs' machines. "
                           "Exit code 0: it reproduces the reference; 1: it does not; 2: a file could not be read.")
    p.add_argument("run", help="a run folder (its train.log is read) or a log file")
    p.add_argument("reference", nargs="?", help="a log file or run folder (default: the 2017 run, shipped)")
    return p


def _read_points(path, keep=None, limit=None):
    from .logs import read_log
    from .runs import LOG

    log = os.path.join(path, LOG) if os.path.isdir(path) else path
    if log != path and not os.path.lexists(log):
        raise LogError(f"{path}: a folder without a {LOG}: give a run folder or a log file")
    return read_log(log, keep, limit)


def compare_command(argv):
    args = compare_parser().parse_args(argv)
    import math

    from .compare import compare, format_table
    from .logs import REFERENCE_LIMIT, parse_log, read_reference

    if args.reference:
        reference_points = _read_points(args.reference, limit=REFERENCE_LIMIT)
        bad = next((p for p in reference_points if not math.isfinite(p.loss)), None)
        if bad is not None:
            raise LogError(f"{args.reference}, line {bad.line}: the reference's loss is {bad.loss} at epoch "
                           f"{bad.epoch} step {bad.step}; a reference must be finite (a diverged run is no yardstick)")
    else:
        reference_points = parse_log(read_reference(), "2017 log")
    run_points = _read_points(args.run, keep={(p.epoch, p.step) for p in reference_points})
    same_seed = _same_seed_lines(args.run, args.reference) if args.reference else []
    changed = [] if args.reference else _changes_from_source(args.run)
    verdict = compare(run_points, reference_points)
    print(format_table(verdict, run_name="this run", reference_name="reference" if args.reference else "2017"))
    for reason in verdict.reasons[1:]:
        print(f"also: {reason}")
    for line in same_seed:
        print(line)
    if changed:  # (the verdict its end printed, too)
        print(f"not comparable with the 2017 run: this run changed the source's {', '.join(changed)} "
              f"(the table is for reading, not a verdict)")
        return EXIT_FAILED
    print(verdict.summary)
    return EXIT_OK if verdict.match else EXIT_FAILED


def _changes_from_source(path):
    """What a run folder's run.json changed from the source (``Config.changes_from_source``: hyperparameters and
    variants); [] for a log file, or a run.json that cannot be read (the log is judged as it stands)."""
    from .runs import load_run

    if not os.path.isfile(os.path.join(path, "run.json")):
        return []
    try:
        return load_run(path)[1].changes_from_source()
    except RunError:
        return []


def _same_seed_lines(path, other):
    """For two run folders of the same seed and hyperparameters: their losses step by step, and their machines."""
    from .compare import identity_line
    from .machine import machine_line
    from .runs import LOSSES, load_run, read_losses

    if not (os.path.isfile(os.path.join(path, "run.json")) and os.path.isfile(os.path.join(other, "run.json"))):
        return []
    (info, config), (other_info, other_config) = load_run(path), load_run(other)
    if info.get("seed") != other_info.get("seed") or config != other_config:
        return []

    def losses_of(folder):
        try:
            return read_losses(os.path.join(folder, LOSSES))[2]
        except ValueError as e:  # a row that is not "epoch,batch,loss"
            raise RunError(f"{os.path.join(folder, LOSSES)}: unreadable ({e})") from None

    losses, other_losses = losses_of(path), losses_of(other)
    differ = [key for key in ("engine", "rnn", "portable") if info.get(key) != other_info.get(key)
              and not (key == "rnn" and info.get("engine") != other_info.get("engine"))]  # (tf2 records no rnn)
    also = f" (they differ in {', '.join(differ)})" if differ else ""
    return [f"same seed ({info.get('seed')}) and hyperparameters{also}: "
            f"{identity_line(losses, other_losses, config.num_batches)}",
            f"  this run:  {machine_line(info.get('machine'))}",
            f"  reference: {machine_line(other_info.get('machine'))}"]


def envelope_parser():
    p = Parser(prog="python -m echo_rnn_tf1 envelope",
               description="Train K seeds of the source's default configuration, write the per-step min / median / "
                           "max, each seed's verdict and where the 2017 run sits among the seeds, draw the band with "
                           "the 2017 run.")
    p.add_argument("--seeds", type=int, default=20, help="how many seeds (default: 20)")
    p.add_argument("--first-seed", type=seed_type, default=0,
                   help="seeds are FIRST_SEED, FIRST_SEED + 1, ... (default: 0)")
    p.add_argument("--engine", choices=("tf1", "tf2"), default="tf1",
                   help="tf1 (the default): each seed through the source's graph, one process per core; tf2: all "
                        "seeds side by side in XLA-compiled programs of up to 1000 seeds, from the same starting "
                        "points (docs/reproducing.md says how the two agree)")
    p.add_argument("--jobs", type=int, default=os.cpu_count(),
                   help="tf1: processes at once, capped at what memory holds (about 640 MiB each); tf2: compiled "
                        "programs at once, one thread each (the seeds are split among at least this many); both "
                        "capped at one per usable core (default: the number of cores, %(default)s)")
    p.add_argument("--out", type=folder_type, help="a new or empty folder for envelope.csv, seeds.csv, losses.npy, "
                                 "reference_percentiles.csv, envelope.png, envelope.json (default: a new one under runs/)")
    return p


def envelope_command(argv):
    args = envelope_parser().parse_args(argv)
    started = time.perf_counter()
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs)):
        if value < 1:
            raise ConfigError(f"{flag} {value}: must be a positive integer")
    if args.first_seed + args.seeds > SEED_LIMIT:
        raise ConfigError(f"--first-seed {args.first_seed} --seeds {args.seeds}: the last seed would pass 2**32 - 1, "
                          f"the largest numpy takes")
    from . import envelope
    from .limits import memory_available

    if args.engine == "tf1":
        jobs, why = envelope.capped_jobs(args.jobs, args.seeds, memory_available())
    else:
        from . import tf2_seeds

        jobs, why = tf2_seeds.capped_jobs(args.jobs, args.seeds, memory_available(), envelope.usable_cores())
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S") + "-envelope")
    check_folder_path(out)
    if os.path.exists(os.path.join(out, "envelope.csv")):
        raise RunError(f"--out {out}: holds an envelope already; choose another folder")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise RunError(f"--out {out}: exists and is not an empty folder; envelope writes only into a new or empty one")
    created = not os.path.exists(out)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise RunError(f"--out {out}: cannot write there ({e.strerror})") from None

    from .logs import parse_log, read_reference

    config, seeds = Config(), list(range(args.first_seed, args.first_seed + args.seeds))
    reference_points = parse_log(read_reference(), "2017 log")
    capped = f" (--jobs {args.jobs} capped at {jobs}: {why})" if why else ""
    stage = "training"
    try:
        if args.engine == "tf1":
            print(f"Training {envelope.plural(len(seeds), 'seed')} of the source's defaults, {jobs} at a time{capped}",
                  flush=True)
            all_losses = envelope.train_seeds(seeds, jobs, on_done=lambda seed, losses: print(
                f"seed {seed}: last epoch's mean loss {losses[-config.num_batches:].mean():.3g}", flush=True))
            how = {"jobs": jobs}
        else:
            all_losses, how = _envelope_tf2(config, seeds, jobs, capped)
        train_seconds = time.perf_counter() - started

        from . import machine
        from .runs import versions

        record = {"engine": args.engine, "first_seed": seeds[0], "seeds": len(seeds), **how,
                  "config": config.to_dict(), "seconds": round(train_seconds, 2), "versions": versions(),
                  "machine": machine.describe(sys.modules.get("tensorflow")),  # (with cuda_build where it is loaded)
                  "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        stage = "writing"
        summary = envelope.save(out, seeds, all_losses, reference_points, config, record)
    except BaseException as e:
        envelope.discard(out)  # what save wrote, if it began: an envelope is whole or not there
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # (only if still empty)
        if isinstance(e, Interrupted):
            stopped = ("writing stopped" if stage == "writing" else "workers stopped" if args.engine == "tf1"
                       else "training stopped")
            print(f"echo_rnn_tf1: {e} received; {stopped}, no envelope written", file=sys.stderr)
            return e.exit_code
        raise

    for line in summary:
        print(line)
    if args.engine == "tf1":
        print(f"Engine tf1: {envelope.plural(len(seeds), 'seed')}, {jobs} worker process{'es' * (jobs != 1)} at a "
              f"time: {train_seconds:.1f} s of training")
    else:
        print(f"Engine tf2: {envelope.plural(len(seeds), 'seed')} in "
              f"{envelope.plural(how['programs'], 'compiled program')} of {how['seeds_per_program']}, {jobs} at a time: "
              f"{train_seconds:.1f} s of training, loading TensorFlow and compiling included")
        from .tf2_seeds import AGREEMENT

        print(AGREEMENT)
    return EXIT_OK


def _envelope_tf2(config, seeds, jobs, capped):
    """Train ``seeds`` with the tf2 engine, printing as it goes; return their losses and how, for envelope.json."""
    import numpy as np

    from . import tf2_seeds
    from .envelope import plural, seeds_text
    from .tfcompat import import_quiet_tensorflow

    parts, _ = tf2_seeds.chunks(seeds, jobs)
    print(f"Training {plural(len(seeds), 'seed')} of the source's defaults with the tf2 engine: "
          f"{plural(len(parts), 'compiled program')} of {plural(len(parts[0]), 'seed')}, {jobs} at a time{capped}",
          flush=True)
    import_quiet_tensorflow()
    checked = sorted({seeds[0], seeds[-1]})
    with failures.held_signals():  # (raised inside TensorFlow's graph code, a signal was lost there, or broke it)
        faithful = tf2_seeds.start_is_faithful(config, checked)
    if faithful:
        start, starting_points = tf2_seeds.drawn_start, f"drawn, checked against the faithful graph on seeds {checked}"
    else:
        start, starting_points = tf2_seeds.locked(tf2_seeds.faithful_start), "the faithful graph's, built per seed"
        print("Starting points: this TensorFlow seeds the cell's kernel otherwise than 2.12 to 2.21 do; each seed's "
              "are taken from its faithful graph (about 0.1 s a seed)", flush=True)

    def done(chunk, losses):
        last = losses[:, -config.num_batches:].mean(axis=1)
        print(f"{seeds_text(chunk)}: last epoch's mean loss: median {np.median(last):.3g}, "
              f"largest {last.max():.3g}", flush=True)

    all_losses = tf2_seeds.train_seeds(config, seeds, jobs, start, on_chunk=done)
    return all_losses, {"jobs": jobs, "programs": len(parts), "seeds_per_program": len(parts[0]),
                        "starting_points": starting_points}


def evaluate_parser():
    p = Parser(prog="python -m echo_rnn_tf1 evaluate",
               description="Run a trained model on a fresh series drawn as in training: loss, accuracy, and "
                           "accuracy at each position of the window.")
    p.add_argument("run", help="a run folder with a checkpoint")
    p.add_argument("--seed", type=seed_type, help="seed of the fresh series (default: draw one; it is printed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def evaluate_command(argv):
    args = evaluate_parser().parse_args(argv)
    from .data import zeroed_positions
    from .evaluate import evaluate, how_fed
    from .runs import load_run
    from .tfcompat import import_quiet_tensorflow
    from .train import draw_seed

    _, config = load_run(args.run)  # refuse a folder that is not a run before loading TensorFlow
    check_memory(config)  # the fresh series is as long as the training one
    import_quiet_tensorflow()
    result = evaluate(args.run, args.seed if args.seed is not None else draw_seed())
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    bits = result["windows"] * config.truncated_backprop_length
    print(f"Evaluated {args.run} on a fresh series (seed {result['seed']}): {result['windows']} windows of "
          f"{config.truncated_backprop_length}, {how_fed(config)}")
    print(f"loss      {result['loss']:.6g}")
    print(f"accuracy  {100 * result['accuracy']:.2f} % of {bits} bits")
    positions = range(config.truncated_backprop_length)
    print("position  " + " ".join(f"{i:>6}" for i in positions))
    print("target    " + " ".join(f"{'0' if i < zeroed_positions(config) else 'echo':>6}" for i in positions))
    print("accuracy  " + " ".join(f"{100 * a:>6.2f}" for a in result["accuracy_by_position"]))
    return EXIT_OK


def predict_parser():
    p = Parser(prog="python -m echo_rnn_tf1 predict",
               description="Show a trained model's echo of your bits, window by window, fed as the run was "
                           "trained (each window from a zero state, as the source; or carrying the state).")
    p.add_argument("run", help="a run folder with a checkpoint")
    p.add_argument("bits", help="0s and 1s; the length a multiple of the run's truncated_backprop_length")
    p.add_argument("--json", action="store_true", help='print {"input": ..., "target": ..., "prediction": ...}')
    return p


def predict_command(argv):
    args = predict_parser().parse_args(argv)
    from .evaluate import bit_windows, predict, targets_in_words
    from .runs import load_run
    from .tfcompat import import_quiet_tensorflow

    _, config = load_run(args.run)
    bit_windows(args.bits, config)  # refuse bad bits before loading TensorFlow
    import_quiet_tensorflow()
    result = predict(args.run, args.bits)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    length = config.truncated_backprop_length
    step = max(1, 72 // (length + 1)) * length  # whole windows per line

    def spaced(text):
        return " ".join(text[i:i + length] for i in range(0, len(text), length))

    for start in range(0, len(result["input"]), step):
        for name in ("input", "target", "prediction"):
            print(f"{name:<11} " + spaced(result[name][start:start + step]))
        wrong = "".join(" " if a == b else "^" for a, b in zip(result["target"][start:start + step],
                                                                 result["prediction"][start:start + step]))
        if wrong.strip():
            print(f"{'wrong':<11} " + spaced(wrong))
        print()
    right = sum(a == b for a, b in zip(result["target"], result["prediction"]))
    print(f"{right} of {len(result['target'])} bits as trained: {targets_in_words(config)}")
    return EXIT_OK


def doctor_parser():
    p = Parser(prog="python -m echo_rnn_tf1 doctor",
               description="What to run first when your numbers differ from ours: the environment, then the package "
                           "against the source's own loop on this machine, bit for bit. Exit code 0: everything "
                           "reproduces; 1: something does not; 3: the machine failed it (out of memory, a full "
                           "disk, a process of its own killed).")
    p.add_argument("--portable", action="store_true",
                   help="also train seeds 0-9 (one epoch each) under the portable settings and compare them with "
                        "the bits shipped in the package")
    return p


def doctor_command(argv):
    args = doctor_parser().parse_args(argv)
    from .doctor import doctor

    return doctor(portable=args.portable)


COMMANDS = {"compare": compare_command, "doctor": doctor_command, "envelope": envelope_command,
            "evaluate": evaluate_command, "predict": predict_command}


def main(argv=None):
    """Run a command; return its exit code (see failures.py). A failure of any kind is one line on stderr.

    Without ``argv``, this is the process's entry point: once the command is over, a late Ctrl-C can no longer
    change how the process ends."""
    entry_point = argv is None
    if entry_point:
        failures.open_standard_streams()
        os.environ["MPLBACKEND"] = "agg"  # the commands only write picture files: whatever backend is asked for
        freeze_on_import()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = COMMANDS.get(argv[0]) if argv else None
    with failures.closed_pipe_safe_streams(), failures.stopping_signals(then_ignore=entry_point) as lost:
        try:
            code = command(argv[1:]) if command else train_command(argv)
            if lost and code != lost[0].exit_code:  # a signal lost on its way: the command went on to its end
                raise lost[0]
            return code
        except (Exception, KeyboardInterrupt, Interrupted) as e:
            return failures.report(e)


def entry_point():
    """The process's entry point (``python -m echo_rnn_tf1``, ``echo-rnn-tf1``): ``main()``, then leave at once.

    The interpreter's own teardown once TensorFlow is loaded takes most of a second and does nothing a command
    needs: by now every file is written and closed and every child process stopped. Only the standard streams'
    buffers are left to flush.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: what was not read is not wanted
            stream.flush()
    os._exit(code)

