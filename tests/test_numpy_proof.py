"""An independent numpy implementation of the forward pass, BPTT and Adagrad agrees with the graph."""
import numpy as np
import pytest

import numpy_ref
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.model import build_model, trained_variables
from echo_rnn_tf1.train import prepare

# Measured over 20 random draws (weights N(0, 1), random bits), numpy in float64 against the float32 graph:
LOGITS_ATOL = 1e-5     # largest difference seen: 1.8e-6
GRADIENT_ATOL = 1e-5   # largest difference seen: 8.4e-7
TRAINING_RTOL = 1e-4   # numpy training over one default epoch, seed 0: largest relative difference 1.8e-5


def graph_with_params(tf, config, params, batchX, batchY):
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        model = build_model(config)
        variables = trained_variables(graph)
        gradients = dict(zip(variables, tf.gradients(model.total_loss, list(variables.values()))))
    with v1.Session(graph=graph) as sess:
        sess.run(v1.global_variables_initializer())
        for name, variable in variables.items():
            variable.load(params[name], sess)
        return sess.run([model.logits, model.total_loss, gradients],
                        {model.batchX_placeholder: batchX, model.batchY_placeholder: batchY})


@pytest.mark.parametrize("trial, config", [
    (0, Config()),
    (1, Config()),
    (2, Config(state_size=7, num_classes=3, truncated_backprop_length=6, echo_step=2, batch_size=4,
               total_series_length=240)),
])
def test_forward_and_gradients_match_the_graph(tf, trial, config):
    rng = np.random.default_rng(trial)
    s, c = config.state_size, config.num_classes
    params = {numpy_ref.KERNEL: rng.normal(0, 1, (c + s, s)), numpy_ref.BIAS: rng.normal(0, 1, s),
              "W2": rng.normal(0, 1, (s, c)), "b2": rng.normal(0, 1, (1, c))}
    shape = (config.batch_size, config.truncated_backprop_length)
    batchX, batchY = rng.integers(0, c, shape), rng.integers(0, c, shape)

    logits, total_loss, gradients = graph_with_params(tf, config, params, batchX, batchY)
    np_logits, _, _ = numpy_ref.forward(params, batchX, c)
    np_loss, np_gradients = numpy_ref.loss_and_gradients(params, batchX, batchY, c)

    np.testing.assert_allclose(np_logits, logits, rtol=0, atol=LOGITS_ATOL)
    np.testing.assert_allclose(np_loss, total_loss, rtol=1e-6)
    assert set(np_gradients) == set(gradients)
    for name in gradients:
        np.testing.assert_allclose(np_gradients[name], gradients[name], rtol=0, atol=GRADIENT_ATOL, err_msg=name)


def test_gradients_are_not_trivially_zero():
    # The comparison above would pass for a graph and a reference that both returned zeros.
    rng = np.random.default_rng(0)
    params = {numpy_ref.KERNEL: rng.normal(0, 1, (6, 4)), numpy_ref.BIAS: rng.normal(0, 1, 4),
              "W2": rng.normal(0, 1, (4, 2)), "b2": rng.normal(0, 1, (1, 2))}
    _, grads = numpy_ref.loss_and_gradients(params, rng.integers(0, 2, (5, 10)), rng.integers(0, 2, (5, 10)), 2)
    assert all(np.abs(g).max() > 1e-3 for g in grads.values())


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")  # (with the other tests of conftest's faithful_epoch)
def test_numpy_training_reproduces_an_epoch_of_the_graph(tf, faithful_epoch):
    v1 = tf.compat.v1
    config = Config(num_epochs=1)
    graph, model, inputs_value, targets_value = prepare(config, seed=0)
    with v1.Session(graph=graph) as sess:
        sess.run(v1.global_variables_initializer())
        params = {name: value.astype(np.float64) for name, value in sess.run(trained_variables(graph)).items()}
    graph_losses, _ = faithful_epoch(0)  # the graph trained from these weights on this data: train(config, 0)

    accumulators = numpy_ref.adagrad_accumulators(params)
    length = config.truncated_backprop_length
    numpy_losses = [numpy_ref.train_step(params, accumulators, inputs_value[:, i:i + length],
                                         targets_value[:, i:i + length], config.num_classes, config.learning_rate)
                    for i in range(0, config.num_batches * length, length)]
    np.testing.assert_allclose(numpy_losses, graph_losses, rtol=TRAINING_RTOL)
    assert graph_losses[-1] < 0.01  # and it is a real training run: the echo is learned within the epoch
