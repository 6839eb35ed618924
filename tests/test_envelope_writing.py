"""What envelope writes and where, its training replaced by made-up losses: an envelope is whole or not there (a stop
or a failure while its files are written removes what was written); its folder is new or empty, locked while it
works, and never one that holds another's envelope; two started at once into the default folder get two folders;
--jobs is capped; a signal that Python could not raise where it arrived is still the command's exit code."""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, one_error_line, signal_here
from echo_rnn_tf1 import envelope

# The training replaced, in this process (the fixture) or in a command's (a patch run before it): every seed's losses
# fall from ln 2, each a little slower than the last, so that the envelope has a band to draw.
MADE_UP = """import numpy as np
from echo_rnn_tf1 import envelope

def made_up(seeds, jobs, on_done=lambda seed, losses: None):
    steps = np.arange(5000)
    return np.stack([0.7 * np.exp(-steps / (300 + 100 * k)) + 1e-4 for k in range(len(seeds))]).astype(np.float32)
"""
SECOND = "20260101-000000"  # the second both envelopes of a test start in, made the same on purpose


@pytest.fixture
def made_up(monkeypatch):
    """The faithful engine's training replaced by made-up losses: the test is about what follows. Returns the list
    of the ``jobs`` each training was given."""
    namespace, given = {}, []
    exec(MADE_UP, namespace)

    def train_seeds(seeds, jobs, on_done=None):
        given.append(jobs)
        return namespace["made_up"](seeds, jobs)

    monkeypatch.setattr(envelope, "train_seeds", train_seeds)
    return given


def start_patched(patch, *args, cwd):
    """``python -m echo_rnn_tf1 ARGS`` in folder ``cwd``, with ``patch`` (Python source) run first."""
    code = f"{patch}\nfrom echo_rnn_tf1.__main__ import run\nrun()\n"  # (what python -m runs)
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cwd, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def whole(folder):
    """Whether ``folder`` holds an envelope's files, all of them, and nothing else."""
    return sorted(os.listdir(folder)) == sorted(envelope.FILES) and np.load(folder / "losses.npy").shape[1] == 5000


def contents(folder):
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.iterdir()}


@pytest.mark.parametrize("fault, code, line", [
    (signal.SIGINT, 130, "echo_rnn_tf1: SIGINT received; stopped, no envelope written"),
    (OSError(errno.ENOSPC, "No space left on device"), 3, "disk full"),
], ids=["Ctrl-C", "full disk"])
def test_a_stop_or_a_failure_while_writing_leaves_no_half_envelope(made_up, monkeypatch, cli, tmp_path, fault, code,
                                                                   line):
    # the picture comes after envelope.csv, seeds.csv, losses.npy and the percentiles
    def fail(figure, path):
        raise fault

    if fault == signal.SIGINT:
        signal_here(monkeypatch, "plots", "save_figure", signal.SIGINT)
    else:
        monkeypatch.setattr("echo_rnn_tf1.plots.save_figure", fail)
    result = cli("envelope", "--seeds", 2, "--out", tmp_path / "new")
    assert result.returncode == code
    assert line in one_error_line(result.stderr).lower() if code == 3 else one_error_line(result.stderr) == line
    assert not (tmp_path / "new").exists()  # made by the command, left empty, removed

    (tmp_path / "empty").mkdir()
    assert cli("envelope", "--seeds", 2, "--out", tmp_path / "empty").returncode == code
    assert list((tmp_path / "empty").iterdir()) == []  # the user's folder is kept, as it was


def test_a_folder_with_a_line_break_is_named_on_one_line(made_up, tmp_path, cli):
    out = tmp_path / "two\nlines"
    result = cli("envelope", "--seeds", 2, "--out", out)
    assert result.returncode == 0 and whole(out), result.stderr
    shown = str(out).replace("\n", "\\n")
    assert any(line.startswith(f"Wrote {shown}: ") for line in result.stdout.splitlines())


@pytest.mark.parametrize("files", [["seeds.csv"], ["losses.npy", "notes.txt"], ["notes.txt"]])
def test_envelope_never_writes_into_a_folder_holding_files(made_up, tmp_path, cli, files):
    for name in files:
        (tmp_path / name).write_text("someone's")
    result = cli("envelope", "--seeds", 1, "--out", tmp_path)
    says = "holds an envelope already" if set(files) & set(envelope.FILES) else "not empty"
    assert result.returncode == 2 and f"--out {tmp_path}: {says}" in one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    assert all((tmp_path / name).read_text() == "someone's" for name in files)
    assert made_up == []  # refused before training


def test_an_empty_folder_it_cannot_write_is_refused_before_any_seed_trains(made_up, tmp_path, cli, monkeypatch):
    class ReadOnly:  # (a read-only file system, as tempfile meets it: chmod does not stop root)
        @staticmethod
        def TemporaryFile(dir):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))

    monkeypatch.setattr(envelope, "tempfile", ReadOnly)
    result = cli("envelope", "--seeds", 1, "--out", tmp_path)
    assert result.returncode == 2 and result.stdout == "" and made_up == []
    assert one_error_line(result.stderr) == f"echo_rnn_tf1: error: --out {tmp_path}: cannot write there (Read-only " \
                                            f"file system)"
    assert list(tmp_path.iterdir()) == []


def test_a_finished_envelope_is_never_overwritten(made_up, tmp_path, cli):
    out = tmp_path / "envelope"
    assert cli("envelope", "--seeds", 2, "--out", out).returncode == 0 and whole(out)
    before = contents(out)
    result = cli("envelope", "--seeds", 3, "--out", out)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: --out {out}: holds an envelope already; choose "
                                             f"another folder")
    assert contents(out) == before  # every file as it was, to the byte and the time it was written


def test_an_envelope_at_work_holds_its_folder(made_up, tmp_path, cli):
    # The other envelope, a process of its own, waits in its training for a line on its stdin.
    out = tmp_path / "envelope"
    waiting = MADE_UP + textwrap.dedent("""
        import sys
        def wait_for_a_line(*args, **kwargs):
            print("training", flush=True)
            sys.stdin.readline()
            return made_up(*args, **kwargs)
        envelope.train_seeds = wait_for_a_line
        """)
    other = start_patched(waiting, "envelope", "--seeds", 2, "--out", out, cwd=tmp_path)
    try:
        assert other.stdout.readline().startswith("Training 2 seeds")
        assert other.stdout.readline() == "training\n"
        result = cli("envelope", "--seeds", 1, "--out", out)
        assert result.returncode == 2
        assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {out}: in use by another run or envelope now "
                                                 f"(it is locked); wait for it to end, or choose another folder")
        assert made_up == []
        stdout, stderr = other.communicate("go\n", timeout=120)  # (its pictures and files: 1-3 s, under load 10)
    finally:
        other.kill()
    assert other.returncode == 0, stderr
    assert whole(out)


def test_two_envelopes_started_at_once_get_two_folders(tmp_path):
    # Each waits in its training until both folders exist, so that each holds its own while the other makes its
    # own; both start in one second, SECOND.
    both = MADE_UP + textwrap.dedent(f"""
        import glob, time
        real = time.strftime
        time.strftime = lambda form, *args: {SECOND!r} if form == "%Y%m%d-%H%M%S" else real(form, *args)
        def wait_for_both(*args, **kwargs):
            deadline = time.monotonic() + 60  # (both are started in 1-2 s; under load, 10)
            while len(glob.glob("runs/*")) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            return made_up(*args, **kwargs)
        envelope.train_seeds = wait_for_both
        """)
    processes = [start_patched(both, "envelope", "--seeds", 2, cwd=tmp_path) for _ in range(2)]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, results):
        assert process.returncode == 0, stderr
    folders = sorted((tmp_path / "runs").iterdir())
    assert [f.name for f in folders] == [f"{SECOND}-envelope", f"{SECOND}-envelope-2"]
    assert all(whole(folder) for folder in folders)
    wrote = sorted(line.split(":")[0] for out, _ in results for line in out.splitlines() if line.startswith("Wrote"))
    assert wrote == [f"Wrote runs/{SECOND}-envelope", f"Wrote runs/{SECOND}-envelope-2"]


@pytest.mark.parametrize("cores, jobs, seeds, used", [(2, 64, 3, 2), (4, 8, 2, 2), (2, 1, 3, 1)])
def test_jobs_are_capped_at_the_usable_cores_and_the_seeds(made_up, monkeypatch, tmp_path, cli, cores, jobs, seeds,
                                                          used):
    monkeypatch.setattr(envelope, "usable_cores", lambda: cores)
    out = tmp_path / "envelope"
    result = cli("envelope", "--seeds", seeds, "--jobs", jobs, "--out", out)
    assert result.returncode == 0, result.stderr
    capped = f" (--jobs {jobs} capped at {used}: one per seed and per usable core)" if used < jobs else ""
    assert result.stdout.splitlines()[0] == f"Training {seeds} seeds of the source's defaults, {used} at a time{capped}"
    assert made_up == [used] and json.loads((out / "envelope.json").read_text())["jobs"] == used


@pytest.mark.parametrize("engine", ["tf1", "tf2"])
def test_more_seeds_than_memory_could_hold_are_refused_before_anything(made_up, monkeypatch, tmp_path, cli, engine):
    monkeypatch.chdir(tmp_path)
    result = cli("envelope", "--engine", engine, "--seeds", 10**7)
    assert result.returncode == 2
    assert one_error_line(result.stderr).endswith("--seeds 10000000: more than 1e+06, whose losses alone take 20 GB")
    assert list(tmp_path.iterdir()) == [] and made_up == []


def test_a_signal_raised_inside_a_finalizer_is_the_exit_code(tmp_path):
    # A signal handler's exception inside a finalizer is lost to the code that runs (Python reports it as "Exception
    # ignored"); the command then finishes, and its exit code must still say it was interrupted.
    patch = MADE_UP + textwrap.dedent("""
        import os, signal
        envelope.train_seeds = made_up
        class SignalWhenCollected:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
        save = envelope.save
        def save_and_collect(*args, **kwargs):
            SignalWhenCollected()  # collected at once
            return save(*args, **kwargs)
        envelope.save = save_and_collect
        """)
    process = start_patched(patch, "envelope", "--seeds", 2, "--out", tmp_path / "e", cwd=tmp_path)
    _, stderr = process.communicate(timeout=120)  # (no TensorFlow: 1-3 s, under load 10)
    assert process.returncode == 130
    assert whole(tmp_path / "e")  # (the signal was lost: the envelope went on to its end)
    assert one_error_line(stderr) == "echo_rnn_tf1: SIGINT received; stopped"
