"""The source's own loop as the oracle: ``source_2017.py`` run in a process of its own, its losses read back."""
import os
import subprocess
import sys
import tempfile

import numpy as np


class OracleError(RuntimeError):
    """The source's own code did not run to the end."""


def source_losses(seed, num_epochs, env=None, timeout=600):
    """``(losses as float32, stdout)`` of the source's code seeded with ``seed``, for ``num_epochs`` epochs.

    ``env``: the child's environment (default: this process's), e.g. with oneDNN settings to compare under.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "losses.txt")
        try:
            result = subprocess.run([sys.executable, "-m", "echo_rnn_tf1.source_2017", str(seed), str(num_epochs), out],
                                    env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise OracleError(f"the source's code did not finish in {timeout} s") from None
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            raise OracleError(f"the source's code failed (exit {result.returncode}): {last}")
        with open(out) as f:
            return np.array(f.read().split(), dtype=np.float32), result.stdout
