"""The notebook: it runs top to bottom headless, and its committed outputs are a real full run of this code; both
notebooks are committed as JupyterLab saves them (``python tests/test_notebook.py`` makes them so)."""
import glob
import inspect
import io
import json
import os
import re

import numpy as np
import pytest

from conftest import ROOT
from echo_rnn_tf1.compare import compare
from echo_rnn_tf1.config import Config
from echo_rnn_tf1.logs import parse_log, read_reference

NOTEBOOK = os.path.join(ROOT, "notebooks", "echo_rnn_tf1.ipynb")
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
WIDTH = 98  # characters of code a JupyterLab cell shows at the default zoom; longer lines wrap, mid-word
REFERENCE = parse_log(read_reference(), "2017 log")
# Seed 0's 50 logged losses over five epochs, against the machine the outputs were committed from, at most
# (scripts/cross_machine.py): 1.7e-5 with oneDNN's custom operations off, 1.5e-5 capped at SSE4.1, 8.5e-6 at
# AVX2; 1.5e-5 on an Intel Xeon with AMX. Seed 0 does not escape a plateau mid-run: its trajectory stays put.
NOTEBOOK_RTOL = 1e-4


def read_notebook():
    import nbformat  # (here, not at the top: its import takes seconds, for the tests that read a notebook only)

    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_cell(nb):
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def parameters(nb):
    source = parameters_cell(nb).source
    return {name: int(re.search(rf"^{name} = (\d+)", source, re.M).group(1)) for name in ("num_epochs", "seed")}


def stdout_lines(nb):
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout").splitlines()


def images(nb):
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def log_lines(lines):
    return [line for line in lines if line.startswith(("New data, epoch ", "Step "))]


@pytest.fixture(scope="session")  # (a module's is made again when other modules' tests come between)
def short_run():
    nb = read_notebook()
    parameters_cell(nb).source = "num_epochs = 1\nseed = 3"
    # Run from the notebook's own folder, as Jupyter does: the package must import without path fiddling.
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    return nb


@pytest.mark.slow
@pytest.mark.xdist_group("notebook")
def test_short_run_has_no_errors_and_prints_the_source_log(short_run, faithful_epoch):
    assert not [o for c in short_run.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    lines = stdout_lines(short_run)
    _, expected = faithful_epoch(3)  # the log of train(Config(num_epochs=1), 3)
    assert log_lines(lines) == list(expected)  # the notebook's log is the package's, to the character


@pytest.mark.slow
@pytest.mark.xdist_group("notebook")
def test_short_run_draws_the_pictures_and_the_verdict(short_run):
    # loss with the 2017 run, predictions, accuracy by position; what the network learned: memory, states, weights
    assert images(short_run) == 6
    lines = stdout_lines(short_run)
    assert any(line.startswith("NO MATCH: the run stops early") for line in lines)  # 1 epoch of 5
    assert any(line.startswith("rnn_outputs: (5, 10, 4) -> reshaped: (50, 4)") for line in lines)
    assert any(line.startswith("TF2 engine: 1000 steps in ") for line in lines)  # both engines in one kernel
    assert [line.split(":")[0].strip() for line in lines if " without error at lags " in line] == [
        "untrained", "trained"]
    assert [line for line in lines if line.startswith("the input ")][0].startswith("the input 0 back: h")
    assert any(line.startswith(("a delay line: the input -> h", "not one unit per lag")) for line in lines)


SECTIONS = ["## 定义参数", "## 生成数据", "## 定义模型", "## 训练模型"]


def sections(nb):
    """``{heading: cells under it}`` for the notebook's ``## `` sections, in order."""
    found, current = {}, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            current = cell.source.splitlines()[0].split(" ·")[0]
            found[current] = []
        elif current is not None:
            found[current].append(cell)
    return found


def test_sections_are_the_sources_in_order_under_a_title():
    nb = read_notebook()
    assert nb.cells[0].source.startswith("# 使用tensorflow Rnn_cell api 实现")  # a heading, as the source meant
    assert [h for h in sections(nb) if h in SECTIONS] == SECTIONS


def words(code):
    """The words of ``code`` in order, without the "#" that starts a comment (a folded comment repeats it)."""
    return [word for word in code.split() if word != "#"]


def test_each_section_shows_the_code_that_runs():
    # The package's own source, displayed in the section where it runs, as it is in the package now: its words in
    # their order, its lines folded to the cell's width (the package's reach 120 characters). Config: its fields
    # only, not the validation after them.
    from echo_rnn_tf1 import config, data, model, train

    shown = {heading: [o.data["text/plain"] for c in cells if c.cell_type == "code" for o in c.outputs
                       if o.output_type == "display_data" and "text/html" in o.data]
             for heading, cells in sections(read_notebook()).items()}
    fields = inspect.getsource(config.Config).split("\n    def __post_init__")[0]
    expected = {"## 定义参数": [fields], "## 生成数据": [data.generate_data, data.zero_window_starts],
                "## 定义模型": [model.make_cell, model.build_model],
                "## 训练模型": [train.run_training, train.run_windows, train.after_step]}
    for heading, objects in expected.items():
        sources = [obj if isinstance(obj, str) else inspect.getsource(obj) for obj in objects]
        assert [words(code) for code in shown[heading]] == [words(source) for source in sources], heading
        assert max(len(line) for code in shown[heading] for line in code.splitlines()) <= WIDTH, heading
    assert "validate" not in shown["## 定义参数"][0] and "num_epochs: int = 5" in shown["## 定义参数"][0]
    model_code, loop_code = "\n".join(shown["## 定义模型"]), "\n".join(shown["## 训练模型"])
    for line in ("v1.placeholder(tf.int32", "rnn_cell.BasicRNNCell", "v1.nn.dynamic_rnn(", "AdagradOptimizer("):
        assert line in model_code
    assert "sess.run(" in loop_code and "feed_dict=" in loop_code


def saved_as_jupyterlab_saves(path):
    """The bytes of the notebook at ``path`` as JupyterLab saves it: each run of consecutive stream outputs of one
    name in a cell merged into one (JupyterLab's output area merges them as it shows them), written by
    ``nbformat.write`` as jupyter_server writes (JSON indented by 1, keys sorted, multi-line strings as lists of
    lines, a final newline)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        merged = []
        for output in cell.outputs:
            if merged and output.output_type == "stream" and merged[-1].get("name") == output.name:
                merged[-1].text += output.text
            else:
                merged.append(output)
        cell.outputs = merged
    text = io.StringIO()
    nbformat.write(nb, text)
    return text.getvalue().encode("utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_committed_notebooks_are_as_jupyterlab_saves_them_with_no_error_nor_stderr(path):
    # Opened in JupyterLab, a notebook whose streams come in pieces (as nbclient records them) shows as modified at
    # once; stderr would be TensorFlow's start-up noise, which a fresh run does not show.
    with open(path, "rb") as f:
        committed = f.read()
    assert committed == saved_as_jupyterlab_saves(path), f"run: python tests/{os.path.basename(__file__)}"
    cells = [c for c in json.loads(committed)["cells"] if c["cell_type"] == "code"]
    outputs = [o for c in cells for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert not [o for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"]
    assert not [o for o in outputs if re.search(r"absl|port\.cc", "".join(o.get("text", "")))]
    for cell in cells:
        streams = [o.get("name") for o in cell["outputs"]]  # (None: not a stream)
        assert not [name for name, after in zip(streams, streams[1:]) if name and name == after]


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")  # (with conftest's full_default_run, see test_full_run)
def test_committed_outputs_are_a_full_run_of_this_code(full_default_run):
    # The outputs were committed from one machine; this one may round differently (docs/machines.md): the same
    # 55 lines, each loss within the spread measured across machines, and the same verdict.
    nb = read_notebook()
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # run top to bottom, once
    params = parameters(nb)
    assert params["num_epochs"] == Config().num_epochs  # the committed notebook is the full 5 epochs
    assert params["seed"] == 0  # ... of seed 0, which the CLI trains here (test_full_run) with the package's code
    out, result = full_default_run
    assert result.returncode == 0, result.stderr
    expected = (out / "train.log").read_text().splitlines()
    lines = stdout_lines(nb)
    committed = parse_log("\n".join(log_lines(lines)))
    fresh = parse_log("\n".join(expected))
    assert len(expected) == 55 and [p[:2] for p in committed] == [p[:2] for p in fresh]
    np.testing.assert_allclose([p.loss for p in committed], [p.loss for p in fresh], rtol=NOTEBOOK_RTOL)
    assert any(line.startswith("MATCH: ") for line in lines) and compare(fresh, REFERENCE).match
    assert images(nb) == 6
    assert "a delay line: the input -> h" in "\n".join(lines)  # seed 0's units pass the input on, one lag each


if __name__ == "__main__":  # the notebooks rewritten as JupyterLab would save them, after a run by nbclient
    for notebook in NOTEBOOKS:
        normalized = saved_as_jupyterlab_saves(notebook)
        with open(notebook, "wb") as f:
            f.write(normalized)
