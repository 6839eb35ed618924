"""The Echo-RNN graph (定义模型), built with tf.compat.v1 in the source's op order.

The order matters: with a graph-level seed, TensorFlow derives each random op's seed from the number of
ops created before it, so one extra op ahead of the cell's kernel initializer changes the initial weights.
``W2`` is drawn from numpy's global random state, after the data, as in the source.
"""
import collections

import numpy as np

from .tfcompat import import_tensorflow

EchoRNN = collections.namedtuple("EchoRNN", [
    "batchX_placeholder", "batchY_placeholder", "init_state", "rnn_outputs", "final_state",
    "W2", "b2", "logits", "losses", "total_loss", "train_step", "predictions",
])


def build_model(config):
    """Create the training graph in the current default graph and return its tensors as an ``EchoRNN``."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    batch_size, truncated_backprop_length = config.batch_size, config.truncated_backprop_length
    state_size, num_classes = config.state_size, config.num_classes

    batchX_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])
    batchY_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])

    one_hot_batchX_placeholder = tf.one_hot(batchX_placeholder, num_classes)  # [batch_size, truncated_backprop_length, num_classes]

    cell = v1.nn.rnn_cell.BasicRNNCell(state_size)  # tf.contrib.rnn.BasicRNNCell in TF 1.4: the same class
    # Every batch starts from zeros: the source never feeds the previous final_state back in.
    init_state = tf.zeros([batch_size, state_size])  # [batch_size, state_size]

    rnn_outputs, final_state = v1.nn.dynamic_rnn(cell, one_hot_batchX_placeholder, initial_state=init_state)
    # rnn_outputs: [batch_size, truncated_backprop_length, state_size]; final_state: [batch_size, state_size]

    W2 = tf.Variable(np.random.rand(state_size, num_classes), dtype=tf.float32, name="W2")  # [state_size, num_classes]
    b2 = tf.Variable(np.zeros((1, num_classes)), dtype=tf.float32, name="b2")              # [1, num_classes]

    logits = tf.reshape(
        tf.matmul(tf.reshape(rnn_outputs, [-1, state_size]), W2) + b2,  # [batch_size * truncated_backprop_length, num_classes]
        [batch_size, truncated_backprop_length, num_classes])           # [batch_size, truncated_backprop_length, num_classes]

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batchY_placeholder, logits=logits)  # [batch_size, truncated_backprop_length]

    total_loss = tf.reduce_mean(losses)  # []
    train_step = v1.train.AdagradOptimizer(config.learning_rate).minimize(total_loss)

    predictions = tf.nn.softmax(logits)  # [batch_size, truncated_backprop_length, num_classes]; not in the source

    return EchoRNN(batchX_placeholder, batchY_placeholder, init_state, rnn_outputs, final_state,
                   W2, b2, logits, losses, total_loss, train_step, predictions)
