"""``--portable``'s update rounds exactly: no CPU's approximate instruction is left in the graph that runs.

TensorFlow's ``rsqrt`` and ``reciprocal`` (so ``ApplyAdagrad``, the source's update) use the CPU's approximate
reciprocal(-square-root) instructions, whose low bits differ between Intel and AMD. ``exact_adagrad`` is built
from ``+``, ``*``, ``/`` and ``sqrt``, which are correctly rounded on every CPU, so numpy's float32 arithmetic of the
same formula is its reference, bit for bit; and after Grappler (the partition graphs a session really runs) none
of the approximated ops may come back.
"""
import dataclasses

import numpy as np
import pytest

from echo_rnn_tf1 import train
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.model import exact_adagrad_update
from echo_rnn_tf1.tfcompat import import_tensorflow

# Ops whose CPU kernels round by the CPU's approximate instructions (Eigen's rsqrt and reciprocal under
# EIGEN_FAST_MATH), and the Adagrad kernels built on them.
APPROXIMATED = {"Rsqrt", "RsqrtGrad", "Reciprocal", "ReciprocalGrad", "Inv", "InvGrad",
                "ApplyAdagrad", "ResourceApplyAdagrad", "ApplyAdagradV2", "ResourceApplyAdagradV2",
                "SparseApplyAdagrad", "ResourceSparseApplyAdagrad"}


def ops_that_ran(sess, fetches, feed_dict=None):
    """The op types of the graphs ``sess.run(fetches)`` really ran: after Grappler's rewrites."""
    tf = import_tensorflow()
    options = tf.compat.v1.RunOptions(output_partition_graphs=True)
    metadata = tf.compat.v1.RunMetadata()
    sess.run(fetches, feed_dict, options=options, run_metadata=metadata)
    return {node.op for graph in metadata.partition_graphs for node in graph.node}


def chosen_values(count=200_000, seed=0):
    """float32 weights, accumulators and gradients over many magnitudes (accumulators from 1e-30 to 1e30)."""
    rng = np.random.default_rng(seed)
    var = rng.standard_normal(count).astype(np.float32)
    accum = (10.0 ** rng.uniform(-30, 30, count)).astype(np.float32)
    grad = (rng.standard_normal(count) * 10.0 ** rng.uniform(-10, 10, count)).astype(np.float32)
    return var, accum, grad


def applied(values, portable):
    """One ``exact_adagrad_update`` of ``values`` in ``train.session``; ``(new var, new accum, ops that ran)``."""
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        var, accum, grad = (tf.Variable(v) for v in values)
        update = exact_adagrad_update(var, accum, grad.read_value(), 0.3)
    with train.session(graph, portable) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        ran = ops_that_ran(sess, update.op)
        return (*sess.run([var, accum]), ran)


def test_the_update_equals_numpys_float32_arithmetic_bit_for_bit():
    values = chosen_values()
    var, accum, ran = applied(values, portable=True)
    var0, accum0, grad = values
    with np.errstate(over="ignore"):  # (a gradient of 1e10 squares past float32: inf, in both)
        expected_accum = accum0 + grad * grad
        expected_var = var0 - (np.float32(0.3) * grad) / np.sqrt(expected_accum)
    assert accum.dtype == var.dtype == np.float32
    assert accum.tobytes() == expected_accum.tobytes()
    assert var.tobytes() == expected_var.tobytes()
    assert not ran & APPROXIMATED and {"Sqrt", "RealDiv"} <= ran


def test_grapplers_rewrite_is_what_the_portable_session_turns_off():
    # The same update in a session with Grappler's arithmetic optimizer on (TensorFlow's default) runs x * rsqrt(y)
    # in place of x / sqrt(y): the approximation this test file exists to keep out.
    *_, ran = applied(chosen_values(count=10), portable=False)
    assert "Rsqrt" in ran


# The variants --portable allows: every op of their training step is one that rounds the same on every x86-64 CPU.
PORTABLE_VARIANTS = {
    "the source": Config(),
    "carry_state": Config(carry_state=True, targets="series"),
    "new_data_each_epoch": Config(new_data_each_epoch=True),
    "lstm": Config(cell="lstm"),
    "gru": Config(cell="gru"),
    "num_layers 2": Config(num_layers=2),
    "dropout": Config(dropout=0.2),
}


@pytest.mark.parametrize("unroll", [False, True], ids=["dynamic_rnn", "static_rnn"])
@pytest.mark.parametrize("name", PORTABLE_VARIANTS)
def test_a_portable_training_step_runs_no_approximated_op(name, unroll):
    config = dataclasses.replace(PORTABLE_VARIANTS[name], total_series_length=500)
    graph, model, inputs_value, targets_value = train.prepare(config, 0, unroll=unroll, portable=True)
    with train.session(graph, portable=True) as sess:
        sess.run(_initializer(graph))
        feed = {model.batchX_placeholder: inputs_value[:, :config.truncated_backprop_length],
                model.batchY_placeholder: targets_value[:, :config.truncated_backprop_length]}
        ran = ops_that_ran(sess, [model.total_loss, model.train_step], feed)
    assert not ran & APPROXIMATED, sorted(ran & APPROXIMATED)
    assert {"Sqrt", "RealDiv"} <= ran  # (the update ran: the check above looked at it)


def test_the_sources_training_step_runs_applyadagrad():
    # The check above can see the approximation: the source's update (no --portable) runs ApplyAdagrad.
    config = Config(total_series_length=500)
    graph, model, inputs_value, targets_value = train.prepare(config, 0)
    with train.session(graph) as sess:
        sess.run(_initializer(graph))
        feed = {model.batchX_placeholder: inputs_value[:, :10], model.batchY_placeholder: targets_value[:, :10]}
        assert ops_that_ran(sess, model.train_step, feed) & APPROXIMATED


def _initializer(graph):
    with graph.as_default():
        return import_tensorflow().compat.v1.global_variables_initializer()
