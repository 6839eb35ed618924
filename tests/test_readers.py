"""Hostile files for compare and the other readers: regular files only, memory bounded however large the file,
byte-order marks read or refused by name, zero and infinite losses judged, and no crash ever read as NO MATCH."""
import codecs
import dataclasses
import json
import math
import os
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import one_error_line
from echo_rnn_tf1.compare import compare, format_table
from echo_rnn_tf1.config import Config, ConfigError
from echo_rnn_tf1.logs import LogError, parse_log, read_log, read_reference
from echo_rnn_tf1.runs import RunError, load_run, read_losses

REFERENCE = parse_log(read_reference(), "2017 log")
LOSSES = [p.loss for p in REFERENCE]


def make_log(losses, steps_per_epoch=10):
    """A log of these logged losses, each printed exactly as a Python float (test_compare's prints float32s)."""
    lines = []
    for i, loss in enumerate(losses):
        epoch, point = divmod(i, steps_per_epoch)
        lines += [f"New data, epoch {epoch}"] * (point == 0) + [f"Step {point * 100} Batch loss {loss!r}"]
    return "\n".join(lines) + "\n"


def test_a_fifo_or_a_device_is_refused_at_once(tmp_path, cli):
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero"):
        with pytest.raises(LogError, match="not a regular file"):
            read_log(path)
    result = cli("compare", fifo)
    assert result.returncode == 2 and "log: not a regular file" in one_error_line(result.stderr)


def test_run_json_that_is_not_a_regular_file_or_nested_too_deep_is_one_line(tmp_path, cli):
    fifo_run, deep_run = tmp_path / "fifo", tmp_path / "deep"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / "run.json")
    deep_run.mkdir()
    (deep_run / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunError, match="run.json: not a regular run record"):
        load_run(fifo_run)
    with pytest.raises(RunError, match="unreadable run record \\(nested too deeply\\)"):
        load_run(deep_run)
    result = cli("evaluate", deep_run)
    assert result.returncode == 2 and "nested too deeply" in one_error_line(result.stderr)


@pytest.mark.parametrize("encoding, bom", [("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE),
                                           ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-32-le", codecs.BOM_UTF32_LE)])
def test_a_log_with_a_byte_order_mark_reads_as_plain_utf8(tmp_path, encoding, bom):
    path = tmp_path / "log.txt"
    path.write_bytes(bom + read_reference().replace("\n", "\r\n").encode(encoding))  # (Windows line ends too)
    assert [p[:3] for p in read_log(path)] == [p[:3] for p in REFERENCE]


def test_utf16_without_a_byte_order_mark_is_refused_by_name(tmp_path):
    path = tmp_path / "log.txt"
    path.write_bytes(read_reference().encode("utf-16-le"))
    with pytest.raises(LogError, match="UTF-16 or UTF-32 without a byte-order mark; save it as UTF-8"):
        read_log(path)


@pytest.mark.slow
def test_reading_a_large_log_takes_little_memory(tmp_path):
    # 8.5 MB: noise lines, a 5 MB line without a newline, and a long run's loss lines (20 epochs of 1000)
    path = tmp_path / "big.log"
    with open(path, "w") as f:
        f.write("WARNING: noise\n" * 200_000)
        f.write("x" * 5_000_000 + "\n")
        for epoch in range(20):
            f.write(f"New data, epoch {epoch}\n")
            f.writelines(f"Step {step} Batch loss 0.5\n" for step in range(0, 100_000, 100))
    tracemalloc.start()
    try:
        points = read_log(path, keep={(p.epoch, p.step) for p in REFERENCE})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(points) == 50
    assert peak < 1_000_000  # measured: 0.04 MB; reading the file whole peaked at 3.9 bytes a byte (33 MB)
    with pytest.raises(LogError, match="more than 1,000 loss lines"):
        read_log(path, limit=1000)


@pytest.mark.parametrize("line", ["Step ² Batch loss 0.5", "Step ١٠٠ Batch loss 0.5", "Step 0 Batch loss ０.５",
                                  "Step " + "9" * 5000 + " Batch loss 0.5"])
def test_only_ascii_digits_are_numbers(line):
    with pytest.raises(LogError, match="line 2: (step|loss) .* is not a (whole )?number"):
        parse_log(f"New data, epoch 0\n{line}\n")


@pytest.mark.parametrize("run_losses, reference_losses, match, says", [
    ([0.0] + LOSSES[1:], LOSSES, False, "does not start untrained: its first loss 0 is not within 2x"),
    (LOSSES, [0.0] + LOSSES[1:], False, "does not start untrained: its first loss 0.701 is not within 2x"),
    (LOSSES, LOSSES[:1] + [0.0] * 9 + LOSSES[10:], True, "MATCH"),          # epoch 0 is not judged
    (LOSSES, LOSSES[:10] + [0.0] * 10 + LOSSES[20:], False, "epoch 1: median loss 0.000816 is infx above the "
                                                            "reference's 0"),
    (LOSSES[:10] + [0.0] * 10 + LOSSES[20:], LOSSES[:10] + [0.0] * 10 + LOSSES[20:], True, "MATCH"),
    (LOSSES[:10] + [0.0] * 10 + LOSSES[20:], LOSSES, False, "epoch 1: median loss 0 is infx below"),
    (LOSSES, [math.inf] + LOSSES[1:], True, "MATCH"),                       # (the CLI refuses such a reference)
    ([1e300] * 50, [1e-300] * 50, False, "is infx above"),
])
def test_zero_and_infinite_losses_are_judged_not_crashed_on(run_losses, reference_losses, match, says):
    verdict = compare(parse_log(make_log(run_losses)), parse_log(make_log(reference_losses)))
    assert verdict.match == match and says in " ".join([verdict.summary, *verdict.reasons])
    format_table(verdict)


losses = st.one_of(st.just(0.0), st.just(math.inf), st.just(math.nan), st.floats(0, 1e38), st.floats(1e-45, 1e-30))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(losses, min_size=50, max_size=50), st.lists(losses, min_size=50, max_size=50))
def test_compare_judges_any_losses_without_raising(run_losses, reference_losses):
    verdict = compare(parse_log(make_log(run_losses)), parse_log(make_log(reference_losses)))
    assert verdict.summary.startswith("MATCH" if verdict.match else "NO MATCH")
    format_table(verdict)


def test_a_reference_that_is_not_finite_is_bad_input(tmp_path, cli):
    reference = tmp_path / "reference.log"
    reference.write_text(make_log([math.inf] + LOSSES[1:]))
    result = cli("compare", reference, reference)
    assert result.returncode == 2 and result.stdout == ""
    assert "line 2: the reference's loss is inf at epoch 0 step 0; a reference must be finite" in one_error_line(
        result.stderr)


def test_read_losses_refuses_what_is_not_a_file(tmp_path):
    with pytest.raises(RunError, match="not a regular file"):
        read_losses("/dev/zero")


def test_config_validates_on_construction():
    with pytest.raises(ConfigError, match="--echo-step 20: must be an integer from 0 to"):
        Config(echo_step=20)
    with pytest.raises(ConfigError, match="--batch-size 0"):
        dataclasses.replace(Config(), batch_size=0)
    with pytest.raises(ConfigError, match="--learning-rate 1e-46: .* a smaller rate is 0 there"):
        Config(learning_rate=1e-46)
    assert Config(learning_rate=1e-45).learning_rate == 1e-45  # the smallest float32 above 0: rounds to 1.4e-45


def test_run_json_is_read_as_json_only(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"config": {}, "files": []}) + " " * 2_000_000)
    with pytest.raises(RunError, match="larger than 1024 KiB"):
        load_run(folder)
    (folder / "run.json").write_bytes(b'{"config": {"\xff": 1}}')
    with pytest.raises(RunError, match="unreadable run record"):
        load_run(folder)
    (folder / "run.json").write_text(json.dumps({"config": {"num_epochs": 1}}))
    assert load_run(folder)[1] == Config(num_epochs=1)
    assert np.float32(Config().learning_rate) > 0
