"""One rule for every command: a failure is one line on stderr naming what and why, with the documented exit code
(0 done / match, 1 a result, 2 bad input, 3 the machine, 4 a bug, 128 + N a signal), never a traceback."""
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, TINY_RUN, one_error_line, run_patched, started
from echo_rnn_tf1 import cli
from echo_rnn_tf1.failures import TRACEBACK_VARIABLE, Interrupted, MachineError

PASTED_2017 = os.path.join(ROOT, "tests", "data", "pasted_2017.txt")


def _raising(error):
    def command(argv):
        raise error
    return command


@pytest.mark.parametrize("error, code, says", [
    (MemoryError(), 3, "error: out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "run/losses.csv"), 3,
     "error: disk full: run/losses.csv: No space left on device"),
    (OSError(errno.EIO, "Input/output error"), 3, "error: I/O error: Input/output error"),
    (MachineError("--state-size 100000: the run needs at least 373 GiB"), 3, "error: --state-size 100000"),
    (ImportError("libtensorflow_cc.so.2: failed to map segment from shared object"), 3,  # (measured: ulimit -v 1000000)
     "error: out of memory (loading libtensorflow_cc.so.2: failed to map segment from shared object)"),
    (PermissionError(errno.EACCES, "Permission denied", "notes/a.log"), 2, "error: notes/a.log: Permission denied"),
    (ZeroDivisionError("division by zero"), 4, "error: internal error (a bug in echo_rnn_tf1; "
                                               "ECHO_RNN_TF1_TRACEBACK=1 shows the traceback): ZeroDivisionError"),
    (RecursionError("maximum recursion depth exceeded"), 4, "internal error"),
    (KeyboardInterrupt(), 130, "echo_rnn_tf1: SIGINT received; stopped"),
    (Interrupted(signal.SIGTERM), 143, "echo_rnn_tf1: SIGTERM received; stopped"),
])
def test_every_failure_is_one_line_with_its_exit_code(monkeypatch, capsys, error, code, says):
    monkeypatch.setitem(cli.COMMANDS, "compare", _raising(error))
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    assert cli.main(["compare", "x"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert one_error_line(captured.err) == captured.err.strip() and says in captured.err


def test_no_usable_temporary_folder_is_the_machine(monkeypatch, capsys):
    # tempfile's own error, where every folder it would try is full, read-only or missing
    monkeypatch.setattr(tempfile, "_candidate_tempdir_list", lambda: ["/nonexistent/echo_rnn_tf1"])
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setitem(cli.COMMANDS, "compare", lambda argv: tempfile.TemporaryFile())
    assert cli.main(["compare", "x"]) == 3
    assert one_error_line(capsys.readouterr().err).startswith(
        "echo_rnn_tf1: error: no usable temporary folder: No usable temporary directory found in ")


def test_a_bug_names_where_it_is_and_can_show_its_traceback(monkeypatch, capsys):
    def buggy(argv):
        return {}["missing"]

    monkeypatch.setitem(cli.COMMANDS, "compare", buggy)
    assert cli.main(["compare"]) == 4
    # where: the innermost frame of the package (the test's own function is not one)
    assert "internal error" in (err := capsys.readouterr().err) and "KeyError: 'missing' at cli.py:" in err
    monkeypatch.setenv(TRACEBACK_VARIABLE, "1")
    assert cli.main(["compare"]) == 4
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.slow
def test_tensorflow_out_of_memory_is_the_machine(tf, monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "compare", _raising(tf.errors.ResourceExhaustedError(None, None, "OOM when "
                                                                                          "allocating tensor")))
    assert cli.main(["compare"]) == 3
    assert "error: out of memory (TensorFlow: OOM when allocating tensor)" in capsys.readouterr().err


def _closed_stdout(*args):
    """``python -m echo_rnn_tf1 ARGS`` whose stdout is a pipe its reader closed before anything was written."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    process = subprocess.Popen([sys.executable, "-m", "echo_rnn_tf1", *map(str, args)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.stdout.close()  # as `| head -n 0` would; every write finds the pipe closed
        stderr = process.stderr.read()
        return process.wait(timeout=600), stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_compare_into_a_closed_pipe_exits_with_the_verdict():
    code, stderr = _closed_stdout("compare", PASTED_2017)
    assert code == 0 and stderr == ""
    bash = subprocess.run(["bash", "-c", f'"{sys.executable}" -m echo_rnn_tf1 compare "{PASTED_2017}" | head -n 1; '
                                         'echo "exit ${PIPESTATUS[0]}"'],
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=60)
    assert bash.stdout.splitlines() == [bash.stdout.splitlines()[0], "exit 0"] and bash.stderr == ""


@pytest.mark.slow
def test_training_into_a_closed_pipe_trains_to_the_end(tmp_path):
    out = tmp_path / "run"
    code, stderr = _closed_stdout(*TINY_RUN, "--seed", 0, "--out", out)
    assert code == 0 and "Traceback" not in stderr and "echo_rnn_tf1:" not in stderr, stderr
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "finished" and info["steps_done"] == 10
    assert (out / "model.ckpt-10.index").exists() and (out / "predictions.png").exists()
    assert (out / "train.log").read_text().startswith("New data, epoch 0\nStep 0 Batch loss ")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_evaluate_works_is_one_line(tiny_run, signum):
    with started("evaluate", tiny_run) as process:
        time.sleep(1.0)  # evaluate is loading TensorFlow (2 s or more) by now
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signum
    assert one_error_line(stderr) == f"echo_rnn_tf1: {signal.Signals(signum).name} received; stopped"


# A patch for run_patched: the signal arrives as the command line's modules load, before the command starts.
SIGNAL_AS_IT_LOADS = """import importlib.abc, os, signal, sys
class SignalOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "echo_rnn_tf1.runs":  # (cli's import, 0.1 s into the process)
            os.kill(os.getpid(), signal.{name})
sys.meta_path.insert(0, SignalOnImport())"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_line_loads_is_one_line(signum):
    # There, Python printed KeyboardInterrupt's traceback (Ctrl-C in a process's first 0.1 s), or died of SIGTERM
    # without a word.
    result = run_patched(SIGNAL_AS_IT_LOADS.format(name=signum.name), "--help", timeout=60)
    assert result.returncode == 128 + signum and result.stdout == ""
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: {signum.name} received; stopped"


def test_a_signal_while_tensorflow_loads_is_acted_on_once_it_has_loaded(monkeypatch):
    # Raised in the middle of an extension module's import, a signal broke it: "ImportError: initialization failed",
    # exit 4, and TensorFlow's start-up noise printed (predict: 1 run in 16, SIGTERM at a random moment of its first 2 s).
    from echo_rnn_tf1 import failures, tfcompat

    original, loaded = tfcompat.import_tensorflow, []

    def import_tensorflow():
        os.kill(os.getpid(), signal.SIGTERM)
        loaded.append(True)
        return original()

    monkeypatch.setattr(tfcompat, "import_tensorflow", import_tensorflow)
    with pytest.raises(Interrupted, match="SIGTERM"), failures.stopping_signals():
        tfcompat.import_quiet_tensorflow()
    assert loaded, "the import went on to its end"


def test_a_signal_caught_on_its_way_is_still_the_exit_code(monkeypatch, capsys):
    # A library's ``except BaseException`` can catch the Interrupted a signal raised (TensorFlow's graph code did, in
    # envelope --engine tf2); the command then goes on to its end, and its exit code must still say it was stopped.
    def command(argv):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except BaseException:
            pass
        return 0

    monkeypatch.setitem(cli.COMMANDS, "compare", command)
    assert cli.main(["compare", "x"]) == 143
    assert one_error_line(capsys.readouterr().err) == "echo_rnn_tf1: SIGTERM received; stopped"
