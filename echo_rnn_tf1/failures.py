"""How every command ends when something goes wrong: an exit code, and one line on stderr naming what and why.

Exit codes, the same for every command:

- 0 done, or a match;
- 1 a result the user asked about: the run diverged, NO MATCH;
- 2 bad input: flags, files, folders, logs, checkpoints (``BadInput``, and an OSError on the user's files);
- 3 the machine failed us: out of memory, disk full, an I/O error (``MachineError``, MemoryError, ENOSPC, EIO);
- 4 a bug in echo_rnn_tf1: any other exception. Not 1, which would read as a verdict; the line says it is an
  internal error, and ``ECHO_RNN_TF1_TRACEBACK=1`` prints the traceback too;
- 5 a package is missing or of another version (``PackageError``, or a module of one not found);
- 128 + N: stopped by signal N (130 SIGINT, 143 SIGTERM, 129 SIGHUP), as the shell reports a death by that signal.

Nothing heavy is imported here.
"""
import argparse
import contextlib
import errno
import os
import signal
import sys
import threading
import traceback

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MACHINE, EXIT_BUG, EXIT_PACKAGES = 0, 1, 2, 3, 4, 5
PACKAGES = {"tensorflow": "tensorflow", "tf_keras": "tf-keras", "numpy": "numpy", "matplotlib": "matplotlib"}
TRACEBACK_VARIABLE = "ECHO_RNN_TF1_TRACEBACK"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C; kill; the terminal closed (ssh gone)
# errno values that mean the machine failed us rather than the user's input
MACHINE_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EIO: "I/O error",
                  errno.ENOMEM: "out of memory", errno.EFBIG: "file size limit reached"}


class BadInput(Exception):
    """Bad input (exit code 2); the message names what and why, in one line."""


class PackageError(Exception):
    """The installed packages cannot run the command (exit code 5): one is missing, of another version, or was
    loaded the wrong way; the message says which, and what to install or do."""


class MachineError(Exception):
    """The machine cannot do what was asked (exit code 3), e.g. a run needs more memory than is available."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived: raised where the command is, as Python raises KeyboardInterrupt for Ctrl-C;
    the command stops and exits with 128 + the signal's number."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line and exit code 2 (through ``print_failure``), not usage text; and the
    command named as the user typed it: ``python -m echo_rnn_tf1``, or the installed ``echo-rnn-tf1``."""

    def __init__(self, prog, **kwargs):
        if os.path.basename(sys.argv[0]) == "echo-rnn-tf1":
            prog = prog.replace("python -m echo_rnn_tf1", "echo-rnn-tf1")
        super().__init__(prog=prog, allow_abbrev=False, **kwargs)  # (envelope --seed 2 is not --seeds 2)

    def error(self, message):
        if message.startswith("unrecognized arguments: "):  # the source's variable names, as flags: a hint
            flags = [arg.split("=")[0].replace("_", "-") for arg in message.split()[2:] if arg.startswith("--")]
            known = [flag for flag in flags if flag in self._option_string_actions]
            message += f" (did you mean {' '.join(known)}?)" if known else ""
        raise BadInput(f"{self.prog}: {message}")


def machine_failure(error):
    """What an OSError means when it is the machine's fault ("disk full", ...), or None."""
    if isinstance(error, FileNotFoundError) and str(error.strerror).startswith("No usable temporary directory"):
        return "no usable temporary folder"  # (tempfile's words: every folder it tries is full, read-only or missing)
    return MACHINE_ERRNOS.get(getattr(error, "errno", None)) if isinstance(error, OSError) else None


def exit_code_and_line(error):
    """``(exit_code, one line)`` for any exception."""
    if isinstance(error, KeyboardInterrupt):  # (a plain one: Ctrl-C before the command's own handlers are in place)
        return getattr(error, "exit_code", 128 + signal.SIGINT), f"{str(error) or 'SIGINT'} received; stopped"
    if isinstance(error, (BadInput, MachineError, PackageError)):  # our own words: one line by making (a path in
        code = EXIT_USAGE if isinstance(error, BadInput) else EXIT_MACHINE if isinstance(error, MachineError) \
            else EXIT_PACKAGES
        return code, escaped(error)  # them may hold a line break, kept visible)
    if isinstance(error, MemoryError):
        return EXIT_MACHINE, "out of memory" + (f" ({_one_line(error)})" if str(error) else "")
    if isinstance(error, OSError):
        where = f"{escaped(error.filename)}: " if error.filename is not None else ""
        failure = machine_failure(error)
        what = f"{failure}: " if failure else ""
        return EXIT_MACHINE if failure else EXIT_USAGE, f"{what}{where}{error.strerror or _one_line(error)}"
    if isinstance(error, ImportError) and "failed to map segment" in str(error):  # the loader's ENOMEM (ulimit -v)
        return EXIT_MACHINE, f"out of memory (loading {_one_line(error)})"
    if isinstance(error, RuntimeError) and str(error) == "can't start new thread":  # no memory for its stack
        return EXIT_MACHINE, f"out of memory ({error})"
    if isinstance(error, ImportError) and (error.name or "").split(".")[0] in PACKAGES:
        package = PACKAGES[error.name.split(".")[0]]
        if isinstance(error, ModuleNotFoundError) and "." not in error.name:
            return EXIT_PACKAGES, f"{package} is not installed: pip install {package} (in a clone: -r requirements.txt)"
        return EXIT_PACKAGES, (f"{package} is installed but broken ({_one_line(error)}): reinstall it: pip install "
                               f"--force-reinstall {package}")  # (a part missing, or built for another version)
    if type(error).__module__.startswith("tensorflow"):  # TensorFlow's words for the machine failing it
        said = f"(TensorFlow: {tensorflow_said(error)})"
        for words, failure in (("No space left on device", "disk full"), ("Disk quota exceeded", "disk full"),
                               ("File too large", "file size limit reached"),
                               ("Could not allocate", "out of memory")):  # (a fetched value's numpy array)
            if words in str(error):
                return EXIT_MACHINE, f"{failure} {said}"
        if type(error).__name__ == "ResourceExhaustedError":
            return EXIT_MACHINE, f"out of memory {said}"
    return EXIT_BUG, (f"internal error (a bug in echo_rnn_tf1; {TRACEBACK_VARIABLE}=1 shows the traceback): "
                      f"{type(error).__name__}: {_one_line(error)}{_where(error)}")


def tensorflow_said(error):
    """What a TensorFlow error says went wrong, in one line: its first line that is not about where in the graph
    (an op's error begins 'Graph execution error:', then the node and the stack that made it; the reason after)."""
    where = ("Graph execution error", "Detected at node", "File ", "Node:", "[[", "Original stack trace", "Hint:")
    said = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().startswith(where)]
    return escaped(said[0]) if said else _one_line(error)


def escaped(text):
    """``text`` on one line, as a path is shown everywhere: a line break as ``\\n``, a byte of a file name that is not
    UTF-8 as ``\\xff``."""
    text = str(text)
    with contextlib.suppress(UnicodeError):  # (a lone surrogate that is no such byte: as it is)
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\n", "\\n").replace("\r", "\\r")


def _one_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _where(error):
    """`` at file.py:line``: the innermost frame of this package, where a bug shows itself."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if os.sep + "echo_rnn_tf1" + os.sep in f.filename]
    return f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""


def print_failure(error):
    """Print the one line for ``error`` (and the traceback of a bug if asked for); return the exit code."""
    code, message = exit_code_and_line(error)
    if code == EXIT_BUG and os.environ.get(TRACEBACK_VARIABLE):
        traceback.print_exception(error)
    print(f"echo_rnn_tf1: {'' if isinstance(error, KeyboardInterrupt) else 'error: '}{message}", file=sys.stderr)
    return code


class HeldStops:
    """While the block runs, a stop signal waits: ``act()``, called where stopping breaks nothing, raises it, and so
    does the block's end. For what an exception in its middle would break or leave untrue: TensorFlow's import
    ("ImportError: initialization failed"), and a training step with its record (a signal raised as the step's
    session call returned left it trained and not recorded). Only the first signal raises, so at most one waits."""
    active = None  # the one in force, which the handler of ``stop_signals_raise`` asks

    def __enter__(self):
        self.waiting, self.outer, HeldStops.active = None, HeldStops.active, self
        return self

    def __exit__(self, kind, error, traceback):
        HeldStops.active = self.outer
        if self.outer is not None and self.waiting is not None:  # (nested: the outer block acts on it)
            self.outer.waiting, self.waiting = self.waiting, None
        if kind is None:
            self.act()
        elif self.waiting is not None:  # the block ended otherwise (a run diverged): the stop asked for is done
            self.waiting.handled = True

    def act(self):
        if self.waiting is not None:
            waiting, self.waiting = self.waiting, None
            raise waiting


def completed(futures, wake_every=0.1):
    """``concurrent.futures.as_completed(futures)`` for the main thread, which wakes every ``wake_every`` seconds: a stop
    signal that reached another thread, or came just as the main thread began to wait, does not wake it, and it
    would act on the signal only once a future is done (an envelope's chunk: all its training)."""
    import concurrent.futures

    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(pending, wake_every, concurrent.futures.FIRST_COMPLETED)
        yield from done


@contextlib.contextmanager
def stop_signals_raise():
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise ``Interrupted`` where the command is, as Ctrl-C raises
    KeyboardInterrupt: ``finally`` blocks and ``except KeyboardInterrupt`` clean up on the way out. Only the first
    raises, so that a second Ctrl-C cannot cut that cleaning short. A signal the process was started with ignored
    stays ignored (``nohup``'s SIGHUP, a background job's SIGINT). Yields a list that holds the ``Interrupted`` once
    raised: a command that returns without its exit code lost it on its way (a library's ``except
    BaseException``), and the caller acts on it."""
    raised = []

    def handler(signum, frame):
        if not raised:
            raised.append(Interrupted(signum))
            if HeldStops.active is not None:
                HeldStops.active.waiting = raised[0]
                return
            raise raised[0]

    def unraisable(hook_args):  # raised where Python cannot pass it on (a finalizer): lost, not printed
        if not isinstance(hook_args.exc_value, Interrupted):
            hook(hook_args)

    if threading.current_thread() is not threading.main_thread():  # (signals reach the main thread only)
        yield raised
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN}
    hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield raised
    finally:
        sys.unraisablehook = hook
        for s, old in previous.items():
            signal.signal(s, old)
