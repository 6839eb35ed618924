"""An envelope is whole or not there: a stop or a failure while its files are written removes what was written;
a signal that Python could not raise where it arrived is still the command's exit code."""
import errno
import signal

import numpy as np
import pytest

from conftest import one_error_line
from echo_rnn_tf1 import envelope
from echo_rnn_tf1.failures import Interrupted


@pytest.fixture
def trained(monkeypatch):
    """The faithful engine's training replaced by two seeds' made-up losses: the test is about what follows."""
    steps = np.arange(5000)
    losses = np.stack([0.7 * np.exp(-steps / 300) + 1e-4, 0.7 * np.exp(-steps / 400) + 2e-4]).astype(np.float32)
    monkeypatch.setattr(envelope, "train_seeds", lambda seeds, jobs, on_done=None: losses)


@pytest.mark.parametrize("fault, code, line", [
    (Interrupted(signal.SIGINT), 130, "echo_rnn_tf1: SIGINT received; writing stopped, no envelope written"),
    (OSError(errno.ENOSPC, "No space left on device"), 3, "disk"),
], ids=["Ctrl-C", "full disk"])
def test_a_stop_or_a_failure_while_writing_leaves_no_half_envelope(trained, monkeypatch, cli, tmp_path, fault, code,
                                                                   line):
    def fail(figure, path):  # the picture comes after envelope.csv, seeds.csv, losses.npy and the percentiles
        raise fault

    monkeypatch.setattr("echo_rnn_tf1.plots.save_figure", fail)
    result = cli("envelope", "--seeds", 2, "--out", tmp_path / "new")
    assert result.returncode == code
    assert line in one_error_line(result.stderr).lower() if code == 3 else one_error_line(result.stderr) == line
    assert not (tmp_path / "new").exists()  # made by the command, left empty, removed

    (tmp_path / "empty").mkdir()
    assert cli("envelope", "--seeds", 2, "--out", tmp_path / "empty").returncode == code
    assert list((tmp_path / "empty").iterdir()) == []  # the user's folder is kept, as it was


def test_a_signal_raised_inside_a_finalizer_is_the_exit_code(trained, monkeypatch, cli, tmp_path):
    # A signal handler's exception inside a finalizer is lost to the code that runs (Python prints it as
    # "Exception ignored"); the command then finishes, and its exit code must still say it was interrupted.
    class RaisesWhenCollected:
        def __del__(self):
            raise Interrupted(signal.SIGINT)

    save = envelope.save

    def save_and_collect(*args, **kwargs):
        RaisesWhenCollected()  # collected at once
        return save(*args, **kwargs)

    monkeypatch.setattr(envelope, "save", save_and_collect)
    result = cli("envelope", "--seeds", 2, "--out", tmp_path / "e")
    assert result.returncode == 130
    assert "Exception ignored" not in result.stderr and one_error_line(result.stderr).startswith("echo_rnn_tf1: SIGINT")
