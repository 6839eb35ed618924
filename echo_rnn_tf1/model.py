"""The Echo-RNN graph (定义模型), built with tf.compat.v1.

Seeded identity with the source rests on drawing in its order: the cell's kernel initializer takes its op seed
from Python's ``random`` (so an extra op before it, as with ``unroll``, changes nothing), and ``W2`` is drawn from
numpy's global random state after the data. The ops are created in the source's order too, so that an op without a
seed of its own would get the same one from the graph-level seed. A variant changes only the cell (``make_cell``).
"""
import collections

import numpy as np

from .config import ADAGRAD_INITIAL_ACCUMULATOR
from .tfcompat import import_tensorflow

EchoRNN = collections.namedtuple("EchoRNN", [
    "batchX_placeholder", "batchY_placeholder", "init_state", "rnn_outputs", "final_state",
    "W2", "b2", "logits", "losses", "total_loss", "train_step", "predictions",
])


def trained_variables(graph):
    """The graph's trained variables by name, in the order they were created: for the source's network
    ``rnn/basic_rnn_cell/kernel``, ``rnn/basic_rnn_cell/bias``, ``W2``, ``b2``."""
    return {v.op.name: v for v in graph.get_collection("trainable_variables")}


def make_cell(config, training=True):
    """The recurrent cell of ``config``: the source's ``BasicRNNCell(state_size)``, or the variant's.

    ``config.cell`` picks the class of ``tf.compat.v1.nn.rnn_cell`` (``LSTMCell``'s state is the pair (c, h));
    ``num_layers`` cells are stacked in a ``MultiRNNCell`` (its state: one per layer); with ``dropout`` and
    ``training``, each cell's outputs go through a ``DropoutWrapper``, which adds no variable, so an inference
    graph without it restores the same checkpoint. Making a cell creates no op: its variables are made where
    ``dynamic_rnn`` first calls it, as in the source.
    """
    rnn_cell = import_tensorflow().compat.v1.nn.rnn_cell
    # BasicRNNCell is tf.contrib.rnn.BasicRNNCell of TF 1.4: the same class
    cell_class = {"basic": rnn_cell.BasicRNNCell, "lstm": rnn_cell.LSTMCell, "gru": rnn_cell.GRUCell}[config.cell]

    def layer():
        cell = cell_class(config.state_size)
        if training and config.dropout:
            cell = rnn_cell.DropoutWrapper(cell, output_keep_prob=1.0 - config.dropout)
        return cell

    return layer() if config.num_layers == 1 else rnn_cell.MultiRNNCell([layer() for _ in range(config.num_layers)])


def build_model(config, cell=None, unroll=False, inference=False, portable=False):
    """Create the graph in the current default graph and return its tensors as an ``EchoRNN``.

    ``cell``: the recurrent cell (default: ``make_cell(config)``, the source's ``BasicRNNCell`` unless
    ``config`` chose a variant); the graph around it is the same for every cell.
    ``unroll``: the same cell and variables over ``static_rnn`` (10 copies of the step) instead of
    ``dynamic_rnn`` (a while loop): the same math, faster per step for short windows.
    ``inference``: any number of windows (batch dimension None), ``W2`` starting at zeros instead of drawing
    from numpy, no dropout and no optimizer: for restoring trained variables, which keep the same names.
    ``portable``: ``exact_adagrad`` instead of the source's ``AdagradOptimizer`` (run it in ``train.session(graph,
    portable=True)``, whose Grappler leaves its division alone).
    """
    tf = import_tensorflow()
    v1 = tf.compat.v1
    batch_size = None if inference else config.batch_size
    truncated_backprop_length, state_size, num_classes = (
        config.truncated_backprop_length, config.state_size, config.num_classes)

    batchX_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])
    batchY_placeholder = v1.placeholder(tf.int32, [batch_size, truncated_backprop_length])

    one_hot_batchX_placeholder = tf.one_hot(batchX_placeholder, num_classes)  # [batch_size, truncated_backprop_length, num_classes]

    if cell is None:
        cell = make_cell(config, training=not inference)
    # Every batch starts from these zeros unless a loop feeds a final_state in their place (config.carry_state);
    # the source never does. One [batch_size, state_size] per part of the state (the source's cell: one).
    rows = tf.shape(batchX_placeholder)[0] if inference else batch_size
    init_state = tf.nest.map_structure(lambda size: tf.zeros([rows, size]), cell.state_size)

    if unroll:
        rnn_output_list, final_state = v1.nn.static_rnn(
            cell, tf.unstack(one_hot_batchX_placeholder, axis=1), initial_state=init_state)
        rnn_outputs = tf.stack(rnn_output_list, axis=1)
    else:
        # Dropout draws its masks with a stateful op inside the while loop; iterations run one at a time so that
        # they draw in order (in parallel they may draw in any order under load: a seed would not repeat).
        rnn_outputs, final_state = v1.nn.dynamic_rnn(cell, one_hot_batchX_placeholder, initial_state=init_state,
                                                     parallel_iterations=1 if config.dropout else None)
    # rnn_outputs: [batch_size, truncated_backprop_length, state_size]; final_state: like init_state

    W2_initial = np.zeros((state_size, num_classes)) if inference else np.random.rand(state_size, num_classes)
    W2 = tf.Variable(W2_initial, dtype=tf.float32, name="W2")                    # [state_size, num_classes]
    b2 = tf.Variable(np.zeros((1, num_classes)), dtype=tf.float32, name="b2")  # [1, num_classes]

    logits = tf.reshape(
        tf.matmul(tf.reshape(rnn_outputs, [-1, state_size]), W2) + b2,  # [batch_size * truncated_backprop_length, num_classes]
        [batch_size or -1, truncated_backprop_length, num_classes])     # [batch_size, truncated_backprop_length, num_classes]

    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batchY_placeholder, logits=logits)  # [batch_size, truncated_backprop_length]

    total_loss = tf.reduce_mean(losses)  # []
    if inference:
        train_step = None
    elif portable:
        train_step = exact_adagrad(total_loss, config.learning_rate)
    else:
        train_step = v1.train.AdagradOptimizer(config.learning_rate).minimize(total_loss)

    predictions = tf.nn.softmax(logits)  # [batch_size, truncated_backprop_length, num_classes]; not in the source

    return EchoRNN(batchX_placeholder, batchY_placeholder, init_state, rnn_outputs, final_state,
                   W2, b2, logits, losses, total_loss, train_step, predictions)


def exact_adagrad(total_loss, learning_rate):
    """TF1's Adagrad from operations that round exactly on every CPU (``sqrt``, ``*``, ``+``, ``/``): for each trained
    variable, with an accumulator from 0.1, ``accum += grad * grad; var -= (learning_rate * grad) / sqrt(accum)``.

    The source's ``AdagradOptimizer`` applies ``var -= learning_rate * grad * rsqrt(accum)`` in one kernel
    (``ApplyAdagrad``), whose ``rsqrt`` is the CPU's approximate instruction plus a Newton step: its low bits differ
    between Intel and AMD. Grappler's arithmetic optimizer would rewrite ``x / sqrt(y)`` as ``x * rsqrt(y)``:
    ``train.session(graph, portable=True)`` turns it off.
    """
    tf = import_tensorflow()
    v1 = tf.compat.v1
    variables = v1.trainable_variables()
    updates = []
    for var, grad in zip(variables, v1.gradients(total_loss, variables)):
        accum = tf.Variable(tf.fill(var.shape, ADAGRAD_INITIAL_ACCUMULATOR), name=var.op.name + "/Adagrad")
        updates.append(exact_adagrad_update(var, accum, grad, learning_rate))
    return tf.group(*updates)


def exact_adagrad_update(var, accum, grad, learning_rate):
    """One step of ``exact_adagrad`` on the variables ``var`` and ``accum``."""
    tf = import_tensorflow()
    new_accum = tf.compat.v1.assign(accum, accum + grad * grad)
    return tf.compat.v1.assign(var, var - (learning_rate * grad) / tf.sqrt(new_accum))
