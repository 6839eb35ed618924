"""The graph: shapes, variable names, and what happens when TensorFlow was imported the Keras 3 way."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, needs_tf_keras
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.model import trained_variables
from echo_rnn_tf1.train import prepare


def test_shapes_and_variables(tf):
    graph, model, inputs_value, targets_value = prepare(Config(), seed=0)
    shapes = {name: getattr(model, name).shape.as_list() for name in
              ("batchX_placeholder", "init_state", "rnn_outputs", "final_state", "logits", "losses", "predictions")}
    assert shapes == {"batchX_placeholder": [5, 10], "init_state": [5, 4], "rnn_outputs": [5, 10, 4],
                      "final_state": [5, 4], "logits": [5, 10, 2], "losses": [5, 10], "predictions": [5, 10, 2]}
    assert model.total_loss.shape.as_list() == []
    assert model.batchX_placeholder.dtype == model.batchY_placeholder.dtype == tf.int32
    variables = {name: v.shape.as_list() for name, v in trained_variables(graph).items()}
    # kernel: [num_classes + state_size, state_size], the one-hot input and the state side by side.
    assert variables == {"rnn/basic_rnn_cell/kernel": [6, 4], "rnn/basic_rnn_cell/bias": [4],
                         "W2": [4, 2], "b2": [1, 2]}
    assert (inputs_value.shape, targets_value.shape) == ((5, 10000), (5, 10000))


def test_graph_is_private_and_eager_stays_on(tf):
    graph, _, _, _ = prepare(Config(), seed=0)
    assert graph is not tf.compat.v1.get_default_graph()
    assert tf.executing_eagerly()


def test_untrained_loss_is_near_ln2(tf):
    # A fresh net's softmax is nearly uniform over 2 classes, so its loss is near ln 2 = 0.693
    # (the 2017 run's first step: 0.70098).
    graph, model, inputs_value, targets_value = prepare(Config(), seed=0)
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        loss = sess.run(model.total_loss, {model.batchX_placeholder: inputs_value[:, :10],
                                           model.batchY_placeholder: targets_value[:, :10]})
    assert abs(loss - np.log(2)) < 0.2


def _python(code):
    """Run ``code`` in a fresh interpreter, which leaves at once when it is done (skipping TensorFlow's teardown)."""
    code += "\nimport os, sys\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@needs_tf_keras
def test_tensorflow_imported_first_gets_a_clear_error():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"
            "import tensorflow\n"
            "from echo_rnn_tf1.config import Config\n"
            "from echo_rnn_tf1.train import prepare\n"
            "from echo_rnn_tf1.tfcompat import LegacyKerasError\n"
            "try:\n    prepare(Config(), 0)\n"
            "except LegacyKerasError as e:\n    print('LegacyKerasError:', e)\n")
    result = _python(code)
    assert "LegacyKerasError: tensorflow was imported before TF_USE_LEGACY_KERAS=1" in result.stdout, result.stderr


@pytest.mark.slow
def test_package_imported_first_lets_tensorflow_have_the_cell():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"
            "import echo_rnn_tf1\nimport tensorflow as tf\n"
            "print(tf.compat.v1.nn.rnn_cell.BasicRNNCell.__name__)\n")
    result = _python(code)
    assert result.stdout.strip() == "BasicRNNCell", result.stderr
