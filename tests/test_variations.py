"""The page of measured variants, notebooks/variations.ipynb: its measure on hand-computed cases and against the
memory probe, a headless run with short runs, and its committed outputs a full run of this code."""
import dataclasses
import os
import re

import numpy as np
import pytest

from conftest import ROOT, TINY, memory_table
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.memory import DATA_SEED, memory_lags
from echo_rnn_tf1.record import read_losses
from echo_rnn_tf1.variations import FINAL_STEPS, HARDER, ROWS, memory_figure, probed, steps_to_learn, train_and_evaluate

NOTEBOOK = os.path.join(ROOT, "notebooks", "variations.ipynb")
FULL = {"num_epochs": "3", "hard_epochs": "10", "seeds": "[0, 1, 2]", "total_series_length": "50000"}
SHORT = {"num_epochs": "1", "hard_epochs": "1", "seeds": "[0]", "total_series_length": "1000"}


def test_steps_to_learn_by_hand():
    # 2 epochs of 4 steps; the second epoch's first step (4) is not counted.
    assert steps_to_learn([0.5, 0.005, 0.005, 0.005, 0.2, 0.005, 0.005, 0.005], 4) == 1
    assert steps_to_learn([0.5, 0.5, 0.005, 0.005, 0.2, 0.02, 0.005, 0.005], 4) == 6
    assert steps_to_learn([0.5, 0.005, 0.005, 0.005, 0.2, 0.005, 0.005, 0.05], 4) is None
    assert steps_to_learn([0.001] * 8, 4) == 0
    assert steps_to_learn([0.5, 0.005, 0.02, 0.005], 1) == 3  # one step an epoch: every step counts


@pytest.fixture(scope="module")
def tiny_results():
    """The source and a carried-state LSTM, TINY (2 epochs of 100 steps), seed 0, measured."""
    configs = {"source": TINY, "LSTM, carried state": dataclasses.replace(TINY, cell="lstm", carry_state=True)}
    return {name: (config, [train_and_evaluate(config, 0, DATA_SEED)]) for name, config in configs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["source", "LSTM, carried state"])
def test_the_memory_measured_is_the_probes_of_the_trained_net(tiny_results, name):
    # memory_table trains the same seed the same way in this process: the same bits, so the same probe to the bit
    config, (result,) = tiny_results[name]
    assert result.memory.shape == memory_lags(config).shape
    np.testing.assert_array_equal(result.memory, memory_table(config, 0).trained.accuracy)


@pytest.mark.slow
def test_the_memory_figure_has_a_panel_per_variant_a_line_per_seed_and_the_first_to_compare(tiny_results):
    panels = [ax for ax in memory_figure(tiny_results, title="memory").axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["source", "LSTM, carried state (h probed, not c)"]
    assert [len(ax.get_lines()) for ax in panels] == [1 + 2, 2 + 2]  # seeds (+ the first's mean), echo, chance
    np.testing.assert_array_equal(panels[1].get_lines()[0].get_ydata(), tiny_results["source"][1][0].memory)
    assert probed(dataclasses.replace(TINY, num_layers=2)) == " (probed: the last layer)" and probed(TINY) == ""


def read_page():
    import nbformat  # (here, not at the top: its import takes seconds, for the tests that read the page only)

    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_cell(nb):
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def parameters(nb):
    return dict(re.findall(r"^(\w+) = (.+?)\s*(?:#.*)?$", parameters_cell(nb).source, re.M))


def outputs(nb, kind):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if kind(o)]


def stdout(nb):
    return "".join(o.text for o in outputs(nb, lambda o: o.output_type == "stream" and o.name == "stdout"))


def tables(nb):
    return [o.data["text/markdown"] for o in outputs(nb, lambda o: "text/markdown" in o.get("data", {}))]


def images(nb):
    return len(outputs(nb, lambda o: "image/png" in o.get("data", {})))


def table_row(markdown, name):
    (line,) = [line for line in markdown.splitlines() if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.fixture(scope="module")
def short_run():
    nb = read_page()
    parameters_cell(nb).source = "\n".join(f"{name} = {value}" for name, value in SHORT.items())
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    return nb


@pytest.mark.slow
def test_the_page_runs_headless_with_short_runs(short_run):
    assert not outputs(short_run, lambda o: o.output_type == "error")
    assert images(short_run) == 6  # loss, accuracy and memory, for the variants and for the harder task
    variants, variants_memory, hard, hard_memory = tables(short_run)
    assert all(table_row(variants, name)[1] in ("never", *map(str, range(21))) for name in ROWS)
    assert [table_row(hard, name)[0] for name in HARDER] == list(HARDER)
    assert [table_row(variants_memory, name)[0] for name in ROWS] == list(ROWS)
    assert [table_row(hard_memory, name)[0] for name in HARDER] == list(HARDER)
    assert "This page ran in " in stdout(short_run)


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")  # (with conftest's full_default_run, see test_full_run)
def test_committed_page_is_a_full_run_of_this_code(full_default_run):
    nb = read_page()
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # run top to bottom, once
    assert parameters(nb) == FULL
    assert images(nb) == 6 and not outputs(nb, lambda o: o.output_type == "error")
    assert re.search(r"^\d{4}-\d\d-\d\d \| TensorFlow \d.*\n.+ cores?, oneDNN ", stdout(nb), re.M)  # when and where
    variants, variants_memory, hard, hard_memory = tables(nb)
    assert [table_row(variants, name)[0] for name in ROWS] == list(ROWS)
    assert [table_row(hard, name)[0] for name in HARDER] == list(HARDER)
    assert [table_row(variants_memory, name)[0] for name in ROWS] == list(ROWS)
    assert [table_row(hard_memory, name)[0] for name in HARDER] == list(HARDER)

    # The source's row, seed 0, again on this machine: the first epochs of conftest's full_default_run (seed 0 of
    # the source's defaults; measure trains the same, for fewer epochs). Seed 0's losses agree across machines to
    # 1.4e-5 (see docs/machines.md), so the step its loss last crosses 0.01 is the same, and its final loss is the
    # committed one to the 2 significant digits the table prints (half a unit of the last digit: at most 5 % relative).
    out, result = full_default_run
    assert result.returncode == 0, result.stderr
    config = Config(num_epochs=int(FULL["num_epochs"]))
    losses = read_losses(out / "losses.csv")[2][:config.num_steps]
    committed_steps, committed_final = (table_row(variants, "source")[i].split(", ")[0] for i in (1, 2))
    assert str(steps_to_learn(losses, config.num_batches)) == committed_steps
    final_loss = float(losses[-FINAL_STEPS:].mean())  # as measure computes it
    assert abs(final_loss - float(committed_final)) <= 0.05 * float(committed_final)
