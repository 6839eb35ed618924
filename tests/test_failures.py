"""One rule for every command: a failure is one line on stderr naming what and why, with the documented exit code
(0 done / match, 1 a result, 2 bad input, 3 the machine, 4 a bug, 128 + N a signal), never a traceback; and a
command started in an odd process ends as it would in a plain one: with stdout or stderr closed (``>&-``), its own
exit code; its output into a closed pipe or a terminal that hung up, dropped; with an unknown matplotlib backend
asked for, its pictures drawn. (Signals: test_stopping.)"""
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, TINY_RUN, TINY_RUN_DRAWN, one_error_line
from echo_rnn_tf1 import cli
from echo_rnn_tf1.failures import TRACEBACK_VARIABLE, BadInput, Interrupted, MachineError, PackageError, exit_code_and_line

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
    (MachineError("the machine cannot"), 3, "error: the machine cannot"),
    (OSError(errno.EFBIG, os.strerror(errno.EFBIG), "run/losses.csv"), 3,  # (`ulimit -f`)
     "error: file size limit reached: run/losses.csv: File too large"),
    (ImportError("libtensorflow_cc.so.2: failed to map segment from shared object"), 3,  # (measured: ulimit -v 1000000)
     "error: out of memory (loading libtensorflow_cc.so.2: failed to map segment from shared object)"),
    (RuntimeError("can't start new thread"), 3, "error: out of memory (can't start new thread)"),  # (ulimit -v 1500000)
    (PermissionError(errno.EACCES, "Permission denied", "notes/a.log"), 2, "error: notes/a.log: Permission denied"),
    (ZeroDivisionError("division by zero"), 4, "error: internal error (a bug in echo_rnn_tf1; "
                                               "ECHO_RNN_TF1_TRACEBACK=1 shows the traceback): ZeroDivisionError"),
    (RecursionError("maximum recursion depth exceeded"), 4, "internal error"),
    (KeyboardInterrupt(), 130, "echo_rnn_tf1: SIGINT received; stopped"),
    (Interrupted(signal.SIGTERM), 143, "echo_rnn_tf1: SIGTERM received; stopped"),
    # a line break in our own words (a path may hold one) is shown, not obeyed: the line is whole
    (BadInput("runs/two\nlines: no such run folder"), 2, "error: runs/two\\nlines: no such run folder"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "two\nlines.log"), 2,
     "error: two\\nlines.log: No such file or directory"),
    # a package missing, or of another version: the environment, not the input nor the machine
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"), 5,
     "error: matplotlib is not installed: pip install matplotlib (in a clone: -r requirements.txt)"),
    (PackageError("tf-keras 2.20.0 does not fit TensorFlow 2.21.0"), 5, "error: tf-keras 2.20.0 does not fit"),
    (ModuleNotFoundError("No module named 'nothing_of_ours'", name="nothing_of_ours"), 4, "internal error"),
    (ImportError("cannot import name 'multiarray'", name="numpy._core"), 5,  # a package broken in place
     "error: numpy is installed but broken (cannot import name 'multiarray'): reinstall it: pip install "
     "--force-reinstall numpy"),
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


# What TensorFlow raises when an op fails: where in the graph first, then what went wrong (here, saving a checkpoint
# on a full disk, as test_failed_run's full disk gets it); the one line says what went wrong.
GRAPH_ERROR = ("Graph execution error:\n\nDetected at node 'save/SaveV2' defined at (most recent call last):\n"
               "    File \"x.py\", line 1, in <module>\nNode: 'save/SaveV2'\n"
               "run/model.ckpt-10.data-00000-of-00001.tempstate42; {}\n\t [[{{node save/SaveV2}}]]\n")


@pytest.mark.slow
@pytest.mark.parametrize("error, says", [
    ("ResourceExhaustedError", "out of memory (TensorFlow: OOM when allocating tensor)"),
    ("ResourceExhaustedError:No space left on device", "disk full (TensorFlow: run/model.ckpt-10.data-00000-of-00001."
                                                       "tempstate42; No space left on device)"),
    ("UnknownError:File too large", "file size limit reached (TensorFlow: run/model.ckpt-10.data-00000-of-00001."
                                    "tempstate42; File too large)"),
    ("InternalError:Could not allocate ndarray", "out of memory (TensorFlow: run/model.ckpt-10.data-00000-of-00001."
                                                 "tempstate42; Could not allocate ndarray)"),  # (under ulimit -v)
])
def test_tensorflow_failing_for_want_of_memory_or_disk_is_the_machine(tf, monkeypatch, capsys, error, says):
    name, _, reason = error.partition(":")
    message = GRAPH_ERROR.format(reason) if reason else "OOM when allocating tensor"
    monkeypatch.setitem(cli.COMMANDS, "compare", _raising(getattr(tf.errors, name)(None, None, message)))
    assert cli.main(["compare"]) == 3
    assert one_error_line(capsys.readouterr().err) == f"echo_rnn_tf1: error: {says}"


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
    assert info["status"] == "finished" and info["stage"] == "done" and info["steps_done"] == 10
    assert (out / "model.ckpt-10.index").exists()
    assert (out / "train.log").read_text().startswith("New data, epoch 0\nStep 0 Batch loss ")



def in_shell(command_line, **environ):
    """Run ``python -m echo_rnn_tf1 ARGS`` as a shell line (to close a stream with ``>&-``), with ``environ`` added
    to the environment; the CompletedProcess."""
    return subprocess.run(["bash", "-c", f'"{sys.executable}" -m echo_rnn_tf1 {command_line}'], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, **environ), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("closed, said_on", [(">&-", "stderr"), ("2>&-", None), ("<&-", "stderr")])
def test_bad_input_with_a_closed_stream_is_exit_2(closed, said_on):
    result = in_shell(f"--num-epochs 0 {closed}")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == ("echo_rnn_tf1: error: --num-epochs 0: must be a positive integer\n" if said_on else "")


def test_a_verdict_with_a_standard_stream_closed_keeps_its_exit_code():
    assert in_shell(f'compare "{PASTED_2017}" >&-').returncode == 0  # MATCH, unread
    assert in_shell(f'compare "{PASTED_2017}" "{PASTED_2017}" >&- 2>&-').returncode == 0
    assert in_shell(f'compare "{PASTED_2017}" <&-').returncode == 0


@pytest.mark.slow
def test_a_run_with_both_outputs_closed_and_a_bogus_backend_finishes_with_its_pictures(tmp_path):
    result = in_shell(f'{" ".join(map(str, TINY_RUN_DRAWN))} --seed 0 --out "{tmp_path / "run"}" >&- 2>&-',
                      MPLBACKEND="bogus")
    assert result.returncode == 0 and result.stdout == result.stderr == ""
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished" and info["stage"] == "done"
    for picture in ("loss.png", "predictions.png"):
        assert picture in info["files"] and (tmp_path / "run" / picture).read_bytes()[:4] == b"\x89PNG"


def test_a_command_whose_terminal_hung_up_ends_with_its_own_exit_code():
    # A run's stdout once its terminal closed (or its ssh dropped): a pseudo-terminal whose other end is gone, where
    # every write fails with EIO. The command's output is dropped, and it goes on to its end.
    controller, terminal = os.openpty()
    os.close(controller)
    try:
        result = subprocess.run([sys.executable, "-m", "echo_rnn_tf1", "compare", PASTED_2017], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=ROOT), stdout=terminal, stderr=subprocess.PIPE,
                                text=True, timeout=60)  # (compare loads no TensorFlow: 0.3 s)
    finally:
        os.close(terminal)
    assert result.returncode == 0 and result.stderr == ""


def test_the_one_line_of_an_error_is_one_line_whatever_its_message():
    # (what every command prints goes through describe: see the table above)
    for error in (BadInput("a\nb\rc"), MachineError("a\nb"), OSError(errno.EIO, "Input/output error", "a\nb")):
        code, line = exit_code_and_line(error)
        assert "\n" not in line and "\r" not in line and "a\\nb" in line
