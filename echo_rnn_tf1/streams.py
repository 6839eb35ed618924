"""The standard streams of a command: closed when it started (``>&-``), or a reader that goes away (``| head``)."""
import contextlib
import errno
import fcntl
import os
import stat
import sys


def open_standard_streams():
    """Point stdin, stdout or stderr at /dev/null where the process was started without it (``>&-``): Python then
    has no ``sys.stdout`` to print to, and the first file the command opened would take its number. (An output
    open for reading only, e.g. a script file a launcher left on that number, counts as closed.)"""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            usable = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY or fd == 0
        except OSError:  # closed
            usable = False
        if not usable:
            _to_devnull(fd)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))


def _to_devnull(fd):
    devnull = os.open(os.devnull, os.O_RDWR)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)


class _ClosedPipeSafe:
    """A text stream whose reader may go away (``... | head -n 1``, a terminal closed): once a write or a flush finds
    the pipe closed or the terminal hung up (EIO on a character device), its file descriptor is pointed at /dev/null
    and the command carries on, its output unread."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._safely(self._stream.write, text)

    def flush(self):
        return self._safely(self._stream.flush)

    def _safely(self, call, *args):
        try:
            return call(*args)
        except OSError as e:
            with contextlib.suppress(OSError, ValueError):
                if isinstance(e, BrokenPipeError) or e.errno == errno.EIO and stat.S_ISCHR(
                        os.fstat(self._stream.fileno()).st_mode):
                    _to_devnull(self._stream.fileno())
                    return call(*args)  # now to /dev/null, with whatever was buffered
            raise

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def closed_pipe_safe_streams():
    """stdout and stderr that survive a closed pipe, for the duration of a command (real file streams only)."""
    saved = sys.stdout, sys.stderr
    try:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            with contextlib.suppress(AttributeError, OSError, ValueError):  # e.g. pytest's capture: no fileno
                stream.fileno()
                setattr(sys, name, _ClosedPipeSafe(stream))
        yield
    finally:
        for name, stream in zip(("stdout", "stderr"), saved):
            with contextlib.suppress(BrokenPipeError):
                getattr(sys, name).flush()
            setattr(sys, name, stream)
