"""echo_rnn_tf1: the 2017 TensorFlow 1.4 Echo-RNN notebook, reproduced bit for bit on today's TensorFlow.

A random binary series is fed to a 4-unit ``BasicRNNCell`` through ``dynamic_rnn``; the network learns to
echo its input ``echo_step`` = 3 steps later. Importing this package sets ``TF_USE_LEGACY_KERAS=1`` (when
TensorFlow is not imported yet and tf-keras is installed), which the source's ``BasicRNNCell`` needs on
TensorFlow >= 2.16.
"""
from .tfcompat import prefer_legacy_keras

prefer_legacy_keras()

from .config import Config, ConfigError  # noqa: E402

__all__ = ["Config", "ConfigError"]
