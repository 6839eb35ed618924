"""The envelope's two engines side by side: the same seeds through ``envelope --engine tf1`` and ``--engine tf2``.

    python benchmarks/envelope_engines.py [--seeds 40] [--first-seed 0] [--scale 100 1000]

Runs both whole commands on the same seeds, each in a process of its own, one after the other, and prints: the
time and peak memory of each; each seed's verdict (compare's MATCH / NO MATCH against 2017) by both, and where they
differ; the band's 10th percentile, median and 90th percentile at the 2017 run's logged points by both, and the
largest ratio between the two; each seed's last-epoch mean loss by both, and the largest ratio. ``--scale``
then times the tf2 engine alone at larger seed counts. The output kept in docs/envelope_engines.txt comes from here.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from echo_rnn_tf1.config import Config  # noqa: E402
from echo_rnn_tf1.envelope import band  # noqa: E402
from echo_rnn_tf1.logs import parse_log, read_reference  # noqa: E402
from echo_rnn_tf1.machine import describe, machine_line  # noqa: E402
from echo_rnn_tf1.machine import versions  # noqa: E402


def run_envelope(out, seeds, first_seed, engine, jobs=None):
    """Run the whole command; return ``(seconds, its peak RSS in bytes, stdout)``."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "echo_rnn_tf1", "envelope", "--engine", engine, "--seeds",
                                    str(seeds), "--first-seed", str(first_seed), "--out", out,
                                    *(["--jobs", str(jobs)] if jobs else [])],
                                   env=env, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this process's own rusage (not its workers')
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        if process.returncode != 0:
            sys.exit(f"envelope --engine {engine} failed ({process.returncode}): {stderr.read().strip()}")
        return seconds, usage.ru_maxrss * 1024, stdout.read()


def verdicts(out):
    rows = np.loadtxt(os.path.join(out, "seeds.csv"), delimiter=",", skiprows=1, ndmin=2)
    return rows[:, 0].astype(int), rows[:, 1].astype(bool), rows[:, 3]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--scale", type=int, nargs="*", default=[100, 1000],
                        help="seed counts to time the tf2 engine alone at")
    args = parser.parse_args()
    config = Config()
    reference = parse_log(read_reference(), "2017 log")
    found = versions()
    print(time.strftime("%Y-%m-%d"), f"TensorFlow {found['tensorflow']}, numpy {found['numpy']}, "
                                      f"Python {found['python']}, {platform.machine()}")
    print(f"machine: {machine_line(describe())}; load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for engine in ("tf1", "tf2"):
            out = os.path.join(tmp, engine)
            seconds, rss, _ = run_envelope(out, args.seeds, args.first_seed, engine)
            results[engine] = (seconds, rss, np.load(os.path.join(out, "losses.npy")), *verdicts(out))
        seeds = results["tf1"][3]
        print(f"\n{args.seeds} seeds ({seeds[0]}-{seeds[-1]}), whole commands, one after the other:")
        print(f"  {'engine':<8}{'seconds':>9}{'peak RSS':>12}")
        for engine in ("tf1", "tf2"):
            seconds, rss = results[engine][:2]
            note = " (the parent; each worker process peaks at about 635 MB)" if engine == "tf1" else ""
            print(f"  {engine:<8}{seconds:>9.1f}{rss / 2**20:>9.0f} MiB{note}")
        print(f"  tf2 takes {results['tf2'][0] / results['tf1'][0]:.3f} of tf1's time "
              f"({results['tf1'][0] / results['tf2'][0]:.1f}x faster)")

        match1, match2 = results["tf1"][4], results["tf2"][4]
        differ = [int(s) for s, a, b in zip(seeds, match1, match2) if a != b]
        print(f"\nVerdicts against 2017: tf1 {match1.sum()} of {len(seeds)} MATCH, tf2 {match2.sum()}; "
              f"the same for {len(seeds) - len(differ)} of {len(seeds)} seeds"
              + (f" (differ: seeds {differ})" if differ else ""))
        no_match = [int(s) for s, m in zip(seeds, match1) if not m]
        print(f"  NO MATCH by tf1: seeds {no_match}; by tf2: {[int(s) for s, m in zip(seeds, match2) if not m]}")

        last1, last2 = results["tf1"][5], results["tf2"][5]
        ratio = np.maximum(last1, last2) / np.minimum(last1, last2)
        worst = int(np.argmax(ratio))
        print(f"Each seed's last-epoch mean loss, tf2 against tf1: median ratio {np.median(ratio):.4f}, largest "
              f"{ratio[worst]:.3f} (seed {seeds[worst]}: {last1[worst]:.3g} and {last2[worst]:.3g}); "
              f"{(ratio < 1.01).sum()} of {len(seeds)} within 1 %")

        at = [p.epoch * config.num_batches + p.step for p in reference]
        bands = {engine: np.array(band(results[engine][2]))[1:4][:, at] for engine in ("tf1", "tf2")}  # p10, median, p90
        print(f"\nThe band at the 2017 run's logged points (p10 / median / p90 over the {len(seeds)} seeds):")
        print(f"  {'epoch':>5} {'step':>5} {'2017':>10}   {'tf1 p10':>9} {'tf2 p10':>9}   {'tf1 med':>9} "
              f"{'tf2 med':>9}   {'tf1 p90':>9} {'tf2 p90':>9}")
        for k, p in enumerate(reference):
            cells = "   ".join(f"{bands['tf1'][q, k]:>9.3g} {bands['tf2'][q, k]:>9.3g}" for q in range(3))
            print(f"  {p.epoch:>5} {p.step:>5} {p.loss:>10.4g}   {cells}")
        ratios = np.maximum(bands["tf1"], bands["tf2"]) / np.minimum(bands["tf1"], bands["tf2"])
        q, k = np.unravel_index(np.argmax(ratios), ratios.shape)
        name = ("p10", "median", "p90")[q]
        print(f"Largest ratio between the engines' band percentiles: {ratios[q, k]:.3f} ({name} at epoch "
              f"{reference[k].epoch} step {reference[k].step}); median ratio {np.median(ratios):.4f}; the largest "
              f"of the p10s {ratios[0].max():.3f}, of the medians {ratios[1].max():.3f}, of the p90s {ratios[2].max():.3f}; "
              f"{(ratios < 1.01).sum()} of {ratios.size} within 1 %")
        full1, full2 = results["tf1"][2], results["tf2"][2]
        rel = np.abs(full2 - full1) / full1
        print(f"Every step of every seed: the median relative difference {np.median(rel):.2g}, "
              f"{(rel.max(axis=1) < 1e-3).sum()} of {len(seeds)} seeds within 0.1 % at every step")

    if args.scale:
        print("\nThe tf2 engine alone, whole commands (seeds from 0), --jobs 1 and 2 in turn:")
        print(f"  {'seeds':>6}{'jobs':>5}{'seconds':>9}{'peak RSS':>12}")
        with tempfile.TemporaryDirectory() as tmp:
            for count in args.scale:
                for jobs in (1, 2):
                    seconds, rss, stdout = run_envelope(os.path.join(tmp, f"{count}-{jobs}"), count, 0, "tf2", jobs)
                    how = stdout.splitlines()[0].split(": ", 1)[1]
                    print(f"  {count:>6}{jobs:>5}{seconds:>9.1f}{rss / 2**20:>9.0f} MiB   {how}", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
