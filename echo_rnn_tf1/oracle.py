"""The source's own loop as the oracle: ``source_2017.py`` run in a process of its own, its losses read back."""
import contextlib
import os
import signal
import subprocess
import sys
import tempfile

import numpy as np

from .failures import EXIT_MACHINE, MachineError

# TensorFlow loaded first as the command line loads it (``tfcompat.freeze_on_import``): the same modules, 0.5 s sooner.
# (The package's import has set TF_USE_LEGACY_KERAS where tf-keras is installed, as the source's header does.)
TENSORFLOW_FIRST = "from echo_rnn_tf1 import tfcompat\nwith tfcompat.collector_paused():\n    import tensorflow\n"
# ``python -m echo_rnn_tf1.source_2017 SEED NUM_EPOCHS OUT``, the source's code untouched.
_RUN_SOURCE = (TENSORFLOW_FIRST +
               "import runpy\nrunpy.run_module('echo_rnn_tf1.source_2017', run_name='__main__', alter_sys=True)")


class OracleError(RuntimeError):
    """The source's own code did not run to the end."""


def source_losses(seed, num_epochs, env=None, timeout=600):
    """``(losses as float32, stdout)`` of the source's code seeded with ``seed``, for ``num_epochs`` epochs.

    ``env``: the child's environment (default: this process's), e.g. with oneDNN settings to compare under.
    """
    with SourceRun(seed, num_epochs, env) as source:
        return source.result(timeout)


def failure(code, stderr):
    """How a child process failed, in words: "was killed by SIGKILL", or "failed (exit 3): " and its last line."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    last = (stderr.strip().splitlines() or ["no message"])[-1]
    return f"failed (exit {code}): {last.removeprefix('echo_rnn_tf1: error: ')}"


class Child:
    """Python ``code``, given ``args`` (its ``sys.argv[1:]``) and the file descriptors ``pass_fds``, in a process of
    its own started when this is made, so that other work goes on meanwhile. It dies with this process, even by
    SIGKILL (``failures.die_with``), and once ``code`` is done it leaves at once, its output flushed: the
    interpreter's teardown once TensorFlow is loaded takes most of a second. A failure is one line on its stderr
    and the package's exit code for it (3: the machine). Its output goes to temporary files (nothing it writes can
    fill a pipe that nobody reads yet). ``wait(timeout)`` returns ``(exit code, stdout, stderr)``, or None if it has
    not finished by then. Leaving the context ends it if it still runs."""

    _FIRST = """\
import ctypes, os, sys
from echo_rnn_tf1.failures import die_with, report
die_with({parent})


def _leave(exit_code):
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)  # (C's buffers too: oneDNN prints through them)
    os._exit(exit_code)


sys.excepthook = lambda kind, error, traceback: _leave(report(error))
"""
    _LAST = "\n_leave(0)\n"

    def __init__(self, code, args=(), env=None, pass_fds=()):
        self._stdout, self._stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        try:
            program = self._FIRST.format(parent=os.getpid()) + code + self._LAST
            self._process = subprocess.Popen([sys.executable, "-c", program, *map(str, args)], env=env,
                                             stdout=self._stdout, stderr=self._stderr, pass_fds=pass_fds, text=True)
        except BaseException:
            self.close()
            raise

    def wait(self, timeout):
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        outputs = []
        for f in (self._stdout, self._stderr):
            f.seek(0)
            outputs.append(f.read())
        return (code, *outputs)

    def close(self):
        if getattr(self, "_process", None) is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stdout.close()
        self._stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SourceRun:
    """The source's code for ``seed`` and ``num_epochs``, started in a process of its own when this is made;
    ``result(timeout)`` waits for it and returns what ``source_losses`` does. Leaving the context ends it if it
    still runs."""

    def __init__(self, seed, num_epochs, env=None):
        self._losses = tempfile.TemporaryFile("w+")  # (nameless: nothing is left behind, however this process ends)
        fd = self._losses.fileno()
        try:
            self._child = Child(_RUN_SOURCE, (seed, num_epochs, f"/dev/fd/{fd}"), env, pass_fds=(fd,))
        except BaseException:
            self._losses.close()
            raise

    def result(self, timeout=600):
        finished = self._child.wait(timeout)
        if finished is None:
            raise OracleError(f"the source's code did not finish in {timeout} s")
        code, stdout, stderr = finished
        if code != 0:
            failed = MachineError if code < 0 or code == EXIT_MACHINE else OracleError
            guess = " (out of memory?)" if code == -signal.SIGKILL else ""  # (what the kernel's OOM killer sends)
            raise failed(f"the source's code {failure(code, stderr)}{guess}")
        self._losses.seek(0)
        return np.array(self._losses.read().split(), dtype=np.float32), stdout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._child.close()
        self._losses.close()
