"""What a process started beside a run costs the run: TensorFlow's import timed while 0, 1 or 2 other processes
import what the pictures need (matplotlib's figures and its Agg canvas), or spin on the CPU.

This is why a run starts one second process for its pictures, not one per picture (``painter.py``): on the
2-core machine of docs/speed.md, in two runs of this script, one import beside TensorFlow's slowed it by 0.05 and
0.14 s, two by 0.17 and 0.38 s, which ate the 0.13 s that drawing the two pictures at once saved. The neighbours
start with the timed import; the three cases take turns in a new random order each round. Medians are printed.

    python benchmarks/import_contention.py [--rounds 6]
"""
import argparse
import random
import statistics
import subprocess
import sys

TIMED = ("import os, time; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; os.environ['TF_USE_LEGACY_KERAS'] = '1'; "
         "start = time.perf_counter(); import tensorflow; print(time.perf_counter() - start); os._exit(0)")
NEIGHBOURS = {
    "matplotlib import": "import matplotlib.backends.backend_agg, matplotlib.collections, matplotlib.figure",
    "busy loop, 3 s": "import time\nstart = time.time()\nwhile time.time() - start < 3: pass",
}


def tensorflow_import_beside(neighbour, count):
    """Seconds TensorFlow's import takes in a fresh process while ``count`` processes run ``neighbour``."""
    others = [subprocess.Popen([sys.executable, "-c", neighbour]) for _ in range(count)]
    try:
        out = subprocess.run([sys.executable, "-c", TIMED], capture_output=True, text=True, check=True).stdout
    finally:
        for process in others:
            process.wait()
    return float(out.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    print(f"TensorFlow's import, seconds, median of {args.rounds} rounds, beside 0, 1 or 2 processes that run:")
    print(f"{'':<20}" + "".join(f"{count:>8}" for count in (0, 1, 2)))
    for name, neighbour in NEIGHBOURS.items():
        seconds = {count: [] for count in (0, 1, 2)}
        for _ in range(args.rounds):
            for count in random.sample(list(seconds), len(seconds)):
                seconds[count].append(tensorflow_import_beside(neighbour, count))
        print(f"{name:<20}" + "".join(f"{statistics.median(seconds[count]):>8.2f}" for count in seconds))


if __name__ == "__main__":
    main()
