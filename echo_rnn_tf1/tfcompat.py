"""Import TensorFlow so that the source's ``BasicRNNCell`` exists on TensorFlow 2.12 to 2.21.

Two worlds. Up to TensorFlow 2.15, Keras 2 is built in (the ``keras`` package of TensorFlow's own minor
version) and ``tf.compat.v1.nn.rnn_cell`` has the TF1 cells. Since 2.16, ``tf.keras`` is Keras 3 and the cells
come from the legacy Keras package, tf-keras of TensorFlow's minor version, and only when
``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is first imported. TensorFlow 2.15 reads that variable too,
and then wants tf-keras instead of its built-in Keras 2: so it is set only where tf-keras is installed.
``tf.contrib`` is gone; ``tf.contrib.rnn.BasicRNNCell`` of TF 1.4 is this same class.
"""
import contextlib
import gc
import importlib
import os
import re
import sys
import tempfile
import warnings

from .failures import PACKAGES, HeldStops, PackageError

LEGACY_KERAS_FROM = (2, 16)  # the first TensorFlow whose tf.keras is Keras 3, so the cells need tf-keras

_freeze_on_import = False  # (freeze_on_import)


class LegacyKerasError(PackageError):
    """The TF1 RNN cells are unavailable (exit code 5: the installed packages lack what the source needs); the
    message says why and what to install or change."""


def prefer_legacy_keras():
    """Set ``TF_USE_LEGACY_KERAS=1`` if TensorFlow is not imported yet and tf-keras is installed (nothing is imported)."""
    from importlib import util

    if "tensorflow" not in sys.modules and util.find_spec("tf_keras") is not None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"


def freeze_on_import():
    """For a process of the package's own (the command line, an envelope's worker), not a notebook's kernel: run
    TensorFlow's first import with Python's garbage collector paused, then freeze what exists out of every later
    collection. The collector otherwise walks TensorFlow's 455,000 objects 6 times during the import and at every
    full collection after: 0.5 s of a whole ``--engine tf2`` run, 0.01 s with this (Python 3.11, TensorFlow 2.21);
    the 1,536 of them that are garbage are never freed, and a run's peak memory is the same to 0.2 %."""
    global _freeze_on_import
    _freeze_on_import = True


def import_tensorflow():
    """Return the ``tensorflow`` module, with the legacy Keras cells available, or raise LegacyKerasError."""
    prefer_legacy_keras()
    try:
        with collector_paused() if _freeze_on_import and "tensorflow" not in sys.modules else contextlib.nullcontext():
            import tensorflow as tf
        tf.compat.v1.nn.rnn_cell.BasicRNNCell
    except Exception as e:  # Keras 3: AttributeError "not available with Keras 3"; a tf-keras of another version:
        raise _cannot_load(e) from e  # whatever its import raises (protobuf's VersionError), in TensorFlow's too
    return tf


def _cannot_load(error):
    """What to raise when TensorFlow or its cell does not load: the ImportError of a package missing or broken inside
    (failures names it), or LegacyKerasError with the advice for the installed versions."""
    if isinstance(error, ImportError) and (error.name or "").split(".")[0] in set(PACKAGES) - {"tf_keras"}:
        return error  # (tensorflow or numpy, missing or broken)
    tf_version = getattr(sys.modules.get("tensorflow"), "__version__", None) or installed_version("tensorflow",
                                                                                                   "tensorflow")
    if not str(tf_version)[:1].isdigit():  # (tensorflow-cpu, a source build: no version to advise by)
        return error
    versions = tf_version, installed_version("tf_keras", "tf-keras"), installed_version("keras", "keras")
    if _fits(*versions[:2]):  # tf-keras of TensorFlow's own version, broken inside (a part missing, ...)
        broken = error if isinstance(error, ImportError) and "." in (error.name or "") else _import_error("tf_keras")
        if broken is None and not isinstance(error, (AttributeError, ImportError)):
            broken = ImportError(f"{type(error).__name__}: {error}", name="tensorflow")  # (TensorFlow's own)
        if broken is not None:
            return broken
    return LegacyKerasError(missing_cell_advice(*versions, os.environ.get("TF_USE_LEGACY_KERAS")))


def _fits(tf_version, tf_keras_version):
    """Whether tf-keras is installed with TensorFlow's major.minor (or of a version not known)."""
    return tf_keras_version is not None and (not tf_keras_version[:1].isdigit()
                                             or minor_version(tf_keras_version) == minor_version(tf_version))


def _import_error(module):
    """What importing an installed ``module`` raises (TensorFlow's loader swallows it), as an ImportError; or None."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        return None if e.name == module else e  # (not installed: the advice says so)
    except Exception as e:  # (protobuf's VersionError: a part built for another version)
        return ImportError(f"{type(e).__name__}: {e}", name=module)
    return None


def minor_version(version):
    """``(major, minor)`` of a version string such as ``"2.18.1"`` or ``"2.15.0.post1"``."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def missing_cell_advice(tf_version, tf_keras_version, keras_version, legacy_keras_variable):
    """One line: why ``BasicRNNCell`` is missing for these installed versions (None: not installed), and the fix."""
    tf_minor = minor_version(tf_version)
    wanted = "{}.{}.*".format(*tf_minor)
    if tf_minor < LEGACY_KERAS_FROM and legacy_keras_variable == "1" and tf_keras_version is None:
        return (f"TF_USE_LEGACY_KERAS=1 makes TensorFlow {tf_version} look for tf-keras, which is not installed; "
                f"unset the variable (Keras 2 is built in) or install tf-keras=={wanted}")
    if tf_minor < LEGACY_KERAS_FROM:
        return (f"TensorFlow {tf_version} has no tf.compat.v1.nn.rnn_cell.BasicRNNCell: its built-in Keras 2 is "
                f"missing or replaced (keras {keras_version} is installed); install keras=={wanted}")
    if tf_keras_version is None:
        return (f"TensorFlow {tf_version} keeps the source's BasicRNNCell in tf-keras, which is not installed; "
                f"install tf-keras=={wanted}")
    if not _fits(tf_version, tf_keras_version):
        return (f"tf-keras {tf_keras_version} does not fit TensorFlow {tf_version}: they must share major.minor; "
                f"install tf-keras=={wanted}")
    if legacy_keras_variable != "1":
        return ("tensorflow was imported before TF_USE_LEGACY_KERAS=1 was set, so "
                "tf.compat.v1.nn.rnn_cell.BasicRNNCell is unavailable. Import echo_rnn_tf1 before tensorflow, or "
                "set TF_USE_LEGACY_KERAS=1 first (restart the kernel in a notebook)")
    return (f"tf.compat.v1.nn.rnn_cell.BasicRNNCell is unavailable with TensorFlow {tf_version} and tf-keras "
            f"{tf_keras_version}, although TF_USE_LEGACY_KERAS=1: was it set only after tensorflow was imported?")


def installed_version(module, distribution):
    """The installed version of ``distribution`` if ``module`` can be imported, else None (nothing is imported)."""
    from importlib import metadata, util

    if util.find_spec(module) is None:
        return None
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:  # importable, but not from that distribution (a source checkout)
        return "(version unknown)"


# What TensorFlow's C++ side prints while it loads, before it reads TF_CPP_MIN_LOG_LEVEL: information only.
_LOADING_NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)|"
                            r"^[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_\w+)\.cc:\d+\]|"
                            r"^To enable the following instructions|^\s*$")


def import_quiet_tensorflow():
    """``import_tensorflow()`` without the chatter, for the command line and the notebook
    (``TF_CPP_MIN_LOG_LEVEL=0`` in the environment shows it all).

    TensorFlow's deprecation notices for the source's API are silenced: using that API is the point here. What
    TensorFlow prints on stderr while loading is held back; any line that is not known start-up noise is passed
    on, whether it loads or fails (the line of a failure follows). A stop signal meanwhile waits for the import's
    end (``failures.HeldStops``): raised in its middle, it broke it.
    """
    quiet = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3") != "0"
    warnings.filterwarnings("ignore", message=r".*tf\.nn\.rnn_cell\.\w+. is deprecated", category=UserWarning)
    if not quiet or "tensorflow" in sys.modules:
        tf = import_tensorflow()
    else:
        held = []
        try:
            with HeldStops(), _held_stderr(held):  # a stop signal waits for the import's end
                tf = import_tensorflow()
        finally:
            sys.stderr.write("".join(line for line in held if not _LOADING_NOISE.search(line)))
    tf.get_logger().setLevel("ERROR")
    return tf


@contextlib.contextmanager
def collector_paused():
    """Python's garbage collector off while the block runs; then everything alive is frozen out of later collections
    (``gc.freeze``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _held_stderr(held):
    """Send file descriptor 2 (where C++ code writes) to a temporary file; afterwards ``held`` has its lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            file.seek(0)
            held.extend(file.read().decode("utf-8", "replace").splitlines(keepends=True))
