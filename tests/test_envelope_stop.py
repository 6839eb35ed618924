"""envelope stops within seconds on the first Ctrl-C, SIGTERM or hang-up and leaves no worker behind, nor an envelope;
a second Ctrl-C cannot hang it; a worker killed (as the out-of-memory killer does) is the machine failing, and none
is left behind either. (What it writes, and where: test_envelope_writing.)"""
import os
import signal
import time

import pytest

from conftest import one_error_line, started, wait_until
from echo_rnn_tf1.machine import usable_cores

JOBS = min(2, usable_cores())  # workers of the envelopes here: --jobs 2, capped at the cores this machine has

# multiprocessing's resource tracker leaves once it sees the envelope gone; the workers are gone before it ends
LEFT_WITHIN = 10  # seconds


def _workers(pgid):
    """The envelope's workers in process group ``pgid`` (multiprocessing's resource tracker is not one)."""
    found = []
    for pid in _group(pgid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def _loading_tensorflow(pid):
    """Whether process ``pid`` has begun to load TensorFlow (its library is mapped: within 0.1 s of the import's
    start, which takes 2-3 s more): a worker that has been given its first seed."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return "libtensorflow" in f.read()
    except OSError:
        return False


def _group(pgid):
    """The processes still in process group ``pgid`` (zombies are gone already)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("how", ["Ctrl-C", "SIGTERM", "Ctrl-C twice", "hang-up"])
def test_envelope_stops_at_once_and_leaves_no_worker(tmp_path, how):
    out = tmp_path / "envelope"
    with started("envelope", "--seeds", 20, "--jobs", 2, "--out", out) as process:
        _wait_for_the_workers(process)
        if how == "SIGTERM":
            os.kill(process.pid, signal.SIGTERM)  # as `kill` does: to the parent alone
        elif how == "hang-up":
            os.killpg(process.pid, signal.SIGHUP)  # as a closed terminal (or a dropped ssh) does: to the whole group
        else:
            os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C does: to the whole group
            if how == "Ctrl-C twice":
                time.sleep(0.05)
                os.killpg(process.pid, signal.SIGINT)
        # 20 seeds on 2 workers take over a minute: an envelope that finished its seeds first would time out here
        stdout, stderr = process.communicate(timeout=30)
        left = _left(process.pid)
    name = {"SIGTERM": "SIGTERM", "hang-up": "SIGHUP"}.get(how, "SIGINT")
    assert process.returncode == 128 + getattr(signal, name)
    assert one_error_line(stderr) == f"echo_rnn_tf1: {name} received; stopped, no envelope written"
    assert left == [] and not out.exists()


@pytest.mark.slow
def test_a_worker_killed_under_envelope_is_the_machine_failing(tmp_path):
    # what the kernel's out-of-memory killer does: SIGKILL to one worker, as it trains
    out = tmp_path / "envelope"
    with started("envelope", "--seeds", 20, "--jobs", 2, "--out", out) as process:
        _wait_for_the_workers(process)
        os.kill(_workers(process.pid)[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)  # (the other worker is stopped at once)
        left = _left(process.pid)
    assert process.returncode == 3
    assert one_error_line(stderr) == "echo_rnn_tf1: error: an envelope worker died (killed by SIGKILL; out of memory?)"
    assert left == [] and not out.exists()


@pytest.mark.slow
def test_a_stopped_envelope_removes_only_what_it_wrote(tmp_path):
    out = tmp_path / "envelope"
    with started("envelope", "--seeds", 20, "--jobs", 2, "--out", out) as process:
        _wait_for_the_workers(process)
        (out / "envelope.csv").write_text("mine")  # (into a locked folder: a lock does not stop a hand)
        os.kill(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM and (out / "envelope.csv").read_text() == "mine"


@pytest.mark.slow
def test_an_envelope_killed_outright_leaves_no_worker(tmp_path):
    # (the out-of-memory killer may choose the envelope itself): its workers see it gone and end
    with started("envelope", "--seeds", 20, "--jobs", 2, "--out", tmp_path / "envelope") as process:
        _wait_for_the_workers(process)
        process.kill()
        process.communicate(timeout=30)
        left = _left(process.pid)
    assert process.returncode == -signal.SIGKILL and left == []


def _wait_for_the_workers(process):
    """Until every worker of the envelope ``process`` is at work (given a seed, loading TensorFlow), the envelope
    waiting for them."""
    wait_until(lambda: len(workers := _workers(process.pid)) == JOBS and all(map(_loading_tensorflow, workers)),
               process)


def _left(pgid):
    """The processes of group ``pgid`` still there after LEFT_WITHIN seconds, or none as soon as the group is empty."""
    deadline = time.monotonic() + LEFT_WITHIN
    while (left := _group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
