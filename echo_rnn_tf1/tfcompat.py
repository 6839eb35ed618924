"""Import TensorFlow so that the source's ``BasicRNNCell`` exists on TensorFlow 2.

Since TensorFlow 2.16 the ``tf.compat.v1.nn.rnn_cell`` classes come from the legacy Keras package, tf-keras,
and only when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported. ``tf.contrib`` is gone;
``tf.contrib.rnn.BasicRNNCell`` of TF 1.4 is this same class.
"""
import os
import sys
import warnings


class LegacyKerasError(RuntimeError):
    """TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set, so the TF1 RNN cells are unavailable."""


def import_tensorflow():
    """Return the ``tensorflow`` module, with the legacy Keras cells available, or raise LegacyKerasError."""
    if "tensorflow" not in sys.modules:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    try:
        tf.compat.v1.nn.rnn_cell.BasicRNNCell
    except (AttributeError, ImportError) as e:  # Keras 3 raises AttributeError: "not available with Keras 3"
        raise LegacyKerasError(
            "tensorflow was imported before TF_USE_LEGACY_KERAS=1 was set (or tf-keras is missing), so "
            "tf.compat.v1.nn.rnn_cell.BasicRNNCell is unavailable. Import echo_rnn_tf1 before tensorflow, or "
            "set TF_USE_LEGACY_KERAS=1 first (restart the kernel in a notebook), and install "
            f"tf-keras=={'.'.join(tf.__version__.split('.')[:2])}.*"
        ) from e
    return tf


def import_quiet_tensorflow():
    """``import_tensorflow()`` with less chatter on stderr, for the command line (TF_CPP_MIN_LOG_LEVEL=0 shows all).

    TensorFlow's deprecation notices for the source's API are silenced: using that API is the point here.
    A few lines TensorFlow prints while loading, before it reads any setting, remain.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", message=r".*tf\.nn\.rnn_cell\.\w+. is deprecated", category=UserWarning)
    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    return tf
