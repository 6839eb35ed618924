"""The README's speed table: where users wait, measured side by side in one run of this script.

- the training loop, 5 epochs of the defaults: the source's own (``sess.run`` with a ``feed_dict``, the source's
  session) against the package's (``benchmarks/loop_overhead.py``'s processes);
- a whole run, ``python -m echo_rnn_tf1 --seed 0`` with each engine, timed from outside, with its training as
  ``run.json`` records it;
- the seed envelope, ``envelope --seeds N`` with each engine, timed from outside.

Kinds take turns within each round, in random order; medians of the rounds are printed (the envelopes, the
longest, run ``--envelope-rounds`` times).

    python benchmarks/headline.py [--rounds 3] [--envelope-seeds 100] [--envelope-rounds 1]
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

from run_phases import timed  # (this folder is on the path of a script run from it)

HERE = os.path.dirname(os.path.abspath(__file__))


def loop_seconds(variant):
    """Seconds of 5 epochs of the training loop (after one epoch of warm-up) in a process of its own."""
    _, stdout = timed([sys.executable, os.path.join(HERE, "loop_overhead.py"), "--child", variant, "--epochs", "5"])
    return sum(json.loads(stdout.splitlines()[-1])["seconds"])


def run_seconds(tmp, engine):
    """``(whole process, training loop)`` seconds of a default run of seed 0."""
    out = os.path.join(tmp, f"run-{engine}-{time.monotonic_ns()}")
    whole, _ = timed([sys.executable, "-m", "echo_rnn_tf1", "--seed", "0", "--engine", engine, "--out", out])
    with open(os.path.join(out, "run.json")) as f:
        return whole, json.load(f)["train_seconds"]


def envelope_seconds(tmp, engine, seeds):
    out = os.path.join(tmp, f"envelope-{engine}-{time.monotonic_ns()}")
    return timed([sys.executable, "-m", "echo_rnn_tf1", "envelope", "--engine", engine, "--seeds", str(seeds),
                  "--out", out])[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the loops and the runs (default: 3)")
    parser.add_argument("--envelope-seeds", type=int, default=100, help="seeds of each envelope (default: 100)")
    parser.add_argument("--envelope-rounds", type=int, default=1, help="rounds of the envelopes (default: 1)")
    args = parser.parse_args()

    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {
            "loop: the source's": lambda: loop_seconds("source"),
            "loop: the package's": lambda: loop_seconds("package"),
            "run: tf1": lambda: run_seconds(tmp, "tf1"),
            "run: tf2": lambda: run_seconds(tmp, "tf2"),
        }
        envelopes = {f"envelope: {engine}": (lambda engine=engine: envelope_seconds(tmp, engine, args.envelope_seeds))
                     for engine in ("tf1", "tf2")}
        for round_idx in range(max(args.rounds, args.envelope_rounds)):
            order = [k for k in kinds if round_idx < args.rounds]
            order += [k for k in envelopes if round_idx < args.envelope_rounds]
            random.shuffle(order)
            for name in order:
                times.setdefault(name, []).append({**kinds, **envelopes}[name]())

    def median(name, part=None):
        values = times[name] if part is None else [t[part] for t in times[name]]
        return statistics.median(values)

    source, package = median("loop: the source's"), median("loop: the package's")
    tf1, tf1_loop = median("run: tf1", 0), median("run: tf1", 1)
    tf2, tf2_loop = median("run: tf2", 0), median("run: tf2", 1)
    faithful, batched = median("envelope: tf1"), median("envelope: tf2")
    n = args.envelope_seeds
    print(f"Medians of {args.rounds} rounds ({args.envelope_rounds} for the envelopes), {os.cpu_count()} cores:\n")
    print("| what | seconds | |")
    print("|---|---:|---|")
    print(f"| the source's own training loop, 5 epochs | {source:.1f} | |")
    print(f"| the package's training loop, the same bits | {package:.1f} | {faster(source / package)} |")
    print(f"| `python -m echo_rnn_tf1 --seed 0`, whole process | {tf1:.1f} | {tf1 - tf1_loop:.1f} s outside "
          f"the training loop |")
    print(f"| `python -m echo_rnn_tf1 --seed 0 --engine tf2`, whole process | {tf2:.1f} | {tf2 - tf2_loop:.1f} s "
          f"outside the training loop |")
    print(f"| `envelope --seeds {n}` (faithful, one process per core) | {faithful:.0f} | |")
    print(f"| `envelope --engine tf2 --seeds {n}` | {batched:.0f} | {faster(faithful / batched)} |")


def faster(ratio):
    """A ratio of times in words: ``1.27x faster``, or ``1.28x slower`` (a noisy round can make it so)."""
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


if __name__ == "__main__":
    main()
