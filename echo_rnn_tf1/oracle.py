"""The source's own loop as the oracle: ``source_2017.py`` run in a process of its own, its losses read back."""
import signal
import subprocess
import sys
import tempfile

import numpy as np

from .failures import EXIT_MACHINE, MachineError

# ``python -c _RUN_SOURCE SEED NUM_EPOCHS OUT``: the source's code untouched, TensorFlow loaded first as the command
# line loads it (``tfcompat.freeze_on_import``: the same modules, 0.5 s sooner); a failure is one line on stderr and
# the package's exit code for it (3: the machine), and the child leaves at once when done (the interpreter's
# teardown once TensorFlow is loaded takes most of a second).
_RUN_SOURCE = """\
import os, runpy, sys
from echo_rnn_tf1 import failures, tfcompat
try:
    with tfcompat.collector_paused():
        import tensorflow
    runpy.run_module("echo_rnn_tf1.source_2017", run_name="__main__", alter_sys=True)
    code = 0
except BaseException as e:
    code = e.code if isinstance(e, SystemExit) else failures.print_failure(e)
sys.stdout.flush(); sys.stderr.flush(); os._exit(code if isinstance(code, int) else 1)
"""


class OracleError(RuntimeError):
    """The source's own code did not run to the end."""


def source_losses(seed, num_epochs, env=None, timeout=600):
    """``(losses as float32, stdout)`` of the source's code seeded with ``seed``, for ``num_epochs`` epochs.

    ``env``: the child's environment (default: this process's), e.g. with oneDNN settings to compare under.
    """
    with SourceRun(seed, num_epochs, env) as source:
        return source.result(timeout)


class SourceRun:
    """The source's code for ``seed`` and ``num_epochs``, started in a process of its own when this is made, so that
    other work goes on meanwhile; ``result(timeout)`` waits for it and returns what ``source_losses`` does. Its
    output goes to nameless files, so nothing it writes waits for a reader. Leaving the context ends it if it
    still runs."""

    def __init__(self, seed, num_epochs, env=None):
        self.files = losses, out, err = [tempfile.TemporaryFile("w+") for _ in range(3)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _RUN_SOURCE, str(seed), str(num_epochs), f"/dev/fd/{losses.fileno()}"],
            env=env, text=True, stdout=out, stderr=err, pass_fds=(losses.fileno(),))

    def result(self, timeout=600):
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OracleError(f"the source's code did not finish in {timeout} s") from None
        losses, out, err = self.files
        for f in self.files:
            f.seek(0)
        if code < 0:  # (SIGKILL: what the kernel's out-of-memory killer sends)
            guess = " (out of memory?)" if code == -signal.SIGKILL else ""
            name = {s.value: s.name for s in signal.Signals}.get(-code, f"signal {-code}")
            raise MachineError(f"the source's code was killed by {name}{guess}")
        if code != 0:
            last = (err.read().strip().splitlines() or ["no message"])[-1].removeprefix("echo_rnn_tf1: error: ")
            failed = MachineError if code == EXIT_MACHINE else OracleError
            raise failed(f"the source's code failed (exit {code}): {last}")
        return np.array(losses.read().split(), dtype=np.float32), out.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for f in self.files:
            f.close()
