import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import echo_rnn_tf1  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before anything imports tensorflow)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_RUN = ("--num-epochs", 1, "--total-series-length", 500)  # 10 steps


def run_cli(*args, cwd=None, env=None, **kwargs):
    """Run ``python -m echo_rnn_tf1 ARGS`` in a fresh process (in ``env``, default this one's); return the
    CompletedProcess (text)."""
    env = dict(os.environ if env is None else env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=600, **kwargs)


def run_patched(patch, *args, timeout=600):
    """``python -m echo_rnn_tf1 ARGS`` with ``patch`` (Python source) run first: a fault injected where it cannot
    be made for real."""
    code = f"{patch}\nimport sys\nfrom echo_rnn_tf1.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def started(*args, **kwargs):
    """``python -m echo_rnn_tf1 ARGS`` started in a process group of its own; the group is killed on the way out."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=ROOT, env=env,
                               start_new_session=True, text=True,
                               **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs})
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def wait_until(condition, process, timeout=120):
    """Poll ``condition()`` until it holds, failing if ``process`` ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and process.poll() is None, "waited in vain"
        time.sleep(0.05)


def grown(path, size):
    """A condition: ``path`` exists and holds ``size`` bytes or more."""
    return lambda: path.exists() and path.stat().st_size >= size


def one_error_line(stderr):
    """The one line a failure prints, after asserting that there is exactly one and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("echo_rnn_tf1:")]
    assert len(lines) == 1, stderr
    return lines[0]


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
