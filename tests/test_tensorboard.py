"""TensorBoard opens a run's tb/: the real server, on this machine only, serves back every step's loss and the graph."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from echo_rnn_tf1.record import read_losses

SERVER_START_SECONDS = 120  # it starts in 3-6 s here (it imports TensorFlow); a shared machine can be slower
DATA_SECONDS = 60           # the event file is read within a second or two of the start


def tensorboard_command():
    """The ``tensorboard`` command installed beside this Python (as requirements.txt installs it), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    return beside if os.path.exists(beside) else shutil.which("tensorboard")


@pytest.fixture(scope="module")
def tf1_run(trained_run):
    # 1000 steps: one default epoch, with the graph (conftest's, read only).
    return trained_run


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def poll(what, seconds, probe):
    """``probe()`` until it returns something true, at most ``seconds``; fail saying ``what`` never came."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"{what} did not come within {seconds} s")


@pytest.fixture(scope="module")
def server(tf1_run, tmp_path_factory):
    """The base URL of a real ``tensorboard --logdir RUN/tb`` on 127.0.0.1, on a port the system chose."""
    command = tensorboard_command()
    assert command, "the tensorboard command is not installed (requirements.txt installs it)"
    log_path = tmp_path_factory.mktemp("tensorboard-log") / "stderr.txt"
    with open(log_path, "w") as log:
        process = subprocess.Popen([command, "--logdir", str(tf1_run / "tb"), "--host", "127.0.0.1", "--port", "0"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        def url():  # TensorBoard names the port it got on its log: "TensorBoard 2.x at http://127.0.0.1:PORT/"
            assert process.poll() is None, f"tensorboard exited with {process.returncode}: {log_path.read_text()}"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", log_path.read_text())
            return found and f"http://127.0.0.1:{found.group(1)}"

        base = poll("tensorboard's address", SERVER_START_SECONDS, url)

        def loaded():
            try:
                return "loss" in get_json(f"{base}/data/plugin/scalars/tags").get(".", {})
            except (urllib.error.URLError, ConnectionError):
                return False

        poll("the run's loss series", DATA_SECONDS, loaded)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_tensorboard_command_is_installed():
    assert tensorboard_command(), "the tensorboard command is not installed (requirements.txt installs it)"


@pytest.mark.xdist_group("trained_run")
def test_scalars_page_serves_every_steps_loss_in_order(server, tf1_run):
    series = get_json(f"{server}/data/plugin/scalars/scalars?run=.&tag=loss")  # [[wall_time, step, value], ...]
    _, _, csv_losses = read_losses(tf1_run / "losses.csv")
    assert [step for _, step, _ in series] == list(range(len(csv_losses))) and len(csv_losses) == 1000
    # TensorBoard keeps each loss as the float32 written, so it comes back bit for bit.
    assert np.array([value for *_, value in series], dtype=np.float32).tobytes() == csv_losses.tobytes()


@pytest.mark.xdist_group("trained_run")
def test_graphs_page_has_the_tf1_graph(server):
    graph = urllib.request.urlopen(f"{server}/data/plugin/graphs/graph?run=.", timeout=10).read().decode()
    # The cell's variables, dynamic_rnn's while loop, W2 and the optimizer (the source's placeholders are unnamed).
    for name in ("rnn/basic_rnn_cell/kernel", "rnn/while/", "W2", "Adagrad/"):
        assert f'name: "{name}' in graph, name
