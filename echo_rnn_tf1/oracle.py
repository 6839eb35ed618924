"""The source's own loop as the oracle: ``source_2017.py`` run in a process of its own, its losses read back."""
import contextlib
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
    """Python ``code``, given ``args`` (its ``sys.argv[1:]``), in a process of its own started when this is made, so
    that other work goes on meanwhile. A failure there is one line on its stderr and the package's exit code for it
    (3: the machine); once ``code`` is done it leaves at once (the interpreter's teardown once TensorFlow is loaded
    takes most of a second). Its output goes to temporary files, so nothing it writes waits for a reader.
    ``wait(timeout)`` returns ``(exit code, stdout, stderr)``, or None if it has not finished by then. Leaving the
    context ends it if it still runs."""

    _WRAPPED = ("import os, sys\nfrom echo_rnn_tf1.failures import report\ntry:\n{code}\nexcept BaseException as e:\n"
                "    code = e.code if isinstance(e, SystemExit) else report(e)\nelse:\n    code = 0\n"
                "sys.stdout.flush(); sys.stderr.flush(); os._exit(code if isinstance(code, int) else 1)\n")

    def __init__(self, code, args=(), env=None, pass_fds=()):
        self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        program = self._WRAPPED.format(code="\n".join("    " + line for line in code.splitlines()))
        self.process = subprocess.Popen([sys.executable, "-c", program, *map(str, args)], env=env, text=True,
                                        stdout=self._out, stderr=self._err, pass_fds=pass_fds)

    def wait(self, timeout):
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for f in (self._out, self._err):
            f.seek(0)
        return code, self._out.read(), self._err.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._out.close()
        self._err.close()


class SourceRun:
    """The source's code for ``seed`` and ``num_epochs``, started in a process of its own when this is made;
    ``result(timeout)`` waits for it and returns what ``source_losses`` does. Leaving the context ends it if it
    still runs."""

    def __init__(self, seed, num_epochs, env=None):
        self._losses = tempfile.TemporaryFile("w+")  # (nameless: nothing is left behind, however this process ends)
        fd = self._losses.fileno()
        self.child = Child(_RUN_SOURCE, (seed, num_epochs, f"/dev/fd/{fd}"), env, pass_fds=(fd,))

    def result(self, timeout=600):
        finished = self.child.wait(timeout)
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
        self.child.__exit__(*exc)
        self._losses.close()
