"""How far apart the same seed lands on different machines, and the three ways of training on each.

For seeds 0-9 (one default epoch) and for the notebook's seed 0 (five epochs), on every machine this one can
stand for (oneDNN's instruction set capped from SSE4.1 up to this CPU's own, and the custom operations off):
the faithful graph (dynamic_rnn), --unroll (static_rnn) and the tf2 engine. It prints, per seed:
- across machines, the faithful graph: the largest relative difference at any step, and at the last step;
- on each machine, unroll and tf2 against the faithful graph: the same two numbers, the largest over machines;
- the ratio of the largest to the smallest mean loss of the epoch's last 100 steps, over machines and engines.
The tests' tolerances for anything committed from one machine come from here (docs/cross_machine.txt).

    python scripts/cross_machine.py [--save FILE.npz]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from echo_rnn_tf1 import machine  # noqa: E402

SEEDS = tuple(range(10))
ENGINES = ("faithful", "unroll", "tf2")


def settings():
    _, flags = machine.cpu_info()
    *lower, own = machine.emulable_levels(flags)
    found = {f"ISA {level}": {"ONEDNN_MAX_CPU_ISA": level} for level in lower}
    found[f"ISA {own} (own)"] = {}
    found["custom ops off"] = {"TF_ENABLE_ONEDNN_OPTS": "0"}
    return found


def worker():
    from echo_rnn_tf1 import tf2
    from echo_rnn_tf1.config import Config
    from echo_rnn_tf1.tfcompat import import_quiet_tensorflow
    from echo_rnn_tf1.train import train

    import_quiet_tensorflow()
    quiet = dict(log=lambda line: None)
    epoch = Config(num_epochs=1)
    out = {f"{seed}/{engine}": run for seed in SEEDS for engine, run in (
        ("faithful", train(epoch, seed, **quiet)), ("unroll", train(epoch, seed, unroll=True, **quiet)),
        ("tf2", tf2.train(epoch, seed, **quiet)))}
    out["notebook/faithful"] = train(Config(), 0, **quiet)
    print(json.dumps({key: np.asarray(losses, dtype=np.float32).tolist() for key, losses in out.items()}))


def relative(a, b):
    return np.abs(a.astype(np.float64) - b) / np.abs(b.astype(np.float64))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save", help="keep every loss in this .npz")
    args = parser.parse_args()
    if args.worker:
        return worker()

    from echo_rnn_tf1.machine import versions

    print(f"{time.strftime('%Y-%m-%d')}, {machine.cpu_info()[0]}, {os.cpu_count()} cores; "
          + ", ".join(f"{k} {v}" for k, v in versions().items()))
    results = {}
    for name, env_update in settings().items():
        env = machine.environ_without_onednn_settings(**env_update, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True,
                              check=True)
        results[name] = {key: np.array(v, dtype=np.float32) for key, v in json.loads(done.stdout).items()}
        print(f"ran {name}", flush=True)
    names = list(results)
    if args.save:
        np.savez(args.save, **{f"{name}|{key}": v for name in names for key, v in results[name].items()})

    print(f"\nmachines: {', '.join(names)}")
    print("seed | faithful across machines: any step, last | unroll vs faithful: any, last | "
          "tf2 vs faithful: any, last | last-100 mean, largest/smallest")
    for seed in SEEDS:
        runs = {name: {e: results[name][f"{seed}/{e}"] for e in ENGINES} for name in names}
        base = runs[names[-2]]["faithful"]  # this CPU's own level
        across = max(relative(runs[n]["faithful"], base).max() for n in names)
        across_last = max(relative(runs[n]["faithful"][-1:], base[-1:]).max() for n in names)
        cells = [f"{across:9.2g} {across_last:9.2g}"]
        for engine in ("unroll", "tf2"):
            any_step = max(relative(runs[n][engine], runs[n]["faithful"]).max() for n in names)
            last = max(relative(runs[n][engine][-1:], runs[n]["faithful"][-1:]).max() for n in names)
            cells.append(f"{any_step:9.2g} {last:9.2g}")
        tails = [runs[n][e][-100:].mean() for n in names for e in ENGINES]
        cells.append(f"{max(tails) / min(tails):6.3f}")
        print(f"{seed:4d} | " + " | ".join(cells))
    from echo_rnn_tf1.logs import logged_points

    notebook = {n: np.array([p.loss for p in logged_points(results[n]["notebook/faithful"], 1000)]) for n in names}
    base = notebook[names[-2]]
    print("\nthe notebook's seed 0, five epochs, its 50 logged losses against this CPU's own level:")
    for n in names:
        print(f"  {n:<28} largest relative difference {relative(notebook[n], base).max():.3g}")


if __name__ == "__main__":
    main()
