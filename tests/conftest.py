import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import echo_rnn_tf1  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports tensorflow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, cwd=None, env=None, **kwargs):
    """Run ``python -m echo_rnn_tf1 ARGS`` in a fresh process (in ``env``, default this one's); return the
    CompletedProcess (text)."""
    env = dict(os.environ if env is None else env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture
def tf():
    from echo_rnn_tf1.tfcompat import import_tensorflow

    return import_tensorflow()
