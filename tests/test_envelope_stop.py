"""envelope stops within seconds on the first Ctrl-C or SIGTERM and leaves no worker behind; a second Ctrl-C
cannot hang it; --jobs is capped; it never writes into a folder holding files it did not make."""
import os
import signal
import time

import pytest

from conftest import one_error_line, started, wait_until
from echo_rnn_tf1 import envelope
from echo_rnn_tf1.failures import MachineError


def test_jobs_are_capped_at_the_cores_the_seeds_and_the_memory(monkeypatch):
    monkeypatch.setattr(envelope, "usable_cores", lambda: 2)
    assert envelope.capped_jobs(1, 20, 64 * 2**30) == (1, None)
    assert envelope.capped_jobs(64, 20, 64 * 2**30) == (2, "one process per core (2 usable)")
    assert envelope.capped_jobs(64, 1, 64 * 2**30) == (1, "one per seed (1)")
    jobs, why = envelope.capped_jobs(64, 20, envelope.WORKER_BYTES + 20 * envelope.KEPT_BYTES)
    assert jobs == 1 and why.startswith("each worker needs about 640 MiB")
    with pytest.raises(MachineError, match="a worker needs about"):
        envelope.capped_jobs(2, 20, envelope.WORKER_BYTES - 1)
    with pytest.raises(MachineError, match=r"--seeds 10000000: .* \(about 114 seeds fit\)"):  # 610 GiB of losses
        envelope.capped_jobs(2, 10**7, envelope.WORKER_BYTES + 114 * envelope.KEPT_BYTES)


def test_an_envelope_memory_cannot_hold_is_refused_before_training(cli, monkeypatch, tmp_path):
    monkeypatch.setattr("echo_rnn_tf1.limits.memory_available", lambda: 8 * 2**30)
    monkeypatch.setattr(envelope, "train_seeds", lambda *args, **kwargs: pytest.fail("trained"))
    result = cli("envelope", "--seeds", 10**7, "--out", tmp_path / "e")
    assert result.returncode == 3 and "--seeds 10000000: their losses need about 610 GiB" in result.stderr
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("files", [["seeds.csv"], ["losses.npy", "notes.txt"], ["envelope.csv"]])
def test_envelope_never_writes_into_a_folder_holding_files(tmp_path, cli, files):
    for name in files:
        (tmp_path / name).write_text("someone's")
    result = cli("envelope", "--seeds", 1, "--out", tmp_path)
    assert result.returncode == 2 and "--out" in one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
    assert all((tmp_path / name).read_text() == "someone's" for name in files)


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
        # both workers at work (given a seed, loading TensorFlow), the parent waiting for them
        wait_until(lambda: len(workers := _workers(process.pid)) == 2 and all(map(_loading_tensorflow, workers)),
                   process)
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
        deadline = time.monotonic() + 10  # (multiprocessing's resource tracker leaves when it sees the parent gone)
        while (left := _group(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
    name = {"SIGTERM": "SIGTERM", "hang-up": "SIGHUP"}.get(how, "SIGINT")
    assert process.returncode == 128 + getattr(signal, name)
    assert one_error_line(stderr) == f"echo_rnn_tf1: {name} received; workers stopped, no envelope written"
    assert left == [] and not out.exists()


@pytest.mark.slow
def test_a_worker_killed_under_envelope_is_the_machine_failing(tmp_path):
    # what the kernel's out-of-memory killer does: SIGKILL to one worker
    with started("envelope", "--seeds", 20, "--jobs", 2, "--out", tmp_path / "envelope") as process:
        wait_until(lambda: len(_workers(process.pid)) == 2, process)
        os.kill(_workers(process.pid)[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 3
    assert "died (killed by SIGKILL; out of memory?)" in one_error_line(stderr)
