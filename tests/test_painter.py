"""A run's pictures drawn in a second process: the same files, byte for byte, as drawn here; what stops a picture
there is raised here as it would be here; a second process that dies is drawn around, and none outlives its run."""
import errno
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, alive
from echo_rnn_tf1 import painter as painter_module
from echo_rnn_tf1 import plots
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.failures import Interrupted, describe
from echo_rnn_tf1.logs import parse_log, read_reference
from echo_rnn_tf1.painter import Painter, answer_for, error, second_process


def pictures():
    """``(figure, args)`` of each picture of a run with the source's settings, on made-up losses and predictions."""
    rng = np.random.default_rng(0)
    losses = np.exp(-np.linspace(0, 8, 5000)) * rng.uniform(0.5, 1.5, 5000).astype(np.float32)
    bits = rng.integers(0, 2, (5, 60))
    return [("loss_figure", (losses, 1000, parse_log(read_reference(), "2017 log"))),
            ("predictions_figure", (bits, np.roll(bits, 3, axis=1), rng.random((5, 60), np.float32), Config()))]


@pytest.fixture
def painter():
    with Painter(second_process()) as painter:
        yield painter


def test_pictures_drawn_there_are_the_pictures_drawn_here(tmp_path, painter):
    for figure, args in pictures():
        plots.save_figure(getattr(plots, figure)(*args), tmp_path / f"here-{figure}.png")
        painter.draw(figure, tmp_path / f"there-{figure}.png", *args)
        painter.wait()
        assert (tmp_path / f"there-{figure}.png").read_bytes() == (tmp_path / f"here-{figure}.png").read_bytes()
    assert painter.process.poll() is None  # drawn there: it still serves


def test_what_stops_a_picture_there_is_raised_as_it_would_be_here(tmp_path, painter):
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "loss.png"  # in a folder that is a file
    figure, args = pictures()[0]
    with pytest.raises(OSError) as here:
        plots.save_figure(getattr(plots, figure)(*args), path)
    painter.draw(figure, path, *args)
    with pytest.raises(OSError) as there:
        painter.wait()
    assert there.value.errno == here.value.errno == errno.ENOTDIR and type(there.value) is type(here.value)
    said = [(code, re.sub(r"\.tmp\d+", ".tmp", line))  # (the temporary file's name holds the process id)
            for code, line in (describe(there.value), describe(here.value))]
    assert said[0] == said[1] and said[0][0] == 2


@pytest.mark.parametrize("exception", [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/run/loss.png"),
                                       OSError(errno.EIO, os.strerror(errno.EIO)), MemoryError(),
                                       MemoryError("bad allocation")], ids=["ENOSPC", "EIO", "MemoryError", "bad_alloc"])
def test_an_error_there_is_reported_as_the_same_error_here(exception):
    assert describe(error(answer_for(exception))) == describe(exception)


def test_a_bug_there_is_reported_as_a_bug_naming_it():
    code, line = describe(error(answer_for(ZeroDivisionError("division by zero"))))
    assert code == 4 and "ZeroDivisionError: division by zero (drawing a picture)" in line


@pytest.mark.parametrize("when", ["before the picture", "during the picture"])
def test_a_second_process_that_died_is_drawn_around(tmp_path, painter, when):
    figure, args = pictures()[1]
    plots.save_figure(getattr(plots, figure)(*args), tmp_path / "here.png")
    if when == "before the picture":
        painter.process.kill()
        painter.process.wait()
    painter.draw(figure, tmp_path / "there.png", *args)
    if when == "during the picture":
        painter.process.kill()  # (it may be loading matplotlib, or drawing: either way, no answer comes)
    painter.wait()
    assert painter.process is None
    assert sorted(os.listdir(tmp_path)) == ["here.png", "there.png"]  # no temporary file left
    assert (tmp_path / "there.png").read_bytes() == (tmp_path / "here.png").read_bytes()


def in_fresh_interpreter(code):
    """Run ``code`` in a new interpreter (no TensorFlow loaded); return its stdout's lines."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_second_process_only_where_it_can_save_time():
    code = ("import os, sys\nfrom echo_rnn_tf1.painter import Painter\n"
            "def starts():\n    with Painter.start() as p:\n        print(p.process is not None)\n"
            "starts()\n"
            "sys.modules['tensorflow'] = sys; starts(); del sys.modules['tensorflow']\n"  # (as if loaded)
            "import matplotlib; starts(); del sys.modules['matplotlib']\n"
            "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); starts()\n")
    fresh, tensorflow, matplotlib, one_core = in_fresh_interpreter(code)
    assert fresh == ("True" if len(os.sched_getaffinity(0)) > 1 else "False")
    assert tensorflow == matplotlib == one_core == "False"


def test_the_second_process_dies_with_its_run():
    code = ("import os, signal\nfrom echo_rnn_tf1.painter import Painter, second_process\n"
            "p = Painter(second_process())\nprint(p.process.pid, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL
    pid = int(result.stdout)
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, "the second process outlived its run"
        time.sleep(0.05)


def test_what_starts_the_interpreter_cannot_pass_for_an_answer(tmp_path):
    # A sitecustomize that prints to stdout, here a line that is JSON: answers come on a pipe of their own.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text('print("null")\nprint(0)\n')
    figure, args = pictures()[1]
    plots.save_figure(getattr(plots, figure)(*args), tmp_path / "here.png")
    code = ("import sys\nfrom test_painter import pictures\nfrom echo_rnn_tf1.painter import Painter, second_process\n"
            "figure, args = pictures()[1]\n"
            "with Painter(second_process()) as p:\n    p.draw(figure, sys.argv[1], *args)\n    p.wait()\n"
            "    print(p.process is not None)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "site"), ROOT, os.path.join(ROOT, "tests")]))
    result = subprocess.run([sys.executable, "-c", code, tmp_path / "there.png"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "True"  # drawn there, answered there
    assert (tmp_path / "there.png").read_bytes() == (tmp_path / "here.png").read_bytes()


class Signalled:
    """A run's ``DeferredSignals`` after a SIGINT came."""

    def pending(self):
        return True

    def check(self):
        raise Interrupted(signal.SIGINT)


def test_a_signal_stops_the_wait_for_a_stalled_second_process(tmp_path, monkeypatch):
    monkeypatch.setattr(painter_module, "SIGNAL_GRACE_SECONDS", 0.5)
    figure, args = pictures()[0]
    with Painter(second_process(), Signalled()) as painter:
        os.kill(painter.process.pid, signal.SIGSTOP)  # stalled: it never answers
        painter.draw(figure, tmp_path / "loss.png", *args)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            painter.wait()
        assert time.monotonic() - started < 5
        assert painter.process is None  # ended
    assert os.listdir(tmp_path) == []


def test_a_closed_painter_leaves_no_open_file(tmp_path):
    code = ("import gc, warnings\nwarnings.simplefilter('error')\nfrom echo_rnn_tf1.painter import Painter, "
            "second_process\np = Painter(second_process())\np.close()\ndel p\ngc.collect()\nprint('closed')\n")
    result = subprocess.run([sys.executable, "-X", "dev", "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "closed\n" and "ResourceWarning" not in result.stderr, \
        result.stderr
