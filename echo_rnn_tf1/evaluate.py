"""What a trained run learned: its loss and accuracy on fresh data, and its echo of a user's bits."""
import contextlib
import os

import numpy as np

from .data import echo_targets, generate_data, windows
from .model import TRAINED_VARIABLES, build_model
from .plots import MOST_ROWS, MOST_WINDOWS
from .runs import CHECKPOINT_STATE, RUN_JSON, RunError, file_digest, load_run, open_regular
from .tfcompat import import_tensorflow


@contextlib.contextmanager
def trained_model(run_dir):
    """Yield ``(sess, model, config)``: an inference graph for any number of windows, with the run's variables."""
    info, config = load_run(run_dir)
    tf = import_tensorflow()
    checkpoint = _checkpoint(tf, str(run_dir), info)
    graph = tf.Graph()
    with graph.as_default():
        model = build_model(config, unroll=info.get("rnn") == "static_rnn", inference=True)
        variables = {v.op.name: v for v in graph.get_collection("trainable_variables")}
        _check_checkpoint(tf, checkpoint, {name: variables[name].shape.as_list() for name in TRAINED_VARIABLES})
        saver = tf.compat.v1.train.Saver({name: variables[name] for name in TRAINED_VARIABLES})
    with tf.compat.v1.Session(graph=graph) as sess:
        try:
            saver.restore(sess, checkpoint)
        except (tf.errors.OpError, ValueError) as e:  # e.g. a .data file missing, emptied or cut short
            raise RunError(f"{checkpoint}: cannot restore the checkpoint ({_first_line(e)})") from None
        yield sess, model, config


def _checkpoint(tf, run_dir, info):
    """The run's checkpoint prefix, its files checked first: against the SHA-256 run.json recorded when they were
    saved, or (a run recorded before that) as regular files found through TensorFlow's ``checkpoint`` file."""
    no_checkpoint = RunError(f"{run_dir}: no checkpoint (status {info.get('status')!r}; a diverged run keeps none)")
    recorded = info.get("checkpoint")
    if "files" in info and not recorded:  # the record says which: none
        raise no_checkpoint
    if recorded is not None:
        try:
            prefix, digests = recorded["prefix"], dict(recorded["sha256"])
            if os.path.basename(prefix) != prefix or not digests:
                raise ValueError(prefix)
        except (TypeError, KeyError, ValueError):
            raise RunError(f"{os.path.join(run_dir, RUN_JSON)}: unreadable checkpoint record {recorded!r:.80}") from None
        for name, digest in digests.items():
            path = os.path.join(run_dir, os.path.basename(str(name)))
            if not os.path.lexists(path):
                raise RunError(f"{path}: missing; the run's checkpoint cannot be restored without it")
            if file_digest(path) != digest:
                raise RunError(f"{path}: damaged (its SHA-256 is not the one run.json recorded when it was saved)")
        return os.path.join(run_dir, prefix)
    state = os.path.join(run_dir, CHECKPOINT_STATE)
    if os.path.lexists(state):
        open_regular(state, "checkpoint file").close()  # TensorFlow would wait forever on a FIFO
    try:
        checkpoint = tf.train.latest_checkpoint(run_dir)
    except (tf.errors.OpError, ValueError) as e:  # an empty or garbled checkpoint file
        raise RunError(f"{state}: unreadable ({_first_line(e)})") from None
    if checkpoint is None:
        raise no_checkpoint
    for name in os.listdir(run_dir):
        if name.startswith(os.path.basename(checkpoint) + "."):
            open_regular(os.path.join(run_dir, name), "checkpoint file").close()
    return checkpoint


def _first_line(error):
    """What went wrong, in one line: TensorFlow's messages start with lines about where the graph failed."""
    where = ("Graph execution error", "Detected at node", "File ", "Node:", "[[")
    lines = [line.strip() for line in str(error).splitlines()]
    said = [line for line in lines if line and not line.startswith(where)]
    return f"{type(error).__name__}: {(said or lines or [''])[0]}"


def _check_checkpoint(tf, checkpoint, expected):
    """Refuse a damaged checkpoint, or one whose variables do not have the ``expected`` shapes (by name), which
    come from run.json's hyperparameters.

    (A Saver restores a variable of the wrong shape without complaint; the model would fail only when run.)
    """
    try:
        stored = dict(tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError) as e:
        raise RunError(f"{checkpoint}: cannot read the checkpoint ({_first_line(e)})") from None
    for name, shape in expected.items():
        if stored.get(name) != shape:
            found = "missing" if name not in stored else f"of shape {stored[name]}"
            raise RunError(f"{checkpoint}: {name} is {found}, but run.json's hyperparameters need shape {shape}")


def score(sess, model, batchX, batchY):
    """Per-window losses and correctness ``[windows, truncated_backprop_length]`` of ``model`` in ``sess``.

    Works with the training graph too: windows are fed in chunks of its fixed batch size.
    """
    chunk = model.batchX_placeholder.shape[0] or len(batchX)
    losses, correct = [], []
    for start in range(0, len(batchX), chunk):
        x, y = batchX[start:start + chunk], batchY[start:start + chunk]
        chunk_losses, predictions = sess.run([model.losses, model.predictions],
                                             {model.batchX_placeholder: x, model.batchY_placeholder: y})
        losses.append(chunk_losses)
        correct.append(predictions.argmax(axis=-1) == y)
    return np.concatenate(losses), np.concatenate(correct)


def report(losses, correct, config, seed):
    """The evaluation report: loss, accuracy, accuracy by position in the window."""
    return {
        "seed": seed,
        "windows": int(correct.shape[0]),
        "loss": float(losses.mean()),
        "accuracy": float(correct.mean()),
        "accuracy_by_position": [float(a) for a in correct.mean(axis=0)],
        "echo_step": config.echo_step,
    }


def fresh_windows(config, seed):
    """A fresh series drawn by the training recipe with ``seed`` (global random state untouched), as
    ``[num_windows, truncated_backprop_length]``."""
    inputs_value, targets_value = generate_data(config, np.random.RandomState(seed))
    length = config.truncated_backprop_length
    return windows(inputs_value, config).reshape(-1, length), windows(targets_value, config).reshape(-1, length)


def evaluate(run_dir, seed):
    """Loss and accuracy of a trained run on a fresh series drawn with ``seed`` (the training recipe, new numbers).

    Every window starts from a zero state, as in training. Positions before ``echo_step`` have target 0;
    from ``echo_step`` on, the target is the input ``echo_step`` steps earlier.
    """
    with trained_model(run_dir) as (sess, model, config):
        batchX, batchY = fresh_windows(config, seed)
        losses, correct = score(sess, model, batchX, batchY)
    return report(losses, correct, config, seed)


def held_out_predictions(sess, model, config, seed, num_windows=MOST_WINDOWS, num_rows=MOST_ROWS):
    """The first ``num_windows`` windows (fewer if a row has fewer) of the first ``num_rows`` rows (fewer if the
    batch has fewer) of a fresh series: ``(inputs, targets, probability of a 1)``, each ``[rows, windows *
    truncated_backprop_length]``. Works with the training graph too, whose batch has a fixed size."""
    inputs_value, targets_value = generate_data(config, np.random.RandomState(seed))
    rows = min(num_rows, config.batch_size)
    length = min(num_windows, config.num_batches) * config.truncated_backprop_length
    fed = inputs_value[:, :length] if model.batchX_placeholder.shape[0] else inputs_value[:rows, :length]
    probabilities = np.concatenate([
        sess.run(model.predictions, {model.batchX_placeholder: fed[:, i:i + config.truncated_backprop_length]})
        for i in range(0, length, config.truncated_backprop_length)], axis=1)
    return inputs_value[:rows, :length], targets_value[:rows, :length], probabilities[:rows, :, 1]


def bit_windows(bits, config):
    """A user's bit string as ``[windows, truncated_backprop_length]`` ints, or RunError saying what is wrong."""
    length = config.truncated_backprop_length
    if not bits or set(bits) - {"0", "1"}:
        raise RunError(f"BITS {bits[:40]!r}: must be a string of 0 and 1")
    if len(bits) % length:
        raise RunError(f"BITS: {len(bits)} bits is not a multiple of truncated_backprop_length ({length}); "
                       f"the run learned windows of {length}")
    return np.array([int(b) for b in bits]).reshape(-1, length)


def predict(run_dir, bits):
    """The run's prediction for a string of 0/1 whose length is a multiple of ``truncated_backprop_length``.

    Returns ``{"input", "target", "prediction"}`` as bit strings; each window is fed from a zero state.
    """
    _, config = load_run(run_dir)
    inputs = bit_windows(bits, config)
    with trained_model(run_dir) as (sess, model, config):
        predictions = sess.run(model.predictions, {model.batchX_placeholder: inputs})
    return {"input": bits,
            "target": "".join(map(str, echo_targets(inputs.reshape(-1), config))),
            "prediction": "".join(map(str, predictions.argmax(axis=-1).reshape(-1)))}
