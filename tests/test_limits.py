"""What cannot work is refused before anything starts: more memory than the machine has, a path too long for
the file system. And what is drawn stays bounded: pictures take seconds whatever the run's size."""
import os
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from conftest import ROOT, one_error_line
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.data import generate_data
from echo_rnn_tf1.limits import SERIES_BYTES, memory_available, memory_needed
from echo_rnn_tf1.plots import MOST_POINTS, loss_figure, predictions_figure


# (10**10 and 100,000 were refused on a 24 GB machine; these are more than any machine has)
@pytest.mark.parametrize("flag, value", [("--total-series-length", 10**13), ("--state-size", 10**6)])
def test_a_run_needing_more_memory_than_there_is_is_refused_up_front(tmp_path, flag, value):
    assert memory_needed(Config(**{flag[2:].replace("-", "_"): value})) > memory_available()
    code = ("import sys\nfrom echo_rnn_tf1.cli import main\n"
            f"code = main(['{flag}', '{value}', '--out', {str(tmp_path / 'run')!r}])\n"
            "print(code, 'tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "3 False"  # the machine's limit, found before TensorFlow is loaded
    line = one_error_line(result.stderr)
    assert line.startswith(f"echo_rnn_tf1: error: {flag} {value}: the run needs at least ") and "available" in line
    assert not (tmp_path / "run").exists()


def test_the_memory_estimate_of_the_series_is_not_above_what_it_takes():
    # (an estimate above the truth would refuse runs that fit; the parameters' 32 bytes each are below the
    # 44.6 measured with tf1 and 69 with tf2, see limits.py)
    config = Config(num_epochs=1, total_series_length=10**6)
    tracemalloc.start()
    try:
        generate_data(config, np.random.RandomState(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert SERIES_BYTES * config.total_series_length <= peak


def test_an_out_name_too_long_for_the_file_system_is_refused(tmp_path, cli):
    for out, says in [(tmp_path / ("n" * 300), "a name in it has 300 bytes; the file system allows 255"),
                      (tmp_path.joinpath(*["d" * 250] * 16), "with the run's files inside (up to 200 more) it would "
                                                             "pass the file system's 4096")]:
        result = cli("--num-epochs", 1, "--out", out)
        assert result.returncode == 2 and says in one_error_line(result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_the_predictions_picture_shows_five_rows_and_four_windows_at_most():
    config = Config(batch_size=500, total_series_length=20000)
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 2, (500, 40))
    figure = predictions_figure(inputs, inputs, rng.random((500, 40)), config)
    assert len(figure.axes) == 5 and figure.get_size_inches()[1] < 8
    short = predictions_figure(inputs[:2, :30], inputs[:2, :30], rng.random((2, 30)), config)  # 2 rows, 3 windows
    (bars,) = short.axes[0].collections  # a bar for each 1 of the 30 bits drawn, and a shade a window
    assert len(short.axes) == 2 and len(bars.get_paths()) == inputs[0, :30].sum() and len(short.axes[0].patches) == 3


def test_held_out_predictions_take_what_a_short_run_has(tf):
    from echo_rnn_tf1.evaluate import held_out_predictions
    from echo_rnn_tf1.model import build_model

    for config in (Config(batch_size=500, total_series_length=20000), Config(total_series_length=150)):
        graph = tf.Graph()
        with graph.as_default():
            model = build_model(config, inference=True)
            init = tf.compat.v1.global_variables_initializer()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(init)
            inputs, targets, probabilities = held_out_predictions(sess, model, config, seed=1)
        windows = min(4, config.num_batches)
        assert inputs.shape == targets.shape == probabilities.shape == (min(5, config.batch_size), windows * 10)


def test_a_long_loss_curve_is_thinned_and_keeps_its_spikes():
    losses = np.full(10**6, 1e-3, dtype=np.float32)
    losses[123_457] = 0.5
    (line,) = loss_figure(losses, num_batches=1).axes[0].get_lines()[:1]
    assert len(line.get_ydata()) <= MOST_POINTS + 1 and line.get_ydata().max() == np.float32(0.5)
    assert "highest and lowest of every 20 steps" in line.get_label()
    many_epochs = loss_figure(losses[:10**5], num_batches=1).axes[0]
    assert not many_epochs.collections  # 100,000 epochs: no line each (drawing them took 80 s)
    assert len(loss_figure(losses[:5000], num_batches=1000).axes[0].collections[0].get_segments()) == 4


def _png_size(path):
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.mark.slow
def test_a_wide_batch_draws_a_bounded_picture(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("--batch-size", 500, "--total-series-length", 20000, "--num-epochs", 1, "--seed", 0, "--out", out)
    assert result.returncode == 0, result.stderr
    assert _png_size(out / "predictions.png")[1] < 900  # 5 rows at 110 dpi (500 rows were 71,500 px)
