"""Bit-identity with the source: the package's losses equal those of the source's own code, seeded the same way.

The oracle (echo_rnn_tf1/source_2017.py) is the 2017 notebook ported only as far as TensorFlow 2 requires, run in a
process of its own with eager execution off, as a TF1 port would be. The package builds its graph in a private
tf.Graph() with eager execution on. Every loss must be equal: no tolerance.
"""

import numpy as np
import pytest

from echo_rnn_tf1.config import Config
from echo_rnn_tf1.failures import MachineError
from echo_rnn_tf1 import oracle
from echo_rnn_tf1.oracle import OracleError, SourceRun
from echo_rnn_tf1.train import train


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")  # on the worker that makes conftest's epochs for test_tf2, doctor, ...
@pytest.mark.parametrize("seed", [0, 1])
def test_one_epoch_is_bit_identical_to_the_source(seed, faithful_epoch, source_epoch):
    expected, oracle_stdout = source_epoch(seed)
    got, lines = faithful_epoch(seed)  # train(Config(num_epochs=1), seed), as float32
    assert got.shape == expected.shape == (1000,)
    assert got.tobytes() == expected.tobytes()
    # The log lines are the source's own print() output, character for character.
    assert "\n".join(lines) + "\n" == oracle_stdout


def test_same_seed_twice_is_identical():
    first = train(Config(num_epochs=1, total_series_length=5000), 7, log=lambda line: None)
    second = train(Config(num_epochs=1, total_series_length=5000), 7, log=lambda line: None)
    assert np.array(first).tobytes() == np.array(second).tobytes()


def test_different_seeds_differ():
    first = train(Config(num_epochs=1, total_series_length=500), 7, log=lambda line: None)
    second = train(Config(num_epochs=1, total_series_length=500), 8, log=lambda line: None)
    assert first[0] != second[0]


@pytest.mark.parametrize("code, error, says", [
    ("raise MemoryError", MachineError, "failed (exit 3): out of memory"),
    ("with open('/dev/full', 'w', buffering=1) as f:\n        f.write('x\\n')", MachineError,
     "failed (exit 3): disk full: No space left on device"),
    ("1 / 0", OracleError, "failed (exit 4): internal error (a bug in echo_rnn_tf1; ECHO_RNN_TF1_TRACEBACK=1 shows "
                           "the traceback): ZeroDivisionError: division by zero"),
    ("print('its last words', file=sys.stderr); sys.exit(2)", OracleError, "failed (exit 2): its last words"),
])
def test_a_failing_source_run_says_why_in_one_line(code, error, says, monkeypatch):
    # The child reports a failure as a command does, and the exit code tells the machine's fault (3) from others.
    # (TensorFlow's import and the source's run replaced by the failure: 3 s a test less)
    runs_the_source = ("    with tfcompat.collector_paused():\n        import tensorflow\n"
                       '    runpy.run_module("echo_rnn_tf1.source_2017", run_name="__main__", alter_sys=True)\n')
    assert runs_the_source in oracle._RUN_SOURCE
    monkeypatch.setattr(oracle, "_RUN_SOURCE", oracle._RUN_SOURCE.replace(runs_the_source, f"    {code}\n"))
    with SourceRun(0, 1) as source:
        with pytest.raises(error) as raised:
            source.result(timeout=60)
    assert str(raised.value) == f"the source's code {says}"


def test_the_sources_run_killed_is_the_machine():
    # as the kernel's out-of-memory killer would kill it
    with SourceRun(0, 1) as source:
        source.process.kill()
        with pytest.raises(MachineError, match=r"^the source's code was killed by SIGKILL \(out of memory\?\)$"):
            source.result()


def test_the_source_not_finished_in_time_is_an_oracle_error_and_is_ended():
    with SourceRun(0, 1) as source:
        with pytest.raises(OracleError, match="did not finish in 0.1 s"):
            source.result(timeout=0.1)
        process = source.process
    assert process.poll() is not None  # ended on leaving, not left to train
