"""Is the package's training loop faster than the source's own, computing the same bits?

Each variant runs in a process of its own (TensorFlow sizes its thread pools at a process's first session, so
two session settings cannot be compared in one process); the processes take turns, in a new random order each
round, so that machine noise falls on all of them alike. A process trains one epoch of the defaults from seed
0's start (its losses' digest must be the same in every variant), then times ``--epochs`` more. Each round gives
each variant's speed over the source's in that round; the median of those ratios is reported.

    python benchmarks/loop_overhead.py [--rounds 5] [--epochs 3]

Variants:
- source:            the source's loop, pasted inline (``sess.run`` with a ``feed_dict`` per batch, print every
                     100 steps to a null stream), in the source's ``tf.Session()``;
- source + session:  the same loop in ``train.session`` (every op in the calling thread);
- package loop:      ``run_training`` (``Session.make_callable``) in the source's ``tf.Session()``;
- package:           ``run_training`` in ``train.session``, as ``train.train`` and the command line run it;
- cli:               the package with the command line's recorder: train.log and losses.csv written line by line.
"""
import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

VARIANTS = ("source", "source + session", "package loop", "package", "cli")


def source_loop(sess, model, inputs_value, targets_value, config):
    # The source's 训练模型 cell, one epoch, with its names.
    batchX_placeholder, batchY_placeholder = model.batchX_placeholder, model.batchY_placeholder
    total_loss, train_step = model.total_loss, model.train_step
    truncated_backprop_length = config.truncated_backprop_length
    loss_list = []
    print("New data, epoch", 0)
    for batch_idx in range(config.num_batches):
        start_idx = batch_idx * truncated_backprop_length
        end_idx = start_idx + truncated_backprop_length

        batchX = inputs_value[:, start_idx:end_idx]
        batchY = targets_value[:, start_idx:end_idx]

        _total_loss, _train_step = sess.run(
            [total_loss, train_step],
            feed_dict={
                batchX_placeholder: batchX,
                batchY_placeholder: batchY,
            })

        loss_list.append(_total_loss)

        if batch_idx % 100 == 0:
            print("Step", batch_idx, "Batch loss", _total_loss)
    return loss_list


def child(variant, epochs):
    """Train one epoch, then time ``epochs`` more, in this process; print JSON: the first epoch's digest, seconds."""
    from echo_rnn_tf1.config import Config
    from echo_rnn_tf1.folder import RunFolder
    from echo_rnn_tf1.tfcompat import import_quiet_tensorflow
    from echo_rnn_tf1.train import prepare, run_training, session

    tf = import_quiet_tensorflow()
    config = Config(num_epochs=1)
    graph, model, inputs_value, targets_value = prepare(config, seed=0)
    sess = session(graph) if variant in ("source + session", "package", "cli") else tf.compat.v1.Session(graph=graph)
    null = io.StringIO()
    with sess, tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(null):
        sess.run(tf.compat.v1.global_variables_initializer())
        writer = RunFolder(os.path.join(tmp, "run"))
        if variant.startswith("source"):
            def epoch():
                return source_loop(sess, model, inputs_value, targets_value, config)
        else:
            def epoch():
                return run_training(sess, model, inputs_value, targets_value, config, log=writer.log if variant == "cli"
                                    else print, on_step=writer.record if variant == "cli" else None)
        digest = hashlib.sha256(b"".join(loss.tobytes() for loss in epoch())).hexdigest()
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            epoch()
            seconds.append(time.perf_counter() - start)
        writer.close()
    print(json.dumps({"digest": digest, "seconds": seconds}), file=sys.__stdout__)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="processes per variant (default: 5)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per process (default: 3)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.epochs)

    times, digests = {name: [] for name in VARIANTS}, {}
    order = list(VARIANTS)
    for _ in range(args.rounds):
        random.shuffle(order)
        for name in order:
            result = subprocess.run([sys.executable, __file__, "--child", name, "--epochs", str(args.epochs)],
                                    capture_output=True, text=True, check=True)
            report = json.loads(result.stdout.splitlines()[-1])
            digests.setdefault(report["digest"], set()).add(name)
            times[name].append(statistics.median(report["seconds"]))

    num_batches = 1000
    print(f"{num_batches} steps an epoch; {args.rounds} rounds, each variant once a round in its own process, in "
          f"random order; {args.epochs} epochs timed per process (their median)")
    print(f"{'variant':18s} {'us/step':>8s} {'speed vs source, median of rounds':>34s} {'(range)':>14s}")
    for name, ts in times.items():
        ratios = [base / t for t, base in zip(ts, times["source"])]
        print(f"{name:18s} {statistics.median(ts) / num_batches * 1e6:8.0f} {statistics.median(ratios):33.3f}x "
              f"{f'({min(ratios):.2f}-{max(ratios):.2f})':>14s}")
    print("first epoch's losses: " + ("bit-identical in every variant" if len(digests) == 1 else
                                       "DIFFER: " + "; ".join(f"{sorted(names)}" for names in digests.values())))


if __name__ == "__main__":
    main()
