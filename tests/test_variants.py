"""The variants of the source: --carry-state, --targets, --new-data-each-epoch, --cell, --num-layers, --dropout.

Hand-computed data; the default graph's ops still the source's, in its order; the carried state against one long
window; each flag trained, evaluated and predicted; a carried state with the series' targets learning every
position; the tf2 engine and compare refusing variants.
"""
import dataclasses
import json
import os

import numpy as np
import pytest

from conftest import ROOT
from echo_rnn_tf1.config import Config, ConfigError
from echo_rnn_tf1.data import echo_targets, generate_data
from echo_rnn_tf1.evaluate import evaluate, model_with_values, predict, score_as_trained, trained_model
from echo_rnn_tf1.model import build_model, trained_variables
from echo_rnn_tf1.record import read_losses, read_run
from echo_rnn_tf1.run import train_run
from echo_rnn_tf1.train import prepare, run_windows, train

SMALL = Config(total_series_length=20, truncated_backprop_length=5, batch_size=2, echo_step=2)
BITS = "0110111001" "1010010110" "0011101000"


def quiet(line):
    pass


def test_series_targets_by_hand(monkeypatch):
    monkeypatch.setattr(np.random, "choice", lambda n, size, p: np.arange(1, size + 1))
    _, targets_value = generate_data(dataclasses.replace(SMALL, targets="series"))
    # np.roll by 2 brings 19, 20 to the front; only they are zeroed. Row 1 goes on where row 0 ends in the series,
    # so it begins with the echo of row 0's last inputs, 9 and 10.
    assert targets_value.tolist() == [[0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                                      [9, 10, 11, 12, 13, 14, 15, 16, 17, 18]]


def test_echo_targets_of_a_series_cross_windows():
    bits = [int(b) for b in "0110111001" "1010010110"]
    config = Config(targets="series")
    assert "".join(map(str, echo_targets(bits, config))) == "000" + "01101110011010010"  # the bits, 3 later
    assert "".join(map(str, echo_targets(bits, Config()))) == "0000110111" "0001010010"  # the source's


def test_old_run_json_without_variants_reads_as_the_source():
    old = {name: value for name, value in Config().to_dict().items() if name not in (
        "carry_state", "targets", "new_data_each_epoch", "cell", "num_layers", "dropout")}
    assert Config.from_dict(old) == Config() and Config().variant() == []
    changed = Config(num_epochs=1, cell="gru", carry_state=True)
    assert changed.changes_from_source() == ["num_epochs", "carry_state", "cell"]
    assert changed.variant() == ["carry_state", "cell"]
    assert Config.from_dict(changed.to_dict()) == changed


@pytest.mark.parametrize("values, says", [
    ({"cell": "rnn"}, "--cell rnn: must be one of basic, lstm, gru"),
    ({"targets": "all"}, "--targets all: must be one of window, series"),
    ({"num_layers": 0}, "--num-layers 0: must be a positive integer"),
    ({"dropout": 1.0}, "--dropout 1.0: must be a number from 0 (no dropout) to less than 1"),
    ({"dropout": float("nan")}, "--dropout nan: must be a number from 0"),
    ({"carry_state": "yes"}, "--carry-state 'yes': must be true or false"),
])
def test_bad_variants_are_refused(values, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        Config.from_dict({**Config().to_dict(), **values})


def source_model_op_types(tf):
    """The op types of the source's own 定义模型 cell (echo_rnn_tf1/source_2017.py), run in a fresh graph."""
    with open(os.path.join(ROOT, "echo_rnn_tf1", "source_2017.py"), encoding="utf-8") as f:
        text = f.read()
    cell = text[text.index("# 定义模型"):text.index("# 训练模型")]
    graph = tf.Graph()
    with graph.as_default():
        np.random.seed(0)
        exec(cell, {"tf": tf.compat.v1, "np": np, "num_classes": 2, "state_size": 4, "batch_size": 5,
                    "truncated_backprop_length": 10})
    return [op.type for op in graph.get_operations()]


def test_the_default_graph_makes_the_sources_ops_in_its_order(tf):
    graph, _, _, _ = prepare(Config(), seed=0)
    package = [op.type for op in graph.get_operations()]
    source = source_model_op_types(tf)
    assert len(source) > 100 and package[:len(source)] == source
    assert package[len(source):] == ["Softmax"]  # predictions, which the source does not have


def test_cells_and_layers_name_their_variables(tf):
    def names(**changes):
        graph, _, _, _ = prepare(Config(**changes), seed=0)
        return list(trained_variables(graph))

    assert names() == ["rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias", "W2", "b2"]
    assert names(cell="lstm")[:2] == ["rnn/lstm_cell/kernel", "rnn/lstm_cell/bias"]
    assert names(cell="gru")[:4] == ["rnn/gru_cell/gates/kernel", "rnn/gru_cell/gates/bias",
                                     "rnn/gru_cell/candidate/kernel", "rnn/gru_cell/candidate/bias"]
    assert names(num_layers=2)[:4] == [f"rnn/multi_rnn_cell/cell_{i}/basic_rnn_cell/{v}"
                                       for i in (0, 1) for v in ("kernel", "bias")]
    assert names(dropout=0.5) == names()  # the DropoutWrapper adds no variable: inference restores without it


# Feeding each window's final state into the next against one window three times as long, with the same weights,
# in 10 draws of each of basic, LSTM, GRU in 1 and 2 layers: bit-identical with oneDNN's custom operations on (under
# every ONEDNN_MAX_CPU_ISA from SSE41 to AVX512_CORE); with them off (TF_ENABLE_ONEDNN_OPTS=0, as --portable runs)
# up to 1.2e-7 apart. Fed from zeros instead, the later windows' probabilities differ by 0.0082 at the least.
CARRIED_ATOL = 1e-6


@pytest.mark.parametrize("cell, num_layers", [("basic", 1), ("lstm", 1), ("gru", 1), ("lstm", 2)])
def test_carrying_the_state_equals_one_long_window(tf, cell, num_layers):
    short = Config(total_series_length=750, truncated_backprop_length=5, echo_step=2, cell=cell,
                   num_layers=num_layers, carry_state=True)  # 750: whole windows of 5 and of 15, 5 rows
    long = dataclasses.replace(short, truncated_backprop_length=15)
    rng = np.random.default_rng(0)
    with tf.Graph().as_default() as graph:
        build_model(long, inference=True)
    values = {name: rng.normal(0, 0.7, v.shape).astype(np.float32) for name, v in trained_variables(graph).items()}
    inputs, targets = rng.integers(0, 2, (3, 15)), np.zeros((3, 15), dtype=int)

    with model_with_values(long, values) as (sess, model):
        whole = sess.run(model.predictions, {model.batchX_placeholder: inputs})
    with model_with_values(short, values) as (sess, model):
        carried, from_zeros = (np.concatenate([p for _, p in run_windows(sess, model, inputs, targets,
                                                                       model.predictions, carry)], axis=1)
                               for carry in (True, False))
    np.testing.assert_allclose(carried, whole, rtol=0, atol=CARRIED_ATOL)
    np.testing.assert_array_equal(from_zeros[:, :5], carried[:, :5])  # the first window starts from zeros either way
    assert np.abs(from_zeros[:, 5:] - whole[:, 5:]).max() > 1000 * CARRIED_ATOL  # later windows need the state


def test_a_carried_state_starts_from_zeros():
    # The first step sees the same weights, data and zero state whether the state is carried or not: the same
    # loss, to the bit; from the second step on the carried state makes the difference.
    config = Config(num_epochs=1, total_series_length=1000)
    plain = train(config, 3, log=quiet)
    carried = train(dataclasses.replace(config, carry_state=True), 3, log=quiet)
    assert plain[0] == carried[0] and plain[1] != carried[1]


def test_new_data_each_epoch_changes_the_epochs_after_the_first():
    config = Config(num_epochs=2, total_series_length=1000)
    same = np.array(train(config, 4, log=quiet))
    new = np.array(train(dataclasses.replace(config, new_data_each_epoch=True), 4, log=quiet))
    assert same[:20].tobytes() == new[:20].tobytes()  # epoch 0: the same series, the same steps
    assert same[20] != new[20]                          # epoch 1: another series


def test_dropout_acts_in_training_only(tf):
    config = Config(num_epochs=1, total_series_length=500, dropout=0.5)
    graph, model, inputs_value, targets_value = prepare(config, seed=0)
    feed = {model.batchX_placeholder: inputs_value[:, :10], model.batchY_placeholder: targets_value[:, :10]}
    with tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        training = [sess.run(model.total_loss, feed) for _ in range(3)]
        values = sess.run(trained_variables(graph))
    assert len(set(training)) == 3  # a new dropout mask every run
    with model_with_values(config, values) as (sess, model):
        inference = [sess.run(model.total_loss, {model.batchX_placeholder: inputs_value[:, :10],
                                                 model.batchY_placeholder: targets_value[:, :10]}) for _ in range(2)]
    assert inference[0] == inference[1]  # no dropout when evaluating


def test_dropout_draws_its_masks_in_order(tf):
    # Dropout's masks come from a stateful op inside dynamic_rnn's while loop. With the loop's default 32 parallel
    # iterations, the iterations draw in whatever order they run: 3 processes side by side, each training the same
    # seed 4 times (dropout 0.3, 1000 steps), got 3 different last losses of 4 in every process. With one
    # iteration at a time, all 12 were equal. The source's graph keeps the default.
    def loops(**changes):
        graph, _, _, _ = prepare(Config(**changes), seed=0)
        return {op.get_attr("parallel_iterations") for op in graph.get_operations()
                if op.type in ("While", "StatelessWhile")}

    assert loops(dropout=0.3) == {1} and loops() == {32}
    config = Config(num_epochs=1, total_series_length=2000, dropout=0.3)
    assert np.array(train(config, 0, log=quiet)).tobytes() == np.array(train(config, 0, log=quiet)).tobytes()


# Each flag alone, on a tiny configuration: trained into a run folder as the CLI does, then evaluated and predicted.
FLAGS = {
    "carry_state": {"carry_state": True},
    "targets": {"targets": "series"},
    "new_data_each_epoch": {"new_data_each_epoch": True},
    "cell_lstm": {"cell": "lstm"},
    "cell_gru": {"cell": "gru"},
    "num_layers": {"num_layers": 2},
    "dropout": {"dropout": 0.5},
}


@pytest.mark.parametrize("flag, value, says", [
    ("--cell", "rnn", "argument --cell: invalid choice: 'rnn'"),
    ("--targets", "all", "argument --targets: invalid choice: 'all'"),
    ("--num-layers", 0, "--num-layers 0: must be a positive integer"),
    ("--dropout", 1, "--dropout 1.0: must be a number from 0 (no dropout) to less than 1"),
])
def test_bad_variant_flags_are_one_line(tmp_path, cli, flag, value, says):
    result = cli(flag, value, "--out", tmp_path / "run")
    assert result.returncode == 2 and result.stdout == "" and not (tmp_path / "run").exists()
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


# The variants that change what the pictures show: how the state is fed, the targets shaded, the weights drawn (the
# others draw what the source's run draws: 2 s of pictures saved on each)
DRAWN = ("carry_state", "targets", "cell_lstm", "cell_gru", "num_layers")


@pytest.fixture(scope="module", params=list(FLAGS))
def variant_run(request, tmp_path_factory):
    config = Config(num_epochs=2, total_series_length=1000, **FLAGS[request.param])
    out = tmp_path_factory.mktemp(request.param) / "run"
    drawn = request.param in DRAWN
    assert train_run(config, seed=0, out=out, pictures=drawn) == 0
    return config, out, drawn


@pytest.mark.slow
@pytest.mark.xdist_group("variant_run")
def test_each_flag_trains_and_is_recorded(variant_run):
    config, out, drawn = variant_run
    run = read_run(out)
    assert run.config == config and run.status == "finished" and run.steps_done == 40
    assert len(read_losses(out / "losses.csv")[2]) == 40
    assert (out / "predictions.png").exists() == (out / "weights.png").exists() == drawn


@pytest.mark.slow
@pytest.mark.xdist_group("variant_run")
def test_each_flag_evaluates(variant_run):
    config, out, _ = variant_run
    report = evaluate(out, seed=5)
    assert report["windows"] == 100 and len(report["accuracy_by_position"]) == 10
    assert 0 < report["loss"] < 10 and 0 <= report["accuracy"] <= 1


@pytest.mark.slow
@pytest.mark.xdist_group("variant_run")
def test_each_flag_predicts(variant_run):
    config, out, _ = variant_run
    result = predict(out, BITS)
    assert result["input"] == BITS and len(result["prediction"]) == len(BITS)
    assert result["target"] == "".join(map(str, echo_targets([int(b) for b in BITS], config)))


# A carried state with the series' targets learns every position of the window, positions 0-2 too, which a
# window fed from zeros cannot know. The first window of each row is the exception: its state starts from zeros
# and rows 1-4 begin with the echo of the previous row's end (row 0 with the series' zeroed start), so positions
# 0-2 there are guesses. Measured with total_series_length 10000 (200 steps an epoch), seeds 0-9, on a fresh
# series (seed 5): after 2 or 3 epochs 9 seeds of 10 make no error elsewhere (one wrong bit in the tenth); after
# 4 epochs, all 10 make none (and 3 to 9 wrong guesses of the 15 in the rows' first windows).
LEARNS_EVERY_POSITION = Config(num_epochs=4, total_series_length=10000, carry_state=True, targets="series")


@pytest.mark.slow
def test_a_carried_state_with_series_targets_learns_every_position(tmp_path):
    config = LEARNS_EVERY_POSITION
    out = tmp_path / "run"
    assert train_run(config, seed=0, out=out) == 0
    with trained_model(out) as (sess, model, _):
        _, correct = score_as_trained(sess, model, *generate_data(config, np.random.RandomState(5)), config)
    correct = correct.reshape(config.batch_size, config.num_batches, config.truncated_backprop_length)
    assert correct[:, 1:].all() and correct[:, 0, config.echo_step:].all()  # every bit but the rows' first guesses
    report = evaluate(out, seed=5)  # the same series, through the command's path
    assert report["accuracy_by_position"] == [float(a) for a in correct.reshape(-1, 10).mean(axis=0)]
    assert min(report["accuracy_by_position"][:3]) >= 1 - config.batch_size / report["windows"]

    # And predict carries the state across windows: every echo but the series' first 3 bits, whose targets are 0.
    result = predict(out, BITS)
    assert result["prediction"][3:] == result["target"][3:] == BITS[:-3]


@pytest.mark.slow
def test_every_flag_at_once_from_the_command_line(tmp_path, cli):
    out = tmp_path / "run"
    flags = ["--carry-state", "--targets", "series", "--new-data-each-epoch", "--cell", "lstm", "--num-layers", 2,
             "--dropout", 0.1]
    result = cli("--num-epochs", 1, "--total-series-length", 1000, "--seed", 0, "--out", out, *flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "Compared with the 2017 run: not comparable, this run changed the source's num_epochs, total_series_length, "
        "carry_state, targets, new_data_each_epoch, cell, num_layers, dropout")
    config = json.loads((out / "run.json").read_text())["config"]
    assert {k: config[k] for k in ("carry_state", "targets", "new_data_each_epoch", "cell", "num_layers", "dropout")} \
        == {"carry_state": True, "targets": "series", "new_data_each_epoch": True, "cell": "lstm", "num_layers": 2,
            "dropout": 0.1}

    evaluated = cli("evaluate", out, "--seed", 5)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "each row of the series carrying the state from window to window" in evaluated.stdout
    assert "target      echo   echo   echo   echo" in evaluated.stdout
    predicted = cli("predict", out, BITS, "--json")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["input"] == BITS
    compared = cli("compare", out)
    assert compared.returncode == 1
    assert compared.stdout.splitlines()[-1].startswith(
        "not comparable with the 2017 run: this run changed the source's num_epochs, total_series_length, "
        "carry_state, targets, new_data_each_epoch, cell, num_layers, dropout")


@pytest.mark.parametrize("flags", [["--cell", "gru"], ["--carry-state"], ["--dropout", "0.2"]])
def test_the_tf2_engine_refuses_a_variant_in_one_line(tmp_path, cli, flags):
    result = cli("--engine", "tf2", *flags, "--out", tmp_path / "run")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"echo_rnn_tf1: error: {flags[0]}: only with --engine tf1 (the tf2 engine "
                                     f"writes out the source's network and loop alone)")
    assert not (tmp_path / "run").exists()


def test_the_tf2_engine_refuses_a_variant_from_python():
    from echo_rnn_tf1 import tf2

    with pytest.raises(ConfigError, match="--num-layers: only with --engine tf1"):
        tf2.start(Config(num_layers=2), 0)
