"""Whole runs of this checkout against those of an earlier commit: ``python -m echo_rnn_tf1 --seed 0`` with each
engine, timed from outside, the two checkouts taking turns in a new random order each round; medians and ratios.

The earlier commit is checked out in a temporary git worktree (removed at the end); each run imports the package
from its own checkout (``PYTHONPATH``), with the same Python and packages.

    python benchmarks/against_commit.py COMMIT [--rounds 5] [--num-epochs 5]
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

from run_phases import timed  # (this folder is on the path of a script run from it)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = ("tf1", "tf2")


def whole_run(checkout, engine, num_epochs, out):
    command = [sys.executable, "-m", "echo_rnn_tf1", "--seed", "0", "--num-epochs", str(num_epochs),
               "--engine", engine, "--out", out]
    env = dict(os.environ, PYTHONPATH=checkout)
    seconds, _ = timed(command, cwd=checkout, env=env)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the earlier commit (anything git rev-parse takes)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each kind (default: 5)")
    parser.add_argument("--num-epochs", type=int, default=5, help="epochs a run trains (default: 5, the source's)")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.commit], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode != 0:
        sys.exit(f"against_commit.py: {args.commit}: {commit.stderr.strip()}")
    with tempfile.TemporaryDirectory() as tmp:
        earlier = os.path.join(tmp, "earlier")
        subprocess.run(["git", "worktree", "add", "--detach", "-q", earlier, args.commit], cwd=ROOT, check=True)
        try:
            checkouts = {commit.stdout.strip(): earlier, "this checkout": ROOT}
            seconds = {(name, engine): [] for name in checkouts for engine in ENGINES}
            for round_idx in range(args.rounds):
                kinds = list(seconds)
                random.shuffle(kinds)
                for name, engine in kinds:
                    out = os.path.join(tmp, f"run-{list(checkouts).index(name)}-{engine}-{round_idx}")
                    seconds[name, engine].append(whole_run(checkouts[name], engine, args.num_epochs, out))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", earlier], cwd=ROOT)
    (old, _), (new, _) = checkouts.items()
    print(f"python -m echo_rnn_tf1 --seed 0 --num-epochs {args.num_epochs}, whole process: seconds, median of "
          f"{args.rounds} rounds ({os.cpu_count()} cores)")
    print(f"{'engine':8s} {old:>14s} {new:>14s} {'ratio':>7s}")
    for engine in ENGINES:
        before, now = (statistics.median(seconds[name, engine]) for name in (old, new))
        print(f"{engine:8s} {before:14.2f} {now:14.2f} {now / before:7.2f}")


if __name__ == "__main__":
    main()
