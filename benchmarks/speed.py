"""Per-step speed of the ways to run the Echo-RNN's training step, measured side by side in one process.

    python benchmarks/speed.py [--steps 300] [--rounds 5] [--no-sweep]

First the source's configuration: the default graph (dynamic_rnn), --unroll (static_rnn), the TF2 engine
(an epoch per XLA-compiled call, timed per epoch and divided by its steps), an empty ``sess.run`` (the floor
a session call costs), and the same training step in numpy (forward, BPTT, Adagrad). Then whole default
runs, 5 epochs, of the faithful loop and of the TF2 engine with its compilation. Then a sweep of state_size, truncated_backprop_length and batch_size for both graphs. Variants take turns
in rounds, and each reports its median, so machine noise falls on all of them alike.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # (the numpy reference the tests check)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy_ref  # noqa: E402
from echo_rnn_tf1 import tf2  # noqa: E402
from echo_rnn_tf1.config import Config  # noqa: E402
from echo_rnn_tf1.tfcompat import import_quiet_tensorflow  # noqa: E402
from echo_rnn_tf1.train import prepare, train  # noqa: E402


def graph_stepper(tf, config, unroll):
    """A function running ``steps`` training steps of the graph, the source's way; and its session."""
    graph, model, inputs_value, targets_value = prepare(config, seed=0, unroll=unroll)
    with graph.as_default():
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=graph)
    sess.run(init)
    length = config.truncated_backprop_length

    def run(steps):
        for batch_idx in range(steps):
            start = (batch_idx % config.num_batches) * length
            sess.run([model.total_loss, model.train_step],
                     {model.batchX_placeholder: inputs_value[:, start:start + length],
                      model.batchY_placeholder: targets_value[:, start:start + length]})
    return run, sess


def empty_stepper(tf):
    graph = tf.Graph()
    with graph.as_default():
        noop = tf.no_op()
    sess = tf.compat.v1.Session(graph=graph)
    return (lambda steps: [sess.run(noop) for _ in range(steps)]), sess


def numpy_stepper(config):
    rng = np.random.default_rng(0)
    s, c, length = config.state_size, config.num_classes, config.truncated_backprop_length
    params = {numpy_ref.KERNEL: rng.uniform(-0.5, 0.5, (c + s, s)), numpy_ref.BIAS: np.zeros(s),
              "W2": rng.random((s, c)), "b2": np.zeros((1, c))}
    accumulators = numpy_ref.adagrad_accumulators(params)
    batchX = rng.integers(0, c, (config.batch_size, length))
    batchY = rng.integers(0, c, (config.batch_size, length))
    return lambda steps: [numpy_ref.train_step(params, accumulators, batchX, batchY, c, config.learning_rate)
                          for _ in range(steps)]


def tf2_stepper(config):
    """Runs ``steps`` steps of the TF2 engine as whole epochs (``steps`` a multiple of num_batches, rounded up)."""
    engine, windowsX, windowsY = tf2.start(config, seed=0)
    engine.compile(windowsX, windowsY)
    return lambda steps: [engine.train_epoch(windowsX, windowsY) for _ in range(-(-steps // config.num_batches))]


def whole_runs(rounds):
    """Seconds for a default run's training, 5 epochs: the faithful loop, and the TF2 engine including compilation."""
    config = Config()
    times = {"faithful (tf1), whole run": [], "tf2, whole run with compilation": []}
    for _ in range(rounds):
        start = time.perf_counter()
        train(config, 0, log=lambda line: None)
        times["faithful (tf1), whole run"].append(time.perf_counter() - start)
        tf2.epoch_program.cache_clear()  # (compiled once per configuration in a process: compile it again)
        start = time.perf_counter()
        tf2.train(config, 0, log=lambda line: None)
        times["tf2, whole run with compilation"].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def time_turns(variants, steps, rounds):
    """Median seconds per step of each variant, the variants taking turns ``rounds`` times after a warm-up."""
    times = {name: [] for name in variants}
    for run in variants.values():
        run(max(10, steps // 10))
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run(steps)
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(ts) for name, ts in times.items()}


def print_table(title, per_step, baseline):
    print(title)
    print(f"  {'variant':34s} {'us/step':>9s} {'steps/s':>9s} {'speed vs ' + baseline:>18s}")
    for name, seconds in per_step.items():
        print(f"  {name:34s} {seconds * 1e6:9.0f} {1 / seconds:9.0f} {per_step[baseline] / seconds:17.2f}x")
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=5, help="timings per variant, taking turns")
    parser.add_argument("--no-sweep", action="store_true", help="only the source's configuration")
    args = parser.parse_args()
    tf = import_quiet_tensorflow()
    print(f"TensorFlow {tf.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} cores, {platform.machine()}\n")

    config = Config()
    sessions = []
    variants = {}
    for name, unroll in (("default (dynamic_rnn)", False), ("--unroll (static_rnn)", True)):
        variants[name], sess = graph_stepper(tf, config, unroll)
        sessions.append(sess)
    variants["tf2 engine (steady state)"] = tf2_stepper(config)
    variants["empty sess.run"], sess = empty_stepper(tf)
    sessions.append(sess)
    variants["numpy (forward + BPTT + Adagrad)"] = numpy_stepper(config)
    print_table("The source's configuration (state_size 4, truncated_backprop_length 10, batch_size 5):",
                time_turns(variants, max(args.steps, config.num_batches), args.rounds), "default (dynamic_rnn)")

    runs = whole_runs(rounds=3)
    print("Whole default runs (5 epochs; graph building, seeding and data included for both), median of 3:")
    for name, seconds in runs.items():
        print(f"  {name:34s} {seconds:8.2f} s {runs['faithful (tf1), whole run'] / seconds:8.2f}x")
    print()

    if not args.no_sweep:
        print("Sweep: steps/s of --unroll over the default graph")
        print(f"  {'state_size':>10s} {'length':>7s} {'batch':>6s} {'default us/step':>16s} {'unroll us/step':>15s} {'ratio':>7s}")
        for state_size in (4, 64, 256):
            for length in (10, 100):
                for batch_size in (5, 128):
                    swept = Config(state_size=state_size, truncated_backprop_length=length, batch_size=batch_size,
                                   total_series_length=100 * batch_size * length)
                    pair = {}
                    for name, unroll in (("default", False), ("unroll", True)):
                        pair[name], sess = graph_stepper(tf, swept, unroll)
                        sessions.append(sess)
                    t = time_turns(pair, max(20, args.steps // 5), args.rounds)
                    print(f"  {state_size:10d} {length:7d} {batch_size:6d} {t['default'] * 1e6:16.0f} "
                          f"{t['unroll'] * 1e6:15.0f} {t['default'] / t['unroll']:6.2f}x", flush=True)
                    for sess in sessions[-2:]:
                        sess.close()
    for sess in sessions:
        sess.close()


if __name__ == "__main__":
    main()
