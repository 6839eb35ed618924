"""A run's pictures, drawn in a second process so that they cost the run little time beyond its training.

The second process starts with the run, before TensorFlow loads. While this one loads TensorFlow and trains
(on one core), it imports matplotlib, a third of the pictures' cost. (Drawing each picture once beforehand, unsaved,
made the real ones 0.03 s faster at most, for 0.19 s of work: not done.)
A picture is then a request on the second process's stdin: a function of ``plots``, its arguments and a file, as
a line of JSON followed by the arrays' bytes (no pickle). The answer, a line of JSON on a pipe of its own, comes
once the file is written (atomically, by ``plots.save_figure``), or names the error that stopped it, raised here as
if the picture had been drawn here. A signal while a picture is drawn there lets it finish, as here; if no answer
comes within ``SIGNAL_GRACE_SECONDS`` (the second process is stalled), the run stops without it.

The picture is drawn in this process instead where a second one would not save time: one usable core, or
TensorFlow or matplotlib loaded already (a notebook, the tests: there is no import left to overlap), and where it
could not start or died.
"""
import collections
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

import numpy as np

from . import plots
from .config import Config
from .failures import STOP_SIGNALS, die_with
from .logs import Point
from .machine import usable_cores
from .runs import temporary_path

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGNAL_GRACE_SECONDS = 10  # a picture takes at most a few seconds whatever the run (see plots.MOST_POINTS)
POLL_SECONDS = 0.1


class Painter:
    """``draw(figure, path, *args)`` asks for ``plots.save_figure(plots.<figure>(*args), path)``; ``wait()`` returns
    once the oldest picture asked for is written, or raises what stopped it. Use as a context manager."""

    def __init__(self, process=None, stop=None):
        self.process, self.stop = process, stop
        self.pending = collections.deque()

    @classmethod
    def start(cls, stop=None):
        """A painter with a second process if it would save time, else one that draws in this process. ``stop``: the
        run's ``DeferredSignals``, for how long a picture is waited for once a signal came."""
        if usable_cores() < 2 or "tensorflow" in sys.modules or "matplotlib" in sys.modules or not sys.executable:
            return cls(stop=stop)
        try:
            return cls(second_process(), stop)
        except OSError:  # no memory or processes left for it: draw here
            return cls(stop=stop)

    def draw(self, figure, path, *args):
        request = (figure, path, args)
        if self.process is not None:
            try:
                send(self.process.stdin, request)
            except OSError:  # it died
                self._lost()
        self.pending.append(request)

    def wait(self):
        figure, path, args = self.pending[0]
        if self.process is not None:
            try:
                answer = json.loads(self._answer())
                if answer is not None and not isinstance(answer, dict):
                    raise ValueError(answer)
            except (OSError, ValueError):  # it died (an empty line is no JSON)
                self._lost()
            else:
                self.pending.popleft()
                if answer is not None:
                    raise error(answer)
                return
        self.pending.popleft()
        save_picture(figure, path, args)

    def _answer(self):
        """The next line on the answers' pipe (empty if it closed). Once a signal came, at most
        SIGNAL_GRACE_SECONDS more: then the second process is ended and the signal raised (``stop.check()``)."""
        line, deadline = b"", None
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.answers], [], [], POLL_SECONDS)
            if ready:
                data = os.read(self.process.answers, 4096)
                if not data:
                    break
                line += data
            elif self.stop is not None and self.stop.pending():
                deadline = deadline or time.monotonic() + SIGNAL_GRACE_SECONDS
                if time.monotonic() > deadline:
                    self._lost()
                    self.stop.check()
        return line

    def _lost(self):
        """The second process is gone: from now on, every picture is drawn here."""
        self.process.kill()
        self.close()
        for _, path, _ in self.pending:  # what it was writing when it died
            with contextlib.suppress(OSError):
                os.remove(temporary_path(path, self.process.pid))
        self.process = None

    def close(self):
        """End the second process: once a picture still being drawn there is finished (its file whole), or at once if
        none is (it is loading matplotlib, or idle)."""
        if self.process is not None:
            if not self.pending:
                self.process.kill()
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            self.process.wait()
            with contextlib.suppress(OSError):
                os.close(self.process.answers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def second_process():
    """The second process, started: ``serve`` in a new interpreter, in a session of its own (a Ctrl-C at the terminal
    is for the run alone), answering on a pipe of its own (``.answers``, a file descriptor): its stdout is not
    used, so nothing printed there (a ``sitecustomize``, say) can pass for an answer."""
    answers, answering = os.pipe()
    code = (f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from echo_rnn_tf1.painter import serve; "
            f"serve({answering}, {os.getpid()})")
    try:
        process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, pass_fds=[answering], start_new_session=True)
    except BaseException:
        os.close(answers)
        raise
    finally:
        os.close(answering)
    process.answers = answers
    return process


def serve(answering, parent):
    """The second process: draw what is asked on stdin, answer on file descriptor ``answering``, until stdin
    closes."""
    die_with(parent)  # (Linux; elsewhere, stdin's end stops the loop)
    for signum in STOP_SIGNALS:  # a Ctrl-C is for the run, which stops between pictures
        signal.signal(signum, signal.SIG_IGN)
    requests = sys.stdin.buffer
    _import_matplotlib()
    while True:
        request = receive(requests)
        if request is None:
            return
        figure, path, args = request
        try:
            save_picture(figure, path, args)
            answer = None
        except Exception as e:
            answer = answer_for(e)
        os.write(answering, json.dumps(answer).encode() + b"\n")


def save_picture(figure, path, args):
    """``plots.save_figure(plots.<figure>(*args), path)``: a picture, in whichever process draws it."""
    plots.save_figure(getattr(plots, figure)(*args), path)


def answer_for(e):
    """What is sent back for an exception: what ``error`` needs to raise it again."""
    kind = next(cls.__name__ for cls in (OSError, MemoryError, Exception) if isinstance(e, cls))
    return {"kind": kind, "type": type(e).__name__, "filename": getattr(e, "filename", None),
            "args": [a if isinstance(a, int) else str(a) for a in e.args]}


def error(answer):
    """The exception an answer names: an ``OSError`` (its subclass by errno) or ``MemoryError`` as such, others as
    a ``RuntimeError`` that names them."""
    args = answer["args"]
    if answer["kind"] == "OSError":
        return OSError(*args, answer["filename"]) if len(args) == 2 and isinstance(args[0], int) else OSError(*args)
    if answer["kind"] == "MemoryError":
        return MemoryError(*args)
    return RuntimeError(f"{answer['type']}: {' '.join(map(str, args))} (drawing a picture)")


def send(stream, request):
    """Write ``(figure, path, args)``: a line of JSON, then each array's bytes. Arguments are arrays, a ``Config``,
    a list of ``logs.Point``, or what JSON holds."""
    figure, path, args = request
    arrays, encoded = [], []
    for arg in args:
        if isinstance(arg, np.ndarray):
            arrays.append(np.ascontiguousarray(arg))
            encoded.append({"array": [arrays[-1].dtype.str, arrays[-1].shape]})
        elif isinstance(arg, Config):
            encoded.append({"config": arg.to_dict()})
        elif isinstance(arg, list) and arg and isinstance(arg[0], Point):
            encoded.append({"points": arg})
        else:
            encoded.append({"value": arg})
    stream.write(json.dumps({"figure": figure, "path": os.fspath(path), "args": encoded}).encode() + b"\n")
    for array in arrays:
        stream.write(array.tobytes())
    stream.flush()


def receive(stream):
    """The next ``(figure, path, args)`` written by ``send``, or None at the stream's end."""
    line = stream.readline()
    if not line:
        return None
    request, args = json.loads(line), []
    for arg in request["args"]:
        if "array" in arg:
            dtype, shape = np.dtype(arg["array"][0]), arg["array"][1]
            size = dtype.itemsize * int(np.prod(shape))
            data = stream.read(size)
            if len(data) < size:
                return None
            args.append(np.frombuffer(data, dtype).reshape(shape))
        elif "config" in arg:
            args.append(Config.from_dict(arg["config"]))
        elif "points" in arg:
            args.append([Point(*p) for p in arg["points"]])
        else:
            args.append(arg["value"])
    return request["figure"], request["path"], args


def _import_matplotlib():
    """What the first picture would import: matplotlib's figures and the Agg canvas that writes PNG files."""
    import matplotlib.backends.backend_agg  # noqa: F401
    import matplotlib.collections  # noqa: F401
    import matplotlib.figure  # noqa: F401
