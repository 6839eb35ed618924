"""Does the package's training loop cost anything over the source's bare loop?

One process, one graph, one session; the variants take turns epoch by epoch, in a new random order each
round, so that machine noise falls on all of them alike. Each round gives each variant's time over the
source's time in that round; the median of those ratios is reported (rounds differ by several percent on a
shared machine, so one round says little).

    python benchmarks/loop_overhead.py [--rounds 15]

Variants:
- source:  the source's loop, pasted inline (sess.run per batch, print every 100 steps to a null stream);
- package: ``run_training`` with the log going to the same null stream;
- cli:     ``run_training`` with the CLI's recorder: train.log and losses.csv written line by line.
"""
import argparse
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from echo_rnn_tf1.config import Config  # noqa: E402
from echo_rnn_tf1.runs import RunWriter  # noqa: E402
from echo_rnn_tf1.tfcompat import import_tensorflow  # noqa: E402
from echo_rnn_tf1.train import prepare, run_training  # noqa: E402


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="epochs timed per variant")
    args = parser.parse_args()
    tf = import_tensorflow()
    config = Config(num_epochs=1)
    graph, model, inputs_value, targets_value = prepare(config, seed=0)
    null = io.StringIO()
    with tf.compat.v1.Session(graph=graph) as sess, tempfile.TemporaryDirectory() as tmp:
        sess.run(tf.compat.v1.global_variables_initializer())
        writer = RunWriter(os.path.join(tmp, "run"))
        variants = {
            "source": lambda: source_loop(sess, model, inputs_value, targets_value, config),
            "package": lambda: run_training(sess, model, inputs_value, targets_value, config,
                                            log=lambda line: print(line)),
            "cli": lambda: run_training(sess, model, inputs_value, targets_value, config,
                                        log=writer.log, on_step=writer.record),
        }
        times = {name: [] for name in variants}
        with contextlib.redirect_stdout(null):
            for name, run in variants.items():  # warm-up
                run()
            order = list(variants)
            for _ in range(args.rounds):
                random.shuffle(order)
                for name in order:
                    start = time.perf_counter()
                    variants[name]()
                    times[name].append(time.perf_counter() - start)
        writer.close()

    print(f"{config.num_batches} steps an epoch, {args.rounds} rounds, each variant once a round in random order")
    print(f"{'variant':10s} {'us/step':>8s} {'time vs source, median of rounds':>34s} {'(range)':>16s}")
    for name, ts in times.items():
        ratios = [t / base for t, base in zip(ts, times["source"])]
        print(f"{name:10s} {statistics.median(ts) / config.num_batches * 1e6:8.0f} {statistics.median(ratios):34.3f} "
              f"{f'({min(ratios):.2f}-{max(ratios):.2f})':>16s}")


if __name__ == "__main__":
    main()
