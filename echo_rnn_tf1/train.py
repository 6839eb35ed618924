"""Training (训练模型): seed as the source's header would, build, and run one batch per session call."""
import collections
import contextlib
import math
import random
import secrets
import time

import numpy as np

from .config import LOG_EVERY
from .data import generate_data
from .model import build_model, trained_variables
from .tfcompat import import_tensorflow


class Diverged(ArithmeticError):
    """The loss became NaN or infinite; training stops at that step."""

    def __init__(self, epoch_idx, batch_idx, loss):
        super().__init__(f"the loss diverged to {loss} at epoch {epoch_idx}, step {batch_idx}")
        self.epoch_idx, self.batch_idx, self.loss = epoch_idx, batch_idx, loss


def draw_seed():
    """A fresh seed for a run that was given none; it is recorded so the run can be replayed."""
    return secrets.randbelow(2**31)


def prepare(config, seed, unroll=False, portable=False):
    """Seed, generate the data and build the graph, in the source's order: ``(graph, model, inputs_value,
    targets_value)``. ``unroll`` and ``portable``: see ``build_model``.

    ``seed`` means ``random.seed(seed); np.random.seed(seed); tf.compat.v1.set_random_seed(seed)`` at the top of
    the source (the cell's kernel initializer draws its seed from ``random``). The graph is a fresh ``tf.Graph()``,
    not the default one, so that eager TensorFlow 2 code can share the process: the same bits as eager execution off.
    """
    tf = import_tensorflow()
    random.seed(seed)
    np.random.seed(seed)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(seed)
        inputs_value, targets_value = generate_data(config)
        model = build_model(config, unroll=unroll, portable=portable)
    return graph, model, inputs_value, targets_value


def faithful_start(config, seed):
    """``(initial weights by variable name, inputs_value, targets_value)``, exactly as the faithful graph draws them."""
    tf = import_tensorflow()
    graph, _, inputs_value, targets_value = prepare(config, seed)
    with session(graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        values = sess.run(trained_variables(graph))
    return values, inputs_value, targets_value


def session(graph, portable=False):
    """A session for ``graph`` running every op in the calling thread, each kernel on one thread: the same kernels, so
    the same bits, as the source's ``tf.Session()``; for a graph this small, other threads cost more than they save
    (``benchmarks/loop_overhead.py``). TensorFlow sizes its thread pools at a process's first session: later ones
    share them. ``portable``: without Grappler's arithmetic optimizer (see ``model.exact_adagrad``).
    """
    tf = import_tensorflow()
    config = tf.compat.v1.ConfigProto(
        inter_op_parallelism_threads=-1,  # negative: run the ops in the caller's thread
        intra_op_parallelism_threads=1)
    if portable:
        from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

        config.graph_options.rewrite_options.arithmetic_optimization = RewriterConfig.OFF
    return tf.compat.v1.Session(graph=graph, config=config)


def run_windows(sess, model, inputs_value, targets_value, fetches, carry_state=False):
    """Feed ``inputs_value`` and ``targets_value`` (``[rows, columns]``) window by window, as the source's loop
    does: window ``k`` of every row in one run of ``fetches``. Yield ``(batch_idx, what fetches gave)``.

    One loop for every use, like the PTB tutorial's ``run_epoch``: ``[total_loss, train_step]`` trains,
    ``[losses, predictions]`` evaluates, ``predictions`` predicts. Without ``carry_state`` every window starts
    from ``init_state``'s zeros, as in the source. With it, each window's ``final_state`` is fed as the next
    window's initial state, row by row, every part of it (an LSTM's c and h, every layer's), from zeros at the
    first window.

    ``sess.make_callable(fetches, feed_list)`` is the source's ``sess.run(fetches, feed_dict=...)`` with the
    fetches and the placeholders resolved once instead of at every step: the same graph run, the same bits.
    """
    truncated_backprop_length = model.batchX_placeholder.shape[1]
    feed_list = [model.batchX_placeholder, model.batchY_placeholder]
    if carry_state:
        nest = import_tensorflow().nest
        state_parts = nest.flatten(model.init_state)
        feed_list += state_parts
        fetches = [fetches, nest.flatten(model.final_state)]
        state = [np.zeros((inputs_value.shape[0], part.shape[1]), np.float32) for part in state_parts]  # = init_state
    step = sess.make_callable(fetches, feed_list)
    for batch_idx in range(inputs_value.shape[1] // truncated_backprop_length):
        start_idx = batch_idx * truncated_backprop_length
        end_idx = start_idx + truncated_backprop_length

        batchX = inputs_value[:, start_idx:end_idx]   # [batch_size, truncated_backprop_length]
        batchY = targets_value[:, start_idx:end_idx]  # [batch_size, truncated_backprop_length]

        if not carry_state:
            yield batch_idx, step(batchX, batchY)
            continue
        values, state = step(batchX, batchY, *state)
        yield batch_idx, values


def run_training(sess, model, inputs_value, targets_value, config, log=print, on_step=None):
    """Train for ``config.num_epochs`` epochs over the same data, exactly as the source's loop; return the losses.

    ``log`` receives the source's lines: ``New data, epoch k`` (the data is not new: the source prints this but
    reuses its one series) and ``Step N Batch loss X`` every 100 batches. ``on_step(epoch_idx, batch_idx, loss)``
    is called after every step; it may raise to stop training. A NaN or infinite loss raises ``Diverged``.

    The variants of ``config``: ``carry_state`` carries the state from window to window (from zeros at each
    epoch's start); ``new_data_each_epoch`` draws a fresh series before every epoch after the first, from
    numpy's global random state as the source draws its one series.
    """
    loss_list = []
    for epoch_idx in range(config.num_epochs):
        if config.new_data_each_epoch and epoch_idx > 0:
            inputs_value, targets_value = generate_data(config)
        log(f"New data, epoch {epoch_idx}")

        for batch_idx, (_total_loss, _train_step) in run_windows(
                sess, model, inputs_value, targets_value, [model.total_loss, model.train_step], config.carry_state):
            loss_list.append(_total_loss)
            after_step(epoch_idx, batch_idx, _total_loss, log, on_step)
    return loss_list


def after_step(epoch_idx, batch_idx, loss, log, on_step):
    """What follows every step: the source's loss line every 100 steps, ``on_step``, the divergence check."""
    if batch_idx % LOG_EVERY == 0:
        log(f"Step {batch_idx} Batch loss {loss!s}")  # !s: a float32 prints as print() shows it
    if on_step is not None:
        on_step(epoch_idx, batch_idx, loss)
    if not math.isfinite(loss):
        raise Diverged(epoch_idx, batch_idx, loss)


def train(config, seed, log=print, on_step=None, unroll=False, portable=False):
    """Seed, build and train in a session of its own, as the source does from top to bottom; return the losses."""
    tf = import_tensorflow()
    graph, model, inputs_value, targets_value = prepare(config, seed, unroll, portable)
    with session(graph, portable) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        return run_training(sess, model, inputs_value, targets_value, config, log, on_step)


# What ``train_values`` returns (either engine's): the weights by variable name as training started (``start``) and
# ended (``values``), the steps trained, why training stopped early (None, a ``Diverged``, a stop signal's
# ``KeyboardInterrupt``), and ``{"train_seconds": the loop's}`` (the tf2 engine adds XLA's ``compile_seconds``).
Trained = collections.namedtuple("Trained", ["start", "values", "steps_trained", "stopped", "timing"])


def train_values(config, seed, log=print, on_step=None, unroll=False, portable=False, steps=None, on_graph=None):
    """Train as ``train`` does; return a ``Trained`` (``steps``: see ``until_stopped``); ``on_graph(graph)`` once it
    is built."""
    tf = import_tensorflow()
    graph, model, inputs_value, targets_value = prepare(config, seed, unroll, portable)
    if on_graph:
        on_graph(graph)
    done = []

    def counted(epoch_idx, batch_idx, loss):
        done.append(batch_idx)
        if on_step is not None:
            on_step(epoch_idx, batch_idx, loss)

    with session(graph, portable) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        start = sess.run(trained_variables(graph))
        values, stopped, seconds = until_stopped(
            lambda: run_training(sess, model, inputs_value, targets_value, config, log, counted),
            lambda: sess.run(trained_variables(graph)), steps)
        return Trained(start, values, len(done), stopped, {"train_seconds": seconds})


def until_stopped(loop, read, steps=None):
    """Run ``loop()``, then ``read()`` what it learned, inside the context ``steps`` (``failures.HeldStops``); return
    ``(what read returned, why the loop stopped early or None, its seconds)``: a ``Diverged``, or a stop signal's
    ``KeyboardInterrupt``, caught between steps or as the loop ends, so that what was learned so far is saved."""
    started = time.perf_counter()
    stopped = None
    try:
        with steps or contextlib.nullcontext():
            try:
                loop()
            finally:
                learned = read()  # (a signal meanwhile waits: the weights are read whole, and kept)
    except (Diverged, KeyboardInterrupt) as e:
        stopped = e
    return learned, stopped, time.perf_counter() - started
