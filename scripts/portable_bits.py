"""Which settings make a seeded run's bits the same on every CPU this machine can stand for?

Runs seeds of the faithful graph, one default epoch each, in a fresh process per setting and prints one digest
per setting: seeds 0 and 5 (seed 0 is stable, seed 5 escapes the no-memory plateau during the epoch, where
trajectories part) for every candidate, and seeds 0-9 for ``--portable``. A "machine" is emulated by capping oneDNN's instruction set (ONEDNN_MAX_CPU_ISA, from SSE4.1
up to this CPU's own level), by TensorFlow's thread counts, and by running on one core (taskset). A "candidate"
is a set of environment variables applied on top (as ``--portable`` applies its own). A candidate is portable
here when every emulated machine gives it the same digest.

    python scripts/portable_bits.py                      # the matrix (about 1 min per 10 settings)
    python scripts/portable_bits.py --ship               # also write the package's shipped bits (portable_*)

Its output is kept in docs/portable_bits.txt.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from echo_rnn_tf1 import machine  # noqa: E402
from echo_rnn_tf1.portable import SEEDS, digest  # noqa: E402

CANDIDATES = {  # name: (environment, seeds); WORKER_EXACT: the update of --portable (model.exact_adagrad)
    "none (the defaults)": ({}, (0, 5)),
    "TF_ENABLE_ONEDNN_OPTS=0": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, (0, 5)),
    "ONEDNN_MAX_CPU_ISA=SSE41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, (0, 5)),
    "the portable settings, the source's update": (machine.PORTABLE_ENV, (0, 5)),
    "--portable": ({**machine.PORTABLE_ENV, "WORKER_EXACT": "1"}, SEEDS),
}


def emulated_machines():
    """``(name, env, command prefix)`` for each machine this one can stand for."""
    _, flags = machine.cpu_info()
    *lower, own = machine.emulable_levels(flags)
    found = [(f"ISA {level}", {"ONEDNN_MAX_CPU_ISA": level}, []) for level in lower]
    found.append((f"ISA {own} (this CPU's own)", {}, []))
    found.append((f"ISA {own}, 1 intra/inter-op thread", {"WORKER_THREADS": "1"}, []))
    if shutil.which("taskset") and os.cpu_count() > 1:
        found.append((f"ISA {own}, one core (taskset -c 0)", {}, ["taskset", "-c", "0"]))
    return found


def worker():
    """In the child: train the seeds under the environment given, print ``{seed: losses}`` as JSON."""
    from echo_rnn_tf1.tfcompat import import_quiet_tensorflow

    tf = import_quiet_tensorflow()
    threads = int(os.environ.get("WORKER_THREADS", "0"))
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from echo_rnn_tf1.portable import train_seeds

    seeds = [int(seed) for seed in os.environ["WORKER_SEEDS"].split(",")]
    exact = os.environ.get("WORKER_EXACT") == "1"
    print(json.dumps({seed: losses.tolist() for seed, losses in train_seeds(seeds, portable=exact).items()}))


def run(env_update, prefix, seeds):
    env = machine.environ_without_onednn_settings(**env_update, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3",
                                                  WORKER_SEEDS=",".join(map(str, seeds)))
    result = subprocess.run([*prefix, sys.executable, __file__, "--worker"], env=env, capture_output=True,
                            text=True, check=True)
    import numpy as np

    return {int(seed): np.array(losses, dtype=np.float32) for seed, losses in json.loads(result.stdout).items()}


def ship(losses_by_seed):
    from echo_rnn_tf1.portable import INFO_NAME, LOSSES_NAME, write_csv_text
    from echo_rnn_tf1.machine import versions

    package = os.path.join(ROOT, "echo_rnn_tf1")
    with open(os.path.join(package, LOSSES_NAME), "w") as f:
        f.write(write_csv_text(losses_by_seed))
    info = {"settings": machine.PORTABLE_ENV, "seeds": list(SEEDS), "config": "the defaults, num_epochs=1",
            "digests": {str(seed): digest(losses) for seed, losses in sorted(losses_by_seed.items())},
            "versions": versions(), "machine": {**machine.describe(), **machine.PORTABLE_ENV,
                                                "onednn_isa": "SSE41"},
            "made": time.strftime("%Y-%m-%d"),
            # where the same bits were seen again: edited by hand as machines reproduce them (docs/machines.md)
            "reproduced_on": [f"{machine.cpu_info()[0]} (where they were made)"]}
    with open(os.path.join(package, INFO_NAME), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ship", action="store_true", help="write the package's shipped bits from --portable")
    args = parser.parse_args()
    if args.worker:
        return worker()

    from echo_rnn_tf1.machine import versions

    print(f"{time.strftime('%Y-%m-%d')}, {machine.cpu_info()[0]}, {os.cpu_count()} cores, {platform.platform()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print("one default epoch a seed; digest: SHA-256 of the seeds' float32 losses, one after the other\n")
    machines = emulated_machines()
    verdicts = []
    for name, (candidate, seeds) in CANDIDATES.items():
        print(f"candidate: {name}, seeds {', '.join(map(str, seeds))}")
        digests = {}
        for machine_name, env, prefix in machines:
            losses = run({**env, **candidate}, prefix, seeds)
            digests[machine_name] = digest(np.concatenate([losses[seed] for seed in seeds]))
            seed0 = losses[0]
            print(f"  {machine_name:<44} {digests[machine_name][:16]}  seed 0 step 100: {seed0[100]!s:<12} "
                  f"seed 5 last: {losses[5][-1]!s}")
            if args.ship and name == "--portable" and not env and not prefix:
                ship(losses)
        distinct = len(set(digests.values()))
        verdicts.append(f"{name}: {'PORTABLE' if distinct == 1 else f'{distinct} different results'} "
                        f"over {len(machines)} emulated machines")
    print("\n" + "\n".join(verdicts))


if __name__ == "__main__":
    main()
