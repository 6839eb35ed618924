"""What a trained run learned: its loss and accuracy on fresh data, and its echo of a user's bits.

A run is fed as it was trained: every window from a zero state, as the source; or, for a run that carried its
state (``carry_state``), each row of the series window after window, carrying the state from zeros at its start.
"""
import contextlib
import os
import sys

import numpy as np

from .data import echo_targets, generate_data, zeroed_positions
from .failures import escaped, tensorflow_said
from .model import build_model, trained_variables
from .plots import MOST_ROWS, MOST_WINDOWS
from .record import Run, RunError, file_digest, read_run
from .tfcompat import import_quiet_tensorflow, import_tensorflow
from .train import run_windows, session


@contextlib.contextmanager
def model_with_values(config, values=None, unroll=False):
    """Yield ``(sess, model)``: ``build_model(config, inference=True)`` (any number of windows) in a graph and session
    of its own, holding ``values`` if given (arrays by variable name, as ``sess.run(trained_variables(graph))`` reads
    them from a training session)."""
    tf = import_tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        model = build_model(config, unroll=unroll, inference=True)
    with session(graph) as sess:
        if values is not None:
            load_values(sess, values)
        yield sess, model


def load_values(sess, values):
    """Set the trained variables of ``sess``'s graph to ``values`` (arrays by variable name)."""
    for name, variable in trained_variables(sess.graph).items():
        variable.load(values[name], sess)


@contextlib.contextmanager
def trained_model(run):
    """Yield ``(sess, model, config)``: ``model_with_values`` of the run (a folder, or its ``record.Run`` read
    already), restored from its checkpoint once its files match the SHA-256 run.json recorded and its variables the
    shapes run.json's hyperparameters give them (a Saver restores a variable of the wrong shape without complaint;
    the model would fail only when run). TensorFlow loads here, quietly, once the record is read. A run that did not
    finish but saved a checkpoint (stopped, or killed while it drew) is restored too, with a note on stderr."""
    run = run if isinstance(run, Run) else read_run(run)
    checkpoint = _checkpoint(run)
    tf = import_quiet_tensorflow()

    def cannot(what, error):
        return RunError(f"{checkpoint}: cannot {what} the checkpoint ({type(error).__name__}: "
                        f"{tensorflow_said(error)})")

    with model_with_values(run.config, unroll=run.rnn == "static_rnn") as (sess, model):
        variables = trained_variables(sess.graph)
        try:
            stored = dict(tf.train.list_variables(checkpoint))
        except (tf.errors.OpError, ValueError) as e:
            raise cannot("read", e) from None
        for name, variable in variables.items():
            if stored.get(name) != variable.shape.as_list():
                found = "missing" if name not in stored else f"of shape {stored[name]}"
                raise RunError(f"{checkpoint}: {name} is {found}, but run.json's hyperparameters need shape "
                               f"{variable.shape.as_list()}")
        try:
            with sess.graph.as_default():  # (a Saver makes its ops in the default graph)
                tf.compat.v1.train.Saver(variables).restore(sess, checkpoint)
        except (tf.errors.OpError, ValueError) as e:  # e.g. a .data file missing, emptied or cut short
            raise cannot("restore", e) from None
        if run.status != "finished":  # (told by the very record the checkpoint was checked against)
            print(f"echo_rnn_tf1: note: the run did not finish ({run.state}); this is the checkpoint it saved, after "
                  f"{run.steps_done} steps", file=sys.stderr)
        yield sess, model, run.config


# Why a run has no checkpoint, by the status its run.json gives.
_NO_CHECKPOINT = {"diverged": "a diverged run keeps none",
                  "running": "the run is training now",
                  "failed": "the run failed before it saved one",
                  "interrupted": "the run was stopped before it saved one"}


def _checkpoint(run):
    """The run's checkpoint prefix, its files checked first against the SHA-256 run.json recorded when they were
    saved."""
    if run.checkpoint is None:
        why = "it died before it saved one" if run.died else _NO_CHECKPOINT.get(run.status, "none was saved")
        raise RunError(f"{run.path}: no checkpoint (status {run.status}: {why})")
    try:
        os.path.abspath(run.path).encode("utf-8")
    except UnicodeEncodeError:  # (a byte of another encoding in a folder's name, as the file system handed it over)
        raise RunError(f"{run.path}: not UTF-8, and TensorFlow reads a checkpoint only under a UTF-8 path: rename "
                       f"the folder") from None
    for name, digest in run.checkpoint["sha256"].items():
        path = os.path.join(run.path, name)
        if not os.path.lexists(path):
            raise RunError(f"{path}: missing; the run's checkpoint cannot be restored without it")
        if file_digest(path) != digest:
            raise RunError(f"{path}: damaged (its SHA-256 is not the one run.json recorded when it was saved)")
    return os.path.join(run.path, run.checkpoint["prefix"])


def score_as_trained(sess, model, inputs_value, targets_value, config):
    """Losses and correctness ``[windows, truncated_backprop_length]`` of a series ``[rows, columns]`` fed as
    ``config`` trains (``train.run_windows``): with ``carry_state`` each row window after window, carrying the state;
    otherwise every window from a zero state, as many at once as the graph takes (the training graph: its batch)."""
    length = config.truncated_backprop_length
    if not config.carry_state:  # every window a row of its own
        inputs_value, targets_value = inputs_value.reshape(-1, length), targets_value.reshape(-1, length)
    chunk = model.batchX_placeholder.shape[0] or len(inputs_value)
    losses, correct = [], []
    for start in range(0, len(inputs_value), chunk):
        batchX, batchY = inputs_value[start:start + chunk], targets_value[start:start + chunk]
        fed = [values for _, values in run_windows(sess, model, batchX, batchY, [model.losses, model.predictions],
                                                   config.carry_state)]
        predicted = np.stack([p for _, p in fed], axis=1).argmax(axis=-1)  # [rows, windows, length]
        losses.append(np.stack([window_losses for window_losses, _ in fed], axis=1).reshape(-1, length))
        correct.append((predicted == batchY.reshape(predicted.shape)).reshape(-1, length))
    return np.concatenate(losses), np.concatenate(correct)


def report(losses, correct, config, seed):
    """The evaluation report: loss, accuracy, accuracy by position in the window."""
    return {
        "seed": seed,
        "windows": int(correct.shape[0]),
        "loss": _finite(losses.mean(dtype=np.float64)),  # (a float32 sum of many losses overflowed to inf)
        "accuracy": float(correct.mean()),
        "accuracy_by_position": [float(a) for a in correct.mean(axis=0)],
        "echo_step": config.echo_step,
    }


def _finite(value):
    """``value`` as a float, or None where it is not finite (a loss of a net certain and wrong): JSON has no inf."""
    return float(value) if np.isfinite(value) else None


def evaluate(run, seed):
    """Loss and accuracy of a trained run (a folder, or its ``record.Run``) on a fresh series drawn with ``seed`` (the
    training recipe, new numbers), fed as the run was trained (see ``evaluate_model``)."""
    with trained_model(run) as (sess, model, config):
        return evaluate_model(sess, model, config, seed)


def evaluate_model(sess, model, config, seed):
    """Loss and accuracy of ``model`` on a fresh series drawn with ``seed``, fed as ``config`` trains.

    As the source: every window from a zero state; positions before ``echo_step`` have target 0, and from
    ``echo_step`` on the target is the input ``echo_step`` steps earlier. With ``carry_state``: each of the
    ``batch_size`` rows of the series from a zero state at its start, carrying the state; with
    ``targets == "series"`` every position is an echo but the series' first ``echo_step``.
    """
    inputs_value, targets_value = generate_data(config, np.random.RandomState(seed))
    return report(*score_as_trained(sess, model, inputs_value, targets_value, config), config, seed)


def held_out_predictions(sess, model, config, seed, num_windows=MOST_WINDOWS, num_rows=MOST_ROWS):
    """The first ``num_windows`` windows (fewer if a row has fewer) of the first ``num_rows`` rows (fewer if the
    batch has fewer) of a fresh series, fed as ``config`` trains: ``(inputs, targets, probability of a 1)``, each
    ``[rows, windows * truncated_backprop_length]``. Works with the training graph too, whose batch has a fixed
    size."""
    inputs_value, targets_value = generate_data(config, np.random.RandomState(seed))
    rows = min(num_rows, config.batch_size)
    length = min(num_windows, config.num_batches) * config.truncated_backprop_length
    fed_rows = config.batch_size if model.batchX_placeholder.shape[0] else rows
    inputs, targets = inputs_value[:fed_rows, :length], targets_value[:fed_rows, :length]
    fed = run_windows(sess, model, inputs, targets, model.predictions, config.carry_state)
    probabilities = np.concatenate([window for _, window in fed], axis=1)
    return inputs[:rows], targets[:rows], probabilities[:rows, :, 1]


def evaluation_lines(result, config, run_dir):
    """``evaluate``'s result for people: loss, accuracy, accuracy by position in the window, and the memory."""
    length = config.truncated_backprop_length
    yield (f"Evaluated {escaped(run_dir)} on a fresh series (seed {result['seed']}): {result['windows']} windows of "
           f"{length}, {how_fed(config)}")
    yield f"loss      {result['loss']:.6g}"
    yield f"accuracy  {100 * result['accuracy']:.2f} % of {result['windows'] * length} bits"
    yield "position  " + " ".join(f"{i:>6}" for i in range(length))
    yield "target    " + " ".join(f"{'0' if i < zeroed_positions(config) else 'echo':>6}" for i in range(length))
    yield "accuracy  " + " ".join(f"{100 * a:>6.2f}" for a in result["accuracy_by_position"])
    remembers = result["memory"]
    yield (f"memory: how well the input k steps back can be read from the state ({remembers['probe']}; the same "
           f"series)")
    yield "lag k     " + " ".join(f"{k:>6}" for k in remembers["lags"])
    for name in ("untrained", "trained"):
        yield f"{name:<10}" + " ".join("     -" if a is None else f"{100 * a:>6.1f}" for a in remembers[name])


def how_fed(config):
    """How a run of ``config`` is fed, in words."""
    if config.carry_state:
        return "each row of the series carrying the state from window to window, from zeros at its start"
    return "each from a zero state"


def targets_in_words(config):
    """What a run of ``config`` is trained to answer, in words."""
    zeroed = "of each window" if config.targets == "window" else "of the series"
    return f"the first {config.echo_step} {zeroed} 0, the rest the input {config.echo_step} steps earlier"


def bit_windows(bits, config):
    """A user's bit string (spaces between windows, as ``predict`` prints them, are let be) as ``[windows,
    truncated_backprop_length]`` ints, or RunError saying what is wrong."""
    length, bits = config.truncated_backprop_length, "".join(bits.split())
    if not bits or set(bits) - {"0", "1"}:
        raise RunError(f"BITS {bits[:40]!r}: must be a string of 0 and 1")
    if len(bits) % length:
        raise RunError(f"BITS: {len(bits)} bits is not a multiple of truncated_backprop_length ({length}); "
                       f"the run learned windows of {length}")
    return np.array([int(b) for b in bits]).reshape(-1, length)


def predict(run, bits):
    """The prediction of a run (a folder, or its ``record.Run``) for a string of 0/1 whose length is a multiple of
    ``truncated_backprop_length``; bad bits are refused before TensorFlow loads.

    Returns ``{"input", "target", "prediction"}`` as bit strings. Fed as the run was trained: each window from a
    zero state, or (``carry_state``) the bits as one series, window after window, carrying the state.
    """
    run = run if isinstance(run, Run) else read_run(run)
    inputs = bit_windows(bits, run.config)
    bits = "".join(map(str, inputs.reshape(-1)))
    with trained_model(run) as (sess, model, config):
        targets = echo_targets(inputs.reshape(-1), config)
        rows = (1, -1) if config.carry_state else inputs.shape  # one series, or every window a row of its own
        fed = run_windows(sess, model, inputs.reshape(rows), targets.reshape(rows), model.predictions,
                          config.carry_state)
        predictions = np.concatenate([window for _, window in fed], axis=1)
    return {"input": bits,
            "target": "".join(map(str, targets)),
            "prediction": "".join(map(str, predictions.argmax(axis=-1).reshape(-1)))}


def prediction_lines(result, config):
    """``predict``'s result for people: input, target and prediction window by window, a line of whole windows each
    (``^`` under a wrong bit), then the count of right bits."""
    length = config.truncated_backprop_length
    step = max(1, 72 // (length + 1)) * length  # whole windows per line

    def spaced(text):
        return " ".join(text[i:i + length] for i in range(0, len(text), length))

    for start in range(0, len(result["input"]), step):
        for name in ("input", "target", "prediction"):
            yield f"{name:<11} " + spaced(result[name][start:start + step])
        wrong = "".join(" " if a == b else "^" for a, b in zip(result["target"][start:start + step],
                                                                 result["prediction"][start:start + step]))
        if wrong.strip():
            yield f"{'wrong':<11} " + spaced(wrong)
        yield ""
    right = sum(a == b for a, b in zip(result["target"], result["prediction"]))
    yield f"{right} of {len(result['target'])} bits as trained: {targets_in_words(config)}"
