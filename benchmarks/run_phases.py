"""Where the time of a whole run goes: ``python -m echo_rnn_tf1 --seed 0``, phase by phase, for both engines.

Each round runs, in random order, for each engine: the command as users run it (timed from outside), and the
same command in a process that times its phases (the package's functions wrapped with a clock; the command's
own code unchanged). The phases: the interpreter's start and exit with the package's import, TensorFlow's
import, the data, the graph (tf1: building it and the session; tf2: the faithful graph's starting weights, drawn
without it), compilation (tf2), the training loop, the checkpoint, the pictures, the verdict, and what
is left. Medians of the rounds are printed.

    python benchmarks/run_phases.py [--rounds 3] [--num-epochs 5]
"""
import argparse
import collections
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
ENGINES = ("tf1", "tf2")
PHASES = ("interpreter start and exit, package import", "TensorFlow import", "data", "graph", "compile",
          "training loop", "checkpoint", "pictures", "verdict", "the rest")
TRAINING = "training loop"


def child(argv):
    """Run the command in this process with its phases timed; print the phases' seconds as JSON."""
    start = time.perf_counter()
    sys.path.insert(0, ROOT)
    from echo_rnn_tf1 import cli, run, tf2, tfcompat, train

    seconds = collections.defaultdict(float)

    def clocked(owner, name, phase, minus=()):
        """Wrap ``owner.name`` so that its time adds to ``phase`` (less what phases in ``minus`` took inside it)."""
        function = getattr(owner, name)

        def wrapper(*args, **kwargs):
            before = {p: seconds[p] for p in minus}
            t = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[phase] += time.perf_counter() - t - sum(seconds[p] - before[p] for p in minus)
        setattr(owner, name, wrapper)

    clocked(tfcompat, "import_quiet_tensorflow", "TensorFlow import")
    clocked(train, "generate_data", "data")  # (as prepare calls it)
    clocked(tf2, "generate_data", "data")  # (as drawn_start calls it)
    clocked(train, "prepare", "graph", minus=["data"])
    clocked(tf2, "drawn_start", "graph", minus=["data"])  # tf2: the faithful graph's start, drawn
    clocked(train, "session", "graph")
    clocked(tf2.Engine, "compile", "compile")
    clocked(train, "run_training", TRAINING)
    clocked(tf2, "run_epochs", TRAINING)
    clocked(run, "_save_checkpoint", "checkpoint")
    clocked(run, "_draw", "pictures")
    clocked(run, "verdict", "verdict")
    with open(os.devnull, "w") as null:
        sys.stdout = null
        sys.argv = [sys.argv[0], *argv]
        code = cli.main()  # (as the process's entry point, as users run it)
        sys.stdout = sys.__stdout__
    seconds["in process"] = time.perf_counter() - start
    print(json.dumps({"code": code, "seconds": seconds}), flush=True)
    os._exit(0)


def timed(command, cwd=ROOT, env=None):
    """``(seconds, stdout)`` of ``command`` run to its end; exits with its last line of stderr if it fails."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start, result.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each kind (default: 3)")
    parser.add_argument("--num-epochs", type=int, default=5, help="epochs a run trains (default: 5, the source's)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)

    env_note = os.environ.get("ONEDNN_MAX_CPU_ISA")
    whole, phases = collections.defaultdict(list), collections.defaultdict(lambda: collections.defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        kinds = [(engine, how) for engine in ENGINES for how in ("as users run it", "phases timed")]
        for round_idx in range(args.rounds):
            random.shuffle(kinds)
            for engine, how in kinds:
                out = os.path.join(tmp, f"{engine}-{how[0]}-{round_idx}")
                argv = ["--seed", "0", "--num-epochs", str(args.num_epochs), "--engine", engine, "--out", out]
                if how == "as users run it":
                    whole[engine].append(timed([sys.executable, "-m", "echo_rnn_tf1", *argv])[0])
                    continue
                wall, stdout = timed([sys.executable, __file__, "--child", *argv])
                report = json.loads(stdout.splitlines()[-1])["seconds"]
                report["interpreter start and exit, package import"] = wall - report["in process"]
                report["the rest"] = report["in process"] - sum(report.get(p, 0.0) for p in PHASES[1:-1])
                for phase in PHASES:
                    phases[engine][phase].append(report.get(phase, 0.0))
                phases[engine]["whole"].append(wall)

    median = {engine: {p: statistics.median(v) for p, v in phases[engine].items()} for engine in ENGINES}
    print(f"python -m echo_rnn_tf1 --seed 0 --num-epochs {args.num_epochs}: seconds, median of {args.rounds} rounds"
          + (f" (ONEDNN_MAX_CPU_ISA={env_note})" if env_note else ""))
    print(f"{'phase':46s} {'tf1':>7s} {'tf2':>7s}")
    for phase in PHASES:
        print(f"{phase:46s} " + " ".join(f"{median[e][phase]:7.2f}" for e in ENGINES))
    print(f"{'whole process, phases timed':46s} " + " ".join(f"{median[e]['whole']:7.2f}" for e in ENGINES))
    print(f"{'whole process, as users run it':46s} " + " ".join(f"{statistics.median(whole[e]):7.2f}" for e in ENGINES))
    print(f"{'outside the training loop':46s} " + " ".join(
        f"{median[e]['whole'] - median[e][TRAINING]:7.2f}" for e in ENGINES))
    print(f"{'  of which beyond TensorFlow import + 1 s':46s} " + " ".join(
        f"{median[e]['whole'] - median[e][TRAINING] - median[e]['TensorFlow import'] - 1:7.2f}" for e in ENGINES))


if __name__ == "__main__":
    main()
