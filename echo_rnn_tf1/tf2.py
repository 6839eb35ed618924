"""The same training in native TensorFlow 2: no placeholders, no session, a whole epoch in one XLA program.

Line for line against the faithful graph (``model.py``) and its loop (``train.py``):

- ``tf.compat.v1.placeholder`` + ``feed_dict``  ->  the epoch's windows passed in as one tensor;
- ``BasicRNNCell`` + ``dynamic_rnn``            ->  ``h = tanh(concat([x_t, h]) @ kernel + bias)`` from a zero state;
- ``AdagradOptimizer(lr).minimize``            ->  ``tf.GradientTape`` and TF1's ``ApplyAdagrad`` written out;
- one session call per batch from Python        ->  a ``tf.while_loop`` over the batches inside one
  ``tf.function(jit_compile=True)`` call per epoch; each step's update lands before the next step's loss.

The series and the initial weights are the faithful graph's for the same seed (``drawn_start``), so the two
engines differ only by float rounding.
"""
import dataclasses
import functools
import math
import random
import time

import numpy as np

from .config import ADAGRAD_INITIAL_ACCUMULATOR, ConfigError
from .data import generate_data, windows
from .tfcompat import import_tensorflow
from .train import Trained, after_step, until_stopped


def kernel_seed(seed):
    """The op seed of the cell's kernel initializer in the faithful graph of ``seed``: Keras draws it from
    Python's ``random``, the first draw after the source's ``random.seed(seed)``."""
    return random.Random(seed).randint(1, int(1e9))


def drawn_start(config, seed):
    """``(initial weights by variable name, inputs_value, targets_value)`` for ``seed``: ``train.faithful_start``'s
    values bit for bit, drawn without building the faithful graph (2.6 ms instead of 0.15 s)."""
    tf = import_tensorflow()
    rng = np.random.RandomState(seed)  # what np.random.seed(seed) then the source's draws give
    inputs_value, targets_value = generate_data(config, rng)
    W2 = rng.rand(config.state_size, config.num_classes)  # drawn after the data, as build_model does
    shape = [config.num_classes + config.state_size, config.state_size]  # concat([x_t, h]) @ kernel
    limit = math.sqrt(3.0 / max(1.0, sum(shape) / 2.0))  # Keras's Glorot-uniform bound, computed as Keras does
    kernel = tf.random.stateless_uniform(shape, seed=[kernel_seed(seed), 0], minval=-limit, maxval=limit)
    values = {"rnn/basic_rnn_cell/kernel": kernel.numpy(),
              "rnn/basic_rnn_cell/bias": np.zeros(config.state_size, np.float32),
              "W2": W2.astype(np.float32),
              "b2": np.zeros((1, config.num_classes), np.float32)}
    return values, inputs_value, targets_value


def epoch_windows(values, config):
    """``[num_batches, batch_size, truncated_backprop_length]``: the window each step of an epoch feeds."""
    return windows(values, config).transpose(1, 0, 2).astype(np.int32)


def forward(tf, params, batchX, config):
    """Logits ``[batch, truncated_backprop_length, num_classes]``: the faithful graph's math, written out; ``params``
    by name, in the faithful graph's order (``trained_variables``)."""
    kernel, bias, W2, b2 = params.values()
    one_hot = tf.one_hot(batchX, config.num_classes)                      # [batch, length, num_classes]
    state = tf.zeros([tf.shape(batchX)[0], config.state_size])            # every window from a zero state
    outputs = []
    for t in range(config.truncated_backprop_length):                     # unrolled when traced
        state = tf.tanh(tf.matmul(tf.concat([one_hot[:, t], state], axis=1), kernel) + bias)
        outputs.append(state)
    rnn_outputs = tf.stack(outputs, axis=1)                               # [batch, length, state_size]
    logits = tf.matmul(tf.reshape(rnn_outputs, [-1, config.state_size]), W2) + b2
    return tf.reshape(logits, [-1, config.truncated_backprop_length, config.num_classes])


def adagrad(tf, params, accumulators, gradients, learning_rate):
    """TF1's ``ApplyAdagrad`` as it computes: ``acc += g * g; var -= lr * g * rsqrt(acc)``, ``acc`` from 0.1, no
    epsilon; the new ``(params, accumulators)``."""
    accumulators = tuple(a + g * g for a, g in zip(accumulators, gradients))
    params = tuple(p - learning_rate * g * tf.math.rsqrt(a) for p, g, a in zip(params, gradients, accumulators))
    return params, accumulators


def steps_in_order(tf, step, params, accumulators, windowsX, windowsY):
    """Call ``step(params, accumulators, batchX, batchY) -> (params, accumulators, loss)`` on each window in order, as
    one ``tf.while_loop``; return the last weights and accumulators and every step's loss. (The loop is written out
    rather than left to autograph: tracing takes 0.11 s instead of 0.28, and the same program is compiled.)"""
    num_steps = windowsX.shape[0]  # static: XLA compiles one program for this many steps

    def body(i, params, accumulators, losses):
        params, accumulators, loss = step(params, accumulators, windowsX[i], windowsY[i])
        return i + 1, params, accumulators, losses.write(i, loss)

    _, params, accumulators, losses = tf.while_loop(
        lambda i, *_: i < num_steps, body,
        (tf.constant(0), tuple(params), tuple(accumulators), tf.TensorArray(tf.float32, size=num_steps)))
    return params, accumulators, losses.stack()


# One per configuration (``num_epochs`` aside) and variable ``names`` in the process, shared by every Engine of it
# (seeds one after another, a notebook that trains again), which would otherwise trace and XLA-compile it anew,
# about a second each. ``cache_clear()`` forgets them all.
@functools.cache
def epoch_program(config, names):
    """The epoch as one pure ``tf.function(jit_compile=True)``: weights and accumulators in, trained on every window of
    ``windowsX`` in order; the new ones out, and each step's loss (before its update)."""
    tf = import_tensorflow()

    def step(params, accumulators, batchX, batchY):
        with tf.GradientTape() as tape:
            tape.watch(params)
            logits = forward(tf, dict(zip(names, params)), batchX, config)
            total_loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batchY, logits=logits))
        params, accumulators = adagrad(tf, params, accumulators, tape.gradient(total_loss, params), config.learning_rate)
        return params, accumulators, total_loss

    def epoch(params, accumulators, windowsX, windowsY):
        return steps_in_order(tf, step, params, accumulators, windowsX, windowsY)

    return tf.function(epoch, jit_compile=True, autograph=False)


class Engine:
    """The TF2 engine for one configuration: the weights, Adagrad's accumulators, and the compiled epoch."""

    def __init__(self, config, initial_values):
        tf = import_tensorflow()
        self.config = config
        self.names = tuple(initial_values)  # the faithful graph's variable names, in its order
        self.params = tuple(tf.constant(value, tf.float32) for value in initial_values.values())
        self.accumulators = tuple(tf.fill(p.shape, ADAGRAD_INITIAL_ACCUMULATOR) for p in self.params)
        self.program = epoch_program(dataclasses.replace(config, num_epochs=1), self.names)  # the compiled epoch
        self.epochs_trained = 0

    def compile(self, windowsX, windowsY):
        """Trace and XLA-compile the epoch by running it once, throwing the result away (it is pure), to time
        compilation apart from training; return the seconds: one epoch's run included (a few percent of them), or
        only that run where this configuration was compiled before in the process."""
        start = time.perf_counter()
        _, _, losses = self.program(self.params, self.accumulators, windowsX, windowsY)
        losses.numpy()
        return time.perf_counter() - start

    def train_epoch(self, windowsX, windowsY):
        """One epoch, every step in order, in one call; return its losses as float32."""
        self.params, self.accumulators, losses = self.program(self.params, self.accumulators, windowsX, windowsY)
        self.epochs_trained += 1
        return losses.numpy()

    def values(self):
        """The current weights by variable name, as numpy arrays."""
        return {name: p.numpy() for name, p in zip(self.names, self.params)}


def refuse_variant(config):
    """Raise ``ConfigError`` naming the first variant ``config`` chose, if any: this engine has none."""
    if config.variant():
        raise ConfigError(f"--{config.variant()[0].replace('_', '-')}: only with --engine tf1 (the tf2 engine "
                          f"writes out the source's network and loop alone)")


def start(config, seed):
    """An ``Engine`` at the faithful graph's starting point for ``seed`` (``drawn_start``), and the epoch's windows as
    tensors; a ``config`` that chose a variant is refused."""
    refuse_variant(config)
    tf = import_tensorflow()
    values, inputs_value, targets_value = drawn_start(config, seed)
    windowsX = tf.constant(epoch_windows(inputs_value, config))
    windowsY = tf.constant(epoch_windows(targets_value, config))
    return Engine(config, values), windowsX, windowsY


def run_epochs(engine, windowsX, windowsY, log=print, on_step=None):
    """Train ``num_epochs`` epochs, logging the source's lines and calling ``on_step`` for every step once its
    epoch has run, as the faithful loop does."""
    loss_list = []
    for epoch_idx in range(engine.config.num_epochs):
        losses = engine.train_epoch(windowsX, windowsY)
        log(f"New data, epoch {epoch_idx}")
        for batch_idx, loss in enumerate(losses):
            loss_list.append(loss)
            after_step(epoch_idx, batch_idx, loss, log, on_step)
    return loss_list


def train(config, seed, log=print, on_step=None):
    """Seed, compile and train with the TF2 engine; return the losses (like ``train.train`` for the faithful graph)."""
    engine, windowsX, windowsY = start(config, seed)
    engine.compile(windowsX, windowsY)
    return run_epochs(engine, windowsX, windowsY, log, on_step)


def train_values(config, seed, log=print, on_step=None, steps=None):
    """Train as ``train`` does; return a ``train.Trained``, XLA's ``compile_seconds`` in its timing."""
    engine, windowsX, windowsY = start(config, seed)
    start_values = engine.values()
    compile_seconds = engine.compile(windowsX, windowsY)
    values, stopped, seconds = until_stopped(lambda: run_epochs(engine, windowsX, windowsY, log, on_step),
                                             engine.values, steps)
    timing = {"train_seconds": seconds, "compile_seconds": compile_seconds}
    return Trained(start_values, values, engine.epochs_trained * config.num_batches, stopped, timing)
