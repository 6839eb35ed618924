"""The Echo-RNN graph (定义模型), built with tf.compat.v1 in the source's op order.

Seeded identity with the source rests on drawing in its order: the cell's kernel initializer takes its op
seed from Python's ``random`` (so an extra op before it, as with ``unroll``, changes nothing), and ``W2`` is
drawn from numpy's global random state after the data. The ops are created in the source's order too, so
that an op without a seed of its own would get the same seed from the graph-level one.
"""
import collections

import numpy as np

from .tfcompat import import_tensorflow

EchoRNN = collections.namedtuple("EchoRNN", [
    "batchX_placeholder", "batchY_placeholder", "init_state", "rnn_outputs", "final_state",
    "W2", "b2", "logits", "losses", "total_loss", "train_step", "predictions",
])

TRAINED_VARIABLES = ("rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias", "W2", "b2")


def build_model(config, unroll=False, inference=False):
    """Create the graph in the current default graph and return its tensors as an ``EchoRNN``.

    ``unroll``: the same cell and variables over ``static_rnn`` (10 copies of the step) instead of
    ``dynamic_rnn`` (a while loop): the same math, faster per step for short windows.
    ``inference``: any number of windows (batch dimension None), ``W2`` starting at zeros instead of drawing
    from numpy, and no optimizer: for restoring trained variables, which keep the same names.
    """
    tf = import_tensorflow()
    v1 = tf.compat.v1
    batch_size = None if inference else config.batch_size
    truncated_backprop_length, state_size, num_classes = (
        config.truncated_backprop_length, config.state_size, config.num_classes)

    batchX_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])
    batchY_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])

    one_hot_batchX_placeholder = tf.one_hot(batchX_placeholder, num_classes)  # [batch_size, truncated_backprop_length, num_classes]

    cell = v1.nn.rnn_cell.BasicRNNCell(state_size)  # tf.contrib.rnn.BasicRNNCell in TF 1.4: the same class
    # Every batch starts from zeros: the source never feeds the previous final_state back in.
    if inference:
        init_state = tf.zeros([tf.shape(batchX_placeholder)[0], state_size])  # [windows, state_size]
    else:
        init_state = tf.zeros([batch_size, state_size])  # [batch_size, state_size]

    if unroll:
        rnn_output_list, final_state = v1.nn.static_rnn(
            cell, tf.unstack(one_hot_batchX_placeholder, axis=1), initial_state=init_state)
        rnn_outputs = tf.stack(rnn_output_list, axis=1)
    else:
        rnn_outputs, final_state = v1.nn.dynamic_rnn(cell, one_hot_batchX_placeholder, initial_state=init_state)
    # rnn_outputs: [batch_size, truncated_backprop_length, state_size]; final_state: [batch_size, state_size]

    W2_initial = np.zeros((state_size, num_classes)) if inference else np.random.rand(state_size, num_classes)
    W2 = tf.Variable(W2_initial, dtype=tf.float32, name="W2")                    # [state_size, num_classes]
    b2 = tf.Variable(np.zeros((1, num_classes)), dtype=tf.float32, name="b2")  # [1, num_classes]

    logits = tf.reshape(
        tf.matmul(tf.reshape(rnn_outputs, [-1, state_size]), W2) + b2,  # [batch_size * truncated_backprop_length, num_classes]
        [batch_size or -1, truncated_backprop_length, num_classes])     # [batch_size, truncated_backprop_length, num_classes]

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batchY_placeholder, logits=logits)  # [batch_size, truncated_backprop_length]

    total_loss = tf.reduce_mean(losses)  # []
    train_step = None if inference else v1.train.AdagradOptimizer(config.learning_rate).minimize(total_loss)

    predictions = tf.nn.softmax(logits)  # [batch_size, truncated_backprop_length, num_classes]; not in the source

    return EchoRNN(batchX_placeholder, batchY_placeholder, init_state, rnn_outputs, final_state,
                   W2, b2, logits, losses, total_loss, train_step, predictions)
