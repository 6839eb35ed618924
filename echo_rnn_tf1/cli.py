"""Command line: ``python -m echo_rnn_tf1 [flags]`` trains; ``python -m echo_rnn_tf1 COMMAND ...`` does the rest.

Nothing heavy is imported here: TensorFlow and matplotlib are imported by the commands that use them, so
``--help`` answers at once and bad flags are refused before anything is loaded or written.
"""
import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys

from . import failures, streams
from .config import CHOICES, MEANING, Config, folder_type, number_type, seed_type
from .failures import EXIT_FAILED, EXIT_OK, BadInput, Parser
from .tfcompat import freeze_on_import

UNROLL_LIMIT = 1000  # --unroll builds a copy of the cell per step: a window of 20,000 steps took 6.9 GB


def train_parser():
    p = Parser(prog="python -m echo_rnn_tf1",
               description="Train the 2017 Echo-RNN (BasicRNNCell + dynamic_rnn through tf.compat.v1) and print the "
                           "source's log. Other commands: compare, doctor, envelope, evaluate, predict (see: COMMAND --help).")
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        meaning = MEANING.get(field.name) or field.name.replace("_", " ")
        if field.type is bool:
            p.add_argument(flag, action="store_true", help=meaning)
        elif field.name in CHOICES:
            p.add_argument(flag, choices=CHOICES[field.name], default=field.default,
                           help=f"{meaning} (default: {field.default})")
        else:
            p.add_argument(flag, type=number_type(field.type), default=field.default,
                           metavar=field.type.__name__.upper(),
                           help=f"{meaning} (default: {field.default})")
    p.add_argument("--version", action=_Version)
    p.add_argument("--seed", type=seed_type, help="seed random, numpy and TensorFlow as a header on the source would "
                                            "(default: draw one and record it in run.json)")
    p.add_argument("--out", type=folder_type, help="run folder (default: a new folder under runs/)")
    p.add_argument("--force", action="store_true",
                   help="replace the run already in --out: remove the files its run.json lists, then train")
    p.add_argument("--engine", choices=("tf1", "tf2"), default="tf1",
                   help="tf1 (the default): the source's graph, one session call per step; tf2: the same training in "
                        "native TensorFlow 2, an epoch per XLA-compiled call")
    p.add_argument("--unroll", action="store_true",
                   help="with --engine tf1: the same cell over static_rnn instead of dynamic_rnn: same math, "
                        "faster per step")
    p.add_argument("--no-pictures", action="store_true",
                   help="draw none of the five pictures: a default run ends about 1.5 s sooner (a sweep, say); its "
                        "checkpoint is saved as ever, for evaluate and predict")
    p.add_argument("--tensorboard", action="store_true",
                   help="write every step's loss under OUT/tb/, and the graph with --engine tf1")
    p.add_argument("--portable", action="store_true",
                   help="with --engine tf1: the same bits on any x86-64 CPU (oneDNN capped at SSE4.1, Adagrad from "
                        "exactly rounded operations: not the source's bits); slower. doctor --portable checks this "
                        "machine against the bits shipped in the package")
    return p


class _Version(argparse.Action):
    """``--version``, looked up only when asked: importing importlib.metadata is 20 ms of a refused command's 70."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="show the installed version and exit")

    def __call__(self, parser, *args):
        from importlib import metadata

        installed = (d.version for d in metadata.distributions(name="echo-rnn-tf1"))
        print("echo_rnn_tf1", next(installed, "(not installed: a source folder)"))
        parser.exit()


def train_command(argv):
    if argv and not argv[0].startswith("-"):
        raise BadInput(f"python -m echo_rnn_tf1: no command {argv[0]!r}; the commands are "
                       f"{', '.join(sorted(COMMANDS))}, and without one the flags train a run (see --help)")
    args = train_parser().parse_args(argv)
    config = Config(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Config)})
    if args.unroll and args.engine != "tf1":
        raise BadInput("--unroll: only with --engine tf1 (the tf2 engine writes the recurrence out already)")
    if args.unroll and config.truncated_backprop_length > UNROLL_LIMIT:
        raise BadInput(f"--unroll: a copy of the cell per step of a window of {config.truncated_backprop_length}; "
                       f"up to {UNROLL_LIMIT} (without --unroll, any)")
    if args.portable and args.engine != "tf1":
        raise BadInput("--portable: only with --engine tf1 (XLA compiles the tf2 engine for this very CPU)")
    if args.engine == "tf2":
        from .tf2 import refuse_variant

        refuse_variant(config)
    from .run import train_run
    from .train import draw_seed

    seed = args.seed if args.seed is not None else draw_seed()
    if args.portable:
        from .machine import apply_portable

        apply_portable()  # before TensorFlow loads
    return train_run(config, seed, args.out, args.force, args.engine, args.unroll, args.tensorboard, args.portable,
                     pictures=not args.no_pictures)


def _log_points(path):
    """``(the run's record, or None for a log, the log read, its logged points)``: a run folder's record is read first,
    so a damaged one is refused, never read as "no changes"; a folder with a train.log and no run.json is a log."""
    from .logs import LogError, read_log
    from .record import LOG, RUN_JSON, read_run

    if not os.path.isdir(path):
        return None, path, read_log(path)
    run = read_run(path) if os.path.lexists(os.path.join(path, RUN_JSON)) else None
    log = os.path.join(path, LOG)
    if run is None and not os.path.lexists(log):
        raise LogError(f"{path}: a folder without a {LOG}: give a run folder or a log file")
    try:
        return run, log, read_log(log, whole_lines=run is not None)
    except LogError as e:
        if run is None or run.status == "finished":
            raise
        raise LogError(f"{e} (the run {run.state})") from None  # e.g. one that died before its first loss


def compare_command(argv):
    p = Parser(prog="python -m echo_rnn_tf1 compare",
               description="Judge a run's loss log against the 2017 run's (or another reference log); a run folder "
                           "that changed the source's hyperparameters or chose a variant (--carry-state, --cell, ...) "
                           "is not comparable with 2017, as its end said. Given two run folders of the same seed and "
                           "hyperparameters, also compare their losses.csv step by step: bit-identical, or where they "
                           "first differ, with both runs' machines. Exit code 0: it reproduces the reference; 1: it "
                           "does not; 2: a file could not be read.")
    p.add_argument("run", help="a run folder (its train.log is read) or a log file")
    p.add_argument("reference", nargs="?", help="a log file or run folder (default: the 2017 run, shipped)")
    args = p.parse_args(argv)
    from .compare import compare, format_table, same_seed_lines
    from .logs import LogError, reference_points

    reference, log, points = (None, None, reference_points()) if not args.reference else _log_points(args.reference)
    bad = next((p for p in points if not math.isfinite(p.loss)), None)
    if bad is not None:  # (named as every log error names it: the file, then the line)
        raise LogError(f"{log}, line {bad.line}: the reference's loss is {bad.loss} at epoch "
                       f"{bad.epoch} step {bad.step}; a reference must be finite (a diverged run is no yardstick)")
    if reference is not None and reference.status == "diverged":  # (its log may end before the loss that did)
        raise LogError(f"{args.reference}: the reference diverged ({reference.cause}); a diverged run is no yardstick")
    run, _, run_points = _log_points(args.run)
    same_seed = same_seed_lines(run, reference) if run is not None and reference is not None else []
    verdict = compare(run_points, points)
    print(format_table(verdict, run_name="this run", reference_name="reference" if args.reference else "2017"))
    for reason in verdict.reasons[1:]:
        print(f"also: {reason}")
    for record, name in ((run, "this run"), (reference, "the reference")):
        if record is not None and record.status != "finished":
            print(f"{name} is not finished: {record.state}")
    for line in same_seed:
        print(line)
    if run is not None and reference is not None and run.config != reference.config:
        differ = [name for name, value in run.config.to_dict().items() if getattr(reference.config, name) != value]
        print(f"the two runs' hyperparameters differ: {', '.join(differ)}")
    changed = run.config.changes_from_source() if run is not None and not args.reference else []
    if changed:  # (the verdict its end printed, too)
        print(f"not comparable with the 2017 run: this run changed the source's {', '.join(changed)} "
              f"(the table is for reading, not a verdict)")
        return EXIT_FAILED
    print(verdict.summary)
    return EXIT_OK if verdict.match else EXIT_FAILED


def evaluate_command(argv):
    p = Parser(prog="python -m echo_rnn_tf1 evaluate",
               description="Run a trained model on a fresh series drawn as in training: loss, accuracy, "
                           "accuracy at each position of the window, and its memory: how well the input k steps back "
                           "can be read from its state, trained and as its seed started.")
    p.add_argument("run", help="a run folder with a checkpoint")
    p.add_argument("--seed", type=seed_type, help="seed of the fresh series (default: draw one; it is printed)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    from . import memory
    from .evaluate import evaluate_model, evaluation_lines, trained_model
    from .record import read_run
    from .train import draw_seed

    run = read_run(args.run)
    seed = args.seed if args.seed is not None else draw_seed()
    with trained_model(run) as (sess, model, config):  # (the checkpoint restored once, for both)
        result = evaluate_model(sess, model, config, seed)
        result["memory"] = memory.of_run(sess, model, config, run.seed, seed)
    if args.json:
        print(json.dumps(result, allow_nan=False))
        return EXIT_OK
    for line in evaluation_lines(result, config, args.run):
        print(line)
    return EXIT_OK


def predict_command(argv):
    p = Parser(prog="python -m echo_rnn_tf1 predict",
               description="Show a trained model's echo of your bits, window by window, fed as the run was "
                           "trained (each window from a zero state, as the source; or carrying the state).")
    p.add_argument("run", help="a run folder with a checkpoint")
    p.add_argument("bits", help="0s and 1s, the length a multiple of the run's truncated_backprop_length (spaces "
                                "between windows, as it prints them, are let be)")
    p.add_argument("--json", action="store_true", help='print {"input": ..., "target": ..., "prediction": ...}')
    args = p.parse_args(argv)
    from .evaluate import predict, prediction_lines
    from .record import read_run

    run = read_run(args.run)
    result = predict(run, args.bits)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    for line in prediction_lines(result, run.config):
        print(line)
    return EXIT_OK


def doctor_command(argv):
    p = Parser(prog="python -m echo_rnn_tf1 doctor",
               description="What to run first when your numbers differ from ours: the environment, then the package "
                           "against the source's own loop on this machine, bit for bit. Exit code 0: everything "
                           "reproduces; 1: something does not; 3: the machine failed it (out of memory, a full "
                           "disk, a process of its own killed).")
    p.add_argument("--portable", action="store_true",
                   help="also train seeds 0-9 (one epoch each) under the portable settings and compare them with "
                        "the bits shipped in the package")
    args = p.parse_args(argv)
    from .doctor import doctor

    return doctor(portable=args.portable)


def envelope_command(argv):
    from .envelope import envelope_command

    return envelope_command(argv)


COMMANDS = {"compare": compare_command, "doctor": doctor_command, "envelope": envelope_command,
            "evaluate": evaluate_command, "predict": predict_command}


def main(argv=None):
    """Run a command; return its exit code (see failures.py). A failure of any kind is one line on stderr.

    Without ``argv``, this is the process's entry point."""
    entry_point = argv is None
    if entry_point:
        streams.open_standard_streams()
        os.environ["MPLBACKEND"] = "agg"  # the commands only write picture files: whatever backend is asked for
        freeze_on_import()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = COMMANDS.get(argv[0]) if argv else None
    with streams.closed_pipe_safe_streams(), failures.stop_signals_raise() as raised:
        try:
            code = command(argv[1:]) if command else train_command(argv)
            if raised and code != raised[0].exit_code and not getattr(raised[0], "handled", False):  # a signal lost
                # on its way (a library's except BaseException): the command went on to its end
                raise raised[0]
            return code
        except (Exception, KeyboardInterrupt) as e:
            return failures.print_failure(e)


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

