"""Both worlds of TensorFlow 2: Keras 2 built in (up to 2.15), or tf-keras with TF_USE_LEGACY_KERAS=1 (2.16 on);
when the source's cell is missing, the error names what to install, of which version."""
import gc
import importlib.util
import subprocess
import sys

import pytest

from conftest import ROOT, needs_tf_keras, one_error_line, tensorflow_minor
from echo_rnn_tf1.tfcompat import (_LOADING_NOISE, LEGACY_KERAS_FROM, collector_paused, missing_cell_advice,
                                   minor_version)

# Makes `import tf_keras` fail as if it were not installed (importlib.util.find_spec says None too).
HIDE_TF_KERAS = "import sys; sys.modules['tf_keras'] = None\n"


def python(code):
    """Run ``code`` in a fresh interpreter, which leaves at once when it is done (skipping TensorFlow's teardown)."""
    code += "\nimport os, sys\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("versions, says", [
    (("2.18.1", None, "3.6.0", "1"),
     "TensorFlow 2.18.1 keeps the source's BasicRNNCell in tf-keras, which is not installed; install tf-keras==2.18.*"),
    (("2.18.1", "2.21.0", "3.6.0", "1"),
     "tf-keras 2.21.0 does not fit TensorFlow 2.18.1: they must share major.minor; install tf-keras==2.18.*"),
    (("2.21.0", "2.21.0", "3.13.0", None), "tensorflow was imported before TF_USE_LEGACY_KERAS=1 was set"),
    (("2.15.1", None, "2.15.0", "1"),
     "TF_USE_LEGACY_KERAS=1 makes TensorFlow 2.15.1 look for tf-keras, which is not installed; unset the variable "
     "(Keras 2 is built in) or install tf-keras==2.15.*"),
    (("2.15.0.post1", None, "3.0.0", None),
     "TensorFlow 2.15.0.post1 has no tf.compat.v1.nn.rnn_cell.BasicRNNCell: its built-in Keras 2 is missing or "
     "replaced (keras 3.0.0 is installed); install keras==2.15.*"),
])
def test_the_advice_names_the_package_and_version_to_install(versions, says):
    assert says in missing_cell_advice(*versions)


def test_the_package_sets_the_variable_only_where_tf_keras_is_installed():
    # TensorFlow 2.15 reads TF_USE_LEGACY_KERAS=1 too, and then wants tf-keras instead of its built-in Keras 2.
    code = "import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n{}import echo_rnn_tf1\nprint(os.environ.get('TF_USE_LEGACY_KERAS'))"
    assert python(code.format(HIDE_TF_KERAS)).stdout.strip() == "None"
    assert python(code.format("")).stdout.strip() == ("1" if importlib.util.find_spec("tf_keras") else "None")


def test_minor_version_reads_every_release_spelling():
    assert [minor_version(v) for v in ("2.12.0", "2.15.0.post1", "2.21.0rc1")] == [(2, 12), (2, 15), (2, 21)]


@needs_tf_keras
def test_without_tf_keras_the_cli_says_which_to_install_in_one_line(tmp_path):
    code = HIDE_TF_KERAS + ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n"  # (as in a fresh shell)
                            "from echo_rnn_tf1.cli import main\n"
                            f"sys.exit(main(['--num-epochs', '1', '--total-series-length', '500', '--out', {str(tmp_path / 'run')!r}]))")
    result = python(code)
    wanted = "{}.{}.*".format(*tensorflow_minor())
    assert result.returncode == 5, result.stderr  # (a package missing: docs/commands.md)
    (line,) = result.stderr.splitlines() or [None]  # (not TensorFlow's start-up noise before it)
    assert line.startswith("echo_rnn_tf1: error:") and line.endswith(f"which is not installed; install "
                                                                     f"tf-keras=={wanted}"), result.stderr
    # A start that failed before training leaves nothing in the way of the retry once tf-keras is installed.
    assert not (tmp_path / "run").exists()


# What TensorFlow's C++ side prints while it loads on a machine without a GPU: 2.21's lines, and 2.18's (its E lines
# register CUDA's libraries twice, harmlessly), as they came; and one it could print that says something.
LOADING = ["WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
           "I0000 00:00:1796551424.968393    3594 port.cc:153] oneDNN custom operations are on. You may see slightly "
           "different numerical results due to floating-point round-off errors from different computation orders.\n",
           "I0000 00:00:1796551424.968864    3594 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
           "will not be used.\n",
           "E0000 00:00:1733486400.123456    1234 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
           "register factory for plugin cuDNN when one has already been registered\n",
           "E0000 00:00:1733486400.123789    1234 cuda_blas.cc:1418] Unable to register cuBLAS factory: Attempting to "
           "register factory for plugin cuBLAS when one has already been registered\n"]
SAYS_SOMETHING = "E0000 00:00:1733486400.2    1234 op_kernel.cc:1840] OP_REQUIRES failed: out of memory\n"


def test_the_start_up_noise_is_held_back_and_nothing_else():
    assert [line for line in LOADING + [SAYS_SOMETHING] if not _LOADING_NOISE.search(line)] == [SAYS_SOMETHING]


@needs_tf_keras
def test_a_tf_keras_broken_inside_is_named_and_not_blamed_on_the_variable(tmp_path):
    code = ("import sys; sys.modules['tf_keras.src'] = None\n"  # importing it fails: a part of tf-keras is missing
            "from echo_rnn_tf1.cli import main\n"
            f"sys.exit(main(['--num-epochs', '1', '--total-series-length', '500', '--out', {str(tmp_path / 'run')!r}]))")
    result = python(code)
    errors = [line for line in result.stderr.splitlines() if line.startswith("echo_rnn_tf1: error:")]
    assert result.returncode == 5 and len(errors) == 1, result.stderr
    assert errors[0].startswith("echo_rnn_tf1: error: tf-keras is installed but broken (") and errors[0].endswith(
        "): reinstall it: pip install --force-reinstall tf-keras"), result.stderr


# Makes importing tf-keras raise what protobuf raises for a part built against another protobuf (seen with TensorFlow
# 2.18.1 under tf-keras 2.21.0: pip keeps the newer tf-keras), in TensorFlow's own import or at the cell.
RAISING_TF_KERAS = """import sys, importlib.abc
class Raising(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tf_keras" and name != "tf_keras":
            raise RuntimeError("Detected incompatible Protobuf Gencode/Runtime versions")
sys.meta_path.insert(0, Raising())
"""
@needs_tf_keras
def test_a_tf_keras_whose_import_raises_is_named_in_one_line(tmp_path):
    code = RAISING_TF_KERAS + (
        "from echo_rnn_tf1.cli import main\n"
        f"sys.exit(main(['--num-epochs', '1', '--total-series-length', '500', '--out', {str(tmp_path / 'run')!r}]))")
    result = python(code)
    errors = [line for line in result.stderr.splitlines() if line.startswith("echo_rnn_tf1: error:")]
    assert result.returncode == 5 and len(errors) == 1, result.stderr
    assert errors[0] == ("echo_rnn_tf1: error: tf-keras is installed but broken (RuntimeError: Detected incompatible "
                         "Protobuf Gencode/Runtime versions): reinstall it: pip install --force-reinstall tf-keras")


class RaisingTensorFlow:
    """A TensorFlow whose cell raises as the one above does: here, where TensorFlow is loaded already."""
    __version__ = "{}.{}.1".format(*tensorflow_minor())

    def __getattr__(self, name):
        raise RuntimeError("Detected incompatible Protobuf Gencode/Runtime versions")


@needs_tf_keras
def test_a_tf_keras_of_another_version_is_named_with_the_one_to_install(tmp_path, cli, monkeypatch):
    from importlib import metadata

    version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "2.0.0" if name == "tf-keras" else version(name))
    monkeypatch.setitem(sys.modules, "tensorflow", RaisingTensorFlow())
    result = cli("--num-epochs", 1, "--total-series-length", 500, "--out", tmp_path / "run")
    wanted = "{}.{}.*".format(*tensorflow_minor())
    assert result.returncode == 5 and one_error_line(result.stderr) == (
        f"echo_rnn_tf1: error: tf-keras 2.0.0 does not fit TensorFlow {RaisingTensorFlow.__version__}: they must "
        f"share major.minor; install tf-keras=={wanted}")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(tensorflow_minor() >= LEGACY_KERAS_FROM, reason="TensorFlow 2.15 and older only (Keras 2 built in)")
def test_keras_2_built_in_needs_neither_tf_keras_nor_the_variable():
    code = ("import os; os.environ.pop('TF_USE_LEGACY_KERAS', None)\n" + HIDE_TF_KERAS +
            "import tensorflow\n"  # first, before the package could set anything
            "from echo_rnn_tf1.config import Config\nfrom echo_rnn_tf1.train import train\n"
            "print(len(train(Config(num_epochs=1, total_series_length=500), 0, log=lambda line: None)))\n")
    result = python(code)
    assert result.stdout.strip() == "10", result.stderr


@pytest.mark.slow
def test_a_process_of_its_own_loads_tensorflow_with_the_collector_paused_then_frozen():
    code = ("import gc\nfrom echo_rnn_tf1 import tfcompat\ntfcompat.freeze_on_import()\nbefore = gc.get_freeze_count()\n"
            "tfcompat.import_tensorflow()\nafter = gc.get_freeze_count()\ntfcompat.import_tensorflow()\n"
            "print(before, after, gc.get_freeze_count(), gc.isenabled())")
    before, after, again, enabled = python(code).stdout.split()
    # (Python 3.12 starts with 375 objects frozen already, its built-in types' tuples; 3.11 and 3.13 with none)
    assert int(after) > int(before) and again == after, "only TensorFlow's first import freezes"
    assert enabled == "True"


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_paused_then_left_as_it_was(enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        before = gc.get_freeze_count()
        with collector_paused():
            assert not gc.isenabled()
            made = [[] for _ in range(1000)]
        assert gc.isenabled() == enabled
        assert gc.get_freeze_count() >= before + len(made), "what existed is frozen"
    finally:
        gc.enable()
