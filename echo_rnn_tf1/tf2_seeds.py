"""Many seeds of the TF2 engine side by side in one compiled program: ``envelope --engine tf2``.

The single-seed engine (``tf2.py``) with a seed dimension on every weight, Adagrad accumulator, window and loss,
put last so that the compiled step works on vectors of seeds: each matrix product of the cell becomes a sum of
products over those vectors. The loss is each seed's mean, as the source's; the gradient of their sum with
respect to one seed's weights is that seed's own gradient, so the seeds train side by side, each as it would
alone, up to float rounding. An epoch of a chunk of seeds is one XLA program call.

Each seed starts exactly where the faithful graph starts for it, without building that graph: the cell's kernel is
Keras's Glorot-uniform draw, a stateless op whose seed is Python's first ``randint(1, 10**9)`` after
``random.seed(seed)`` (so on TensorFlow 2.12 to 2.21: checked on 2.12, 2.15, 2.16 and 2.21); ``W2`` is numpy's draw
after the data; the biases are zeros (``tests/test_envelope_tf2.py`` checks this against the faithful graph).
"""
import concurrent.futures
import math
import threading

import numpy as np

from .config import ADAGRAD_INITIAL_ACCUMULATOR
from .failures import completed
from .tf2 import adagrad, drawn_start, epoch_windows, steps_in_order
from .tfcompat import import_tensorflow

MAX_CHUNK = 1000  # seeds in one compiled program: an epoch takes 1.4 ms a seed at 1000 (1.8 at 100); memory grows with
                  # it (peak RSS of whole commands: 831 MiB at 100 seeds, 1057 MiB at 1000, 1338 MiB at 4000)


# How this engine agrees with the faithful one: benchmarks/envelope_engines.py on seeds 0-39, TensorFlow 2.21, its
# output in docs/envelope_engines.txt
AGREEMENT = ("Against the faithful engine (seeds 0-39, TensorFlow 2.21): the same verdict for all 40 seeds; "
             "at the 2017 run's points, the band's 10th percentile within 4 % of the faithful one's, its median within "
             "2.3 %, its 90th percentile within 2.6x (one seed's one-step spike)")


def forward(tf, params, batchX, config):
    """Logits ``[batch, truncated_backprop_length, seeds, num_classes]`` of every seed at once.

    ``params``: kernel ``[num_classes + state_size, state_size, seeds]``, bias ``[state_size, seeds]``, W2
    ``[state_size, num_classes, seeds]``, b2 ``[1, num_classes, seeds]``; ``batchX``: ``[batch, length, seeds]``."""
    kernel, bias, W2, b2 = params
    seeds = batchX.shape[-1]
    one_hot = tf.one_hot(tf.cast(batchX, tf.int32), config.num_classes, axis=2)  # [batch, length, num_classes, seeds]
    state = tf.zeros([batchX.shape[0], config.state_size, seeds])            # every window from a zero state
    outputs = []
    for t in range(config.truncated_backprop_length):                         # unrolled when traced
        inputs = tf.concat([one_hot[:, t], state], axis=1)                    # [batch, num_classes + state_size, seeds]
        state = tf.tanh(tf.reduce_sum(inputs[:, :, None] * kernel, axis=1) + bias)  # [batch, state_size, seeds]
        outputs.append(state)
    rnn_outputs = tf.stack(outputs, axis=1)                                   # [batch, length, state_size, seeds]
    logits = tf.reduce_sum(rnn_outputs[:, :, :, None] * W2, axis=2) + b2      # [batch, length, num_classes, seeds]
    return tf.transpose(logits, [0, 1, 3, 2])


def epoch_of_seeds(tf, config):
    """The compiled epoch of many seeds: every seed trained on its windows in order; returns the new weights and
    accumulators and each step's loss ``[steps, seeds]``. Traced again only for a new number of seeds."""

    def step(params, accumulators, batchX, batchY):
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits = forward(tf, params, batchX, config)                   # [batch, length, seeds, num_classes]
            total_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.cast(batchY, tf.int32), logits=logits), axis=[0, 1])  # [seeds]: each seed's mean
            summed = tf.reduce_sum(total_loss)  # its gradient for a seed's weights is that seed's own
        params, accumulators = adagrad(tf, params, accumulators, tape.gradient(summed, params), config.learning_rate)
        return params, accumulators, total_loss

    def epoch(params, accumulators, windowsX, windowsY):
        return steps_in_order(tf, step, params, accumulators, windowsX, windowsY)

    return tf.function(epoch, jit_compile=True, autograph=False)


def stacked_starts(config, seeds, stop=None):
    """The starting points of ``seeds``, a seed dimension last: ``(weights by name, windowsX, windowsY)``, the
    windows ``[num_batches, batch_size, truncated_backprop_length, seeds]``, one byte a bit (a seed's series is
    drawn as int64: only one is held at a time). Once ``stop`` is set, the rest are left undrawn (2.6 ms a seed)."""
    shape = (config.num_batches, config.batch_size, config.truncated_backprop_length, len(seeds))
    windowsX, windowsY = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    values = {}
    for k, seed in enumerate(seeds):
        if stop is not None and stop.is_set():
            break
        seed_values, inputs_value, targets_value = drawn_start(config, seed)
        for name, value in seed_values.items():
            values.setdefault(name, np.empty(value.shape + (len(seeds),), np.float32))[..., k] = value
        windowsX[..., k] = epoch_windows(inputs_value, config)
        windowsY[..., k] = epoch_windows(targets_value, config)
    return values, windowsX, windowsY


def chunks(seeds, jobs, max_chunk=MAX_CHUNK):
    """``seeds`` cut into chunks of one size (the last padded with repeats of its last seed, so that one compiled
    program serves all), at least ``jobs`` of them, as many as ``max_chunk`` needs; returns ``(chunks, real sizes)``."""
    count = max(min(jobs, len(seeds)), math.ceil(len(seeds) / max_chunk))
    size = math.ceil(len(seeds) / count)
    cut = [list(seeds[i:i + size]) for i in range(0, len(seeds), size)]
    return [c + [c[-1]] * (size - len(c)) for c in cut], [len(c) for c in cut]


def train_seeds(config, seeds, jobs=1, on_chunk=lambda seeds, losses: None):
    """Losses of every seed, ``[len(seeds), num_steps]`` float32, trained ``jobs`` chunks at a time, each chunk in a
    thread of its own calling one compiled program (XLA runs it on one core). ``on_chunk(chunk_seeds, losses)``
    as each chunk finishes. A failure in a chunk, or a signal (``KeyboardInterrupt``, ``Interrupted``) in this
    thread, stops the other chunks at their next epoch; it is raised once they have stopped."""
    tf, stop = import_tensorflow(), threading.Event()
    epoch, (parts, sizes) = epoch_of_seeds(tf, config), chunks(seeds, jobs)

    def train(part):  # losses [len(part), num_steps]; once stop is set, None at the next epoch or starting point
        values, windowsX, windowsY = stacked_starts(config, part, stop)
        params = tuple(tf.constant(value) for value in values.values())
        accumulators = tuple(tf.fill(p.shape, ADAGRAD_INITIAL_ACCUMULATOR) for p in params)
        windowsX, windowsY = tf.constant(windowsX), tf.constant(windowsY)
        epochs = []
        for _ in range(config.num_epochs):
            if stop.is_set():
                return None
            params, accumulators, losses = epoch(params, accumulators, windowsX, windowsY)
            epochs.append(losses.numpy())
        return np.concatenate(epochs).T.copy()  # [seeds, num_steps], in C order as losses.npy stores it

    pool = concurrent.futures.ThreadPoolExecutor(jobs)
    try:
        futures = {pool.submit(train, part): part[:size] for part, size in zip(parts, sizes)}  # its seeds, unpadded
        for future in completed(futures):
            chunk = futures[future]
            on_chunk(chunk, future.result()[:len(chunk)])
    finally:
        stop.set()  # (the rest stop at their next epoch; the pool waits for them)
        pool.shutdown(cancel_futures=True)
    return np.concatenate([future.result()[:len(chunk)] for future, chunk in futures.items()])
