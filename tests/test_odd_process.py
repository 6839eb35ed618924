"""A command started in an odd process ends as it would in a plain one: with stdout or stderr closed (``>&-``), its
own exit code, not a traceback's 1; with an unknown matplotlib backend asked for, its pictures drawn. A run folder
that TensorFlow cannot save in is refused before training; a file size limit (``ulimit -f``) is the machine's; a
terminal that hung up is written to no more."""
import errno
import json
import os
import resource
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_RUN
from echo_rnn_tf1 import failures
from echo_rnn_tf1.failures import describe

REFERENCE = os.path.join(ROOT, "echo_rnn_tf1", "reference_2017.log")


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
    assert in_shell(f'compare "{REFERENCE}" >&-').returncode == 0  # MATCH, unread
    assert in_shell(f'compare "{REFERENCE}" "{REFERENCE}" >&- 2>&-').returncode == 0
    assert in_shell(f'compare "{REFERENCE}" <&-').returncode == 0


@pytest.mark.slow
def test_a_run_with_both_outputs_closed_and_a_bogus_backend_finishes_with_its_pictures(tmp_path):
    result = in_shell(f'{" ".join(map(str, TINY_RUN))} --seed 0 --out "{tmp_path / "run"}" >&- 2>&-',
                      MPLBACKEND="bogus")
    assert result.returncode == 0 and result.stdout == result.stderr == ""
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished" and info["stage"] == "done"
    for picture in ("loss.png", "predictions.png"):
        assert picture in info["files"] and (tmp_path / "run" / picture).read_bytes()[:4] == b"\x89PNG"


def test_a_run_folder_whose_name_is_not_utf8_is_refused_before_training(tmp_path, cli):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/odd\xffA")  # a Latin-1 byte, as a file system may hold
    result = cli(*TINY_RUN, "--seed", 0, "--out", out)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"echo_rnn_tf1: error: --out {os.fsencode(out)!r}: not UTF-8, and TensorFlow saves a "
                             f"checkpoint only under a UTF-8 path\n")
    assert os.listdir(tmp_path) == []


def test_a_file_size_limit_is_the_machines_failure():
    assert describe(OSError(errno.EFBIG, os.strerror(errno.EFBIG), "run/losses.csv")) == (
        3, "file size limit reached: run/losses.csv: File too large")


@pytest.mark.slow
def test_a_file_size_limit_while_tensorflow_writes_is_the_machines_failure(tmp_path, cli):
    # 70 KiB, as `ulimit -f 70` sets it (here, for this process while the command runs in it): the run.json reserve
    # (64 KiB) and an epoch's losses.csv (18 KiB) fit, the checkpoint's .meta (73 KiB) does not; TensorFlow says so
    # in its own words. (Python ignores SIGXFSZ, which would otherwise end the process.)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (70 * 1024, hard))
    try:
        result = cli("--num-epochs", 1, "--seed", 0, "--out", tmp_path / "run")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1].startswith("echo_rnn_tf1: error: file size limit reached (TensorFlow: ")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and info["stage"] == "checkpoint" and info["cause"].startswith("file size")


def test_a_terminal_that_hung_up_is_written_to_no_more():
    # What a run's stdout is once its terminal closed (or its ssh dropped): a pseudo-terminal whose other end is gone,
    # where every write fails with EIO. The command goes on to record how it ends (SIGHUP: exit 129).
    controller, terminal = os.openpty()
    stream = open(terminal, "w")
    safe = failures._ClosedPipeSafe(stream)
    os.close(controller)
    with pytest.raises(OSError):  # (EIO, as written without the wrapper)
        stream.write("a line\n")
        stream.flush()
    safe.write("a line\n")
    safe.flush()
    assert os.readlink(f"/proc/self/fd/{terminal}") == os.devnull
    stream.close()
