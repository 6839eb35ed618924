import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import echo_rnn_tf1  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports tensorflow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, cwd=None, **kwargs):
    """Run ``python -m echo_rnn_tf1 ARGS`` in a fresh process; return the CompletedProcess (text)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture
def tf():
    from echo_rnn_tf1.tfcompat import import_tensorflow

    return import_tensorflow()


def tensorflow_minor():
    """``(major, minor)`` of the TensorFlow the tests run on (read from its package, without importing it)."""
    from importlib import metadata

    from echo_rnn_tf1.tfcompat import import_tensorflow, minor_version

    for distribution in ("tensorflow", "tensorflow-cpu"):
        try:
            return minor_version(metadata.version(distribution))
        except metadata.PackageNotFoundError:
            pass
    return minor_version(import_tensorflow().__version__)


def _needs_tf_keras():
    from echo_rnn_tf1.tfcompat import LEGACY_KERAS_FROM

    return pytest.mark.skipif(tensorflow_minor() < LEGACY_KERAS_FROM,
                              reason="up to TensorFlow 2.15 Keras 2 is built in: there is no tf-keras to miss")


needs_tf_keras = _needs_tf_keras()  # for tests of the tf-keras world (TensorFlow 2.16 on)
