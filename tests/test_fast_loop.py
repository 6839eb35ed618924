"""The faster faithful loop computes what the source's loop computes, bit for bit.

``train.run_windows`` calls each step through ``Session.make_callable`` and ``train.session`` runs the ops in the
calling thread. Checked against the source's own loop (``sess.run`` with a ``feed_dict``, a default session)
written out here, in one process and one graph, and against the source's own code in a process of its own.
"""
import dataclasses

import numpy as np
import pytest

from echo_rnn_tf1.config import Config
from echo_rnn_tf1.record import read_losses
from echo_rnn_tf1.train import prepare, run_training

SHORT = Config(num_epochs=2, total_series_length=1000)  # 20 steps an epoch


def source_loop(tf, sess, model, inputs_value, targets_value, config, carry_state):
    """The source's loop: ``sess.run`` with a ``feed_dict`` per window; with ``carry_state``, each window's
    ``final_state`` fed as the next one's ``init_state``, none fed at an epoch's first window."""
    state_parts, final_parts = tf.nest.flatten(model.init_state), tf.nest.flatten(model.final_state)
    length, loss_list = config.truncated_backprop_length, []
    for _ in range(config.num_epochs):
        state = None
        for batch_idx in range(config.num_batches):
            feed_dict = {model.batchX_placeholder: inputs_value[:, batch_idx * length:(batch_idx + 1) * length],
                         model.batchY_placeholder: targets_value[:, batch_idx * length:(batch_idx + 1) * length]}
            if carry_state and state is not None:
                feed_dict.update(zip(state_parts, state))
            _total_loss, _train_step, state = sess.run([model.total_loss, model.train_step, final_parts], feed_dict)
            loss_list.append(_total_loss)
    return loss_list


@pytest.mark.parametrize("config", [SHORT, dataclasses.replace(SHORT, carry_state=True, cell="lstm", num_layers=2)],
                         ids=["source", "carried LSTM state, two layers"])
def test_the_callable_loop_equals_the_source_loop(tf, config):
    graph, model, inputs_value, targets_value = prepare(config, seed=3)
    with graph.as_default():
        init = tf.compat.v1.global_variables_initializer()
    with tf.compat.v1.Session(graph=graph) as sess:  # the source's session, as it makes it
        sess.run(init)
        expected = source_loop(tf, sess, model, inputs_value, targets_value, config, config.carry_state)
        sess.run(init)  # the same starting weights again
        got = run_training(sess, model, inputs_value, targets_value, config, log=lambda line: None)
    assert np.array(got).tobytes() == np.array(expected).tobytes()


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")  # (with conftest's full_default_run and the source's epoch of seed 0: test_oracle's)
def test_a_run_from_the_command_line_is_the_source_bit_for_bit(full_default_run, source_epoch):
    # A fresh process, so its training session is the first one and sets the thread pools: the case users run.
    # (conftest's full_default_run: `python -m echo_rnn_tf1 --seed 0`; its first epoch is a one-epoch run's.)
    out, result = full_default_run
    assert result.returncode == 0, result.stderr
    expected, _ = source_epoch(0)  # the source's own code, in a process of its own
    _, _, got = read_losses(out / "losses.csv")
    assert got[:len(expected)].tobytes() == expected.tobytes() and len(expected) == 1000
