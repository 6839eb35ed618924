"""The Echo-RNN in numpy, written from the math alone: a reference to check the TensorFlow graph against.

Forward: one-hot inputs, the ``BasicRNNCell`` recurrence ``h_t = tanh([x_t, h_{t-1}] @ kernel + bias)`` from
``h_{-1} = 0``, logits ``h_t @ W2 + b2``, mean sparse softmax cross-entropy. Backward: backpropagation through
time. Update: TF1's Adagrad, ``acc += g**2; var -= lr * g / sqrt(acc)`` with ``acc`` starting at 0.1.
Parameters are a dict with the graph's variable names: ``rnn/basic_rnn_cell/kernel`` [num_classes + state_size,
state_size], ``rnn/basic_rnn_cell/bias`` [state_size], ``W2`` [state_size, num_classes], ``b2`` [1, num_classes].
"""
import numpy as np

from echo_rnn_tf1.config import ADAGRAD_INITIAL_ACCUMULATOR

KERNEL, BIAS = "rnn/basic_rnn_cell/kernel", "rnn/basic_rnn_cell/bias"


def forward(params, batchX, num_classes):
    """Return ``(logits [B, T, C], states [B, T + 1, S], one_hot [B, T, C])``; ``states[:, 0]`` is the zero state."""
    kernel, bias = params[KERNEL], params[BIAS]
    batch_size, length = batchX.shape
    one_hot = np.eye(num_classes, dtype=kernel.dtype)[batchX]               # [B, T, C]
    states = np.zeros((batch_size, length + 1, kernel.shape[1]), kernel.dtype)  # [B, T + 1, S]
    for t in range(length):
        states[:, t + 1] = np.tanh(np.concatenate([one_hot[:, t], states[:, t]], axis=1) @ kernel + bias)
    logits = states[:, 1:] @ params["W2"] + params["b2"]                    # [B, T, C]
    return logits, states, one_hot


def loss_and_gradients(params, batchX, batchY, num_classes):
    """Mean cross-entropy and its gradient for every parameter, by backpropagation through time."""
    logits, states, one_hot = forward(params, batchX, num_classes)
    batch_size, length = batchX.shape
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -np.take_along_axis(log_probs, batchY[..., None], axis=-1).mean()

    dlogits = np.exp(log_probs)                                              # softmax - one_hot(y), averaged
    dlogits[np.arange(batch_size)[:, None], np.arange(length), batchY] -= 1
    dlogits /= batch_size * length
    kernel = params[KERNEL]
    grads = {"W2": np.einsum("bts,btc->sc", states[:, 1:], dlogits),
             "b2": dlogits.sum(axis=(0, 1))[None, :],
             KERNEL: np.zeros_like(kernel), BIAS: np.zeros_like(params[BIAS])}
    dstate_out = dlogits @ params["W2"].T                                    # [B, T, S]
    dnext = np.zeros_like(states[:, 0])
    for t in reversed(range(length)):
        dz = (dstate_out[:, t] + dnext) * (1 - states[:, t + 1] ** 2)       # through tanh
        cell_input = np.concatenate([one_hot[:, t], states[:, t]], axis=1)
        grads[KERNEL] += cell_input.T @ dz
        grads[BIAS] += dz.sum(axis=0)
        dnext = (dz @ kernel.T)[:, num_classes:]                             # into h_{t-1}
    return loss, grads


def adagrad_accumulators(params):
    return {name: np.full_like(value, ADAGRAD_INITIAL_ACCUMULATOR) for name, value in params.items()}


def train_step(params, accumulators, batchX, batchY, num_classes, learning_rate):
    """One step of the source's training in numpy: loss at the current parameters, then the Adagrad update."""
    loss, grads = loss_and_gradients(params, batchX, batchY, num_classes)
    for name, grad in grads.items():
        accumulators[name] += grad * grad
        params[name] -= learning_rate * grad / np.sqrt(accumulators[name])
    return loss
