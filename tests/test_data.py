"""Data generation on hand-computed cases: which targets are zeroed, the roll, the reshape."""
import numpy as np
import pytest

from echo_rnn_tf1.config import Config
from echo_rnn_tf1.data import echo_targets, generate_data

# 2 rows of 10; windows of 5 (2 per row); echo 2.
SMALL = Config(total_series_length=20, truncated_backprop_length=5, batch_size=2, echo_step=2)


def test_generate_data_by_hand(monkeypatch):
    # Replace the random draw by 1..20 so every value says where it came from.
    monkeypatch.setattr(np.random, "choice", lambda n, size, p: np.arange(1, size + 1))
    inputs_value, targets_value = generate_data(SMALL)
    assert inputs_value.tolist() == [list(range(1, 11)), list(range(11, 21))]
    # np.roll by 2 brings 19, 20 to the front; then positions 0,1 of each window of 5 are zeroed.
    assert targets_value.tolist() == [[0, 0, 1, 2, 3, 0, 0, 6, 7, 8],
                                      [0, 0, 11, 12, 13, 0, 0, 16, 17, 18]]


def test_roll_wraps_into_zeroed_positions_only(monkeypatch):
    # The wrapped values (the series' last echo_step inputs) land in the first window, which is zeroed.
    monkeypatch.setattr(np.random, "choice", lambda n, size, p: np.arange(1, size + 1))
    _, targets_value = generate_data(SMALL)
    assert 19 not in targets_value and 20 not in targets_value


def test_echo_zero_keeps_every_target():
    config = Config(total_series_length=20, truncated_backprop_length=5, batch_size=2, echo_step=0)
    np.random.seed(0)
    inputs_value, targets_value = generate_data(config)
    assert np.array_equal(inputs_value, targets_value)


def test_default_data_is_binary_and_shaped():
    np.random.seed(0)
    inputs_value, targets_value = generate_data(Config())
    assert inputs_value.shape == targets_value.shape == (5, 10000)
    assert set(np.unique(inputs_value)) == {0, 1}
    windows = targets_value.reshape(-1, 10)
    assert not windows[:, :3].any()                                   # first echo_step targets: always 0
    assert np.array_equal(windows[:, 3:], inputs_value.reshape(-1, 10)[:, :7])  # the rest: the echo


@pytest.mark.parametrize("bits, expected", [
    ("0110111001", "0000100011"),
    ("11111", "00011"),
])
def test_echo_targets_window_by_window(bits, expected):
    config = Config(truncated_backprop_length=5, echo_step=3)
    got = echo_targets([int(b) for b in bits], config)
    assert "".join(map(str, got)) == expected
