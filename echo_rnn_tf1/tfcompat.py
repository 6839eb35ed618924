"""Import TensorFlow so that the source's ``BasicRNNCell`` exists on TensorFlow 2.

Since TensorFlow 2.16 the ``tf.compat.v1.nn.rnn_cell`` classes come from the legacy Keras package, tf-keras,
and only when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported. ``tf.contrib`` is gone;
``tf.contrib.rnn.BasicRNNCell`` of TF 1.4 is this same class.
"""
import contextlib
import os
import re
import sys
import tempfile
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


# What TensorFlow's C++ side prints while it loads, before it reads TF_CPP_MIN_LOG_LEVEL: information only.
_LOADING_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)|"
                            r"^[IW]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_\w+)\.cc:\d+\]|"
                            r"^To enable the following instructions|^\s*$")


def import_quiet_tensorflow():
    """``import_tensorflow()`` without the chatter, for the command line and the notebook
    (``TF_CPP_MIN_LOG_LEVEL=0`` in the environment shows it all).

    TensorFlow's deprecation notices for the source's API are silenced: using that API is the point here. What
    TensorFlow prints on stderr while loading is held back; any line that is not known start-up noise is passed
    on, and everything is passed on if loading fails.
    """
    quiet = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") != "0"
    warnings.filterwarnings("ignore", message=r".*BasicRNNCell. is deprecated", category=UserWarning)
    if not quiet or "tensorflow" in sys.modules:
        tf = import_tensorflow()
    else:
        held = []
        try:
            with _held_stderr(held):
                tf = import_tensorflow()
        except Exception:  # a failure to load: everything it printed may tell why (a signal is no failure)
            sys.stderr.write("".join(held))
            raise
        sys.stderr.write("".join(line for line in held if not _LOADING_NOISE.search(line)))
    tf.get_logger().setLevel("ERROR")
    return tf


@contextlib.contextmanager
def _held_stderr(held):
    """Send file descriptor 2 (where C++ code writes) to a temporary file; afterwards ``held`` has its lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            held.extend(file.read().decode("utf-8", "replace").splitlines(keepends=True))
