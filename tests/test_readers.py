"""A damaged run folder or a hostile file, given to compare, evaluate or predict: one line naming the file and what
is wrong, exit 2, never a verdict. run.json is read by one reader, which checks every field it gives; logs are
regular files of a bounded size, byte-order marks read or refused by name, zero and
infinite losses judged, and no file is left open."""
import codecs
import dataclasses
import gc
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, one_error_line, run_record
from echo_rnn_tf1.compare import compare, format_table
from echo_rnn_tf1.config import VARIANTS, Config, ConfigError
from echo_rnn_tf1.logs import LOG_LIMIT, LogError, parse_log, read_log, read_reference
from echo_rnn_tf1.record import RunError, read_losses, read_run

REFERENCE = parse_log(read_reference(), "2017 log")
LOSSES = [p.loss for p in REFERENCE]


def make_log(losses, steps_per_epoch=10):
    """A log of these logged losses, each printed exactly as a Python float (test_compare's prints float32s)."""
    lines = []
    for i, loss in enumerate(losses):
        epoch, point = divmod(i, steps_per_epoch)
        lines += [f"New data, epoch {epoch}"] * (point == 0) + [f"Step {point * 100} Batch loss {loss!r}"]
    return "\n".join(lines) + "\n"


def matching_run(folder, **changes):
    """A run folder whose train.log is the 2017 log itself and whose run.json (with ``changes``) is a finished run of
    the source's hyperparameters: ``compare`` calls it a MATCH, while its record is sound."""
    folder.mkdir()
    (folder / "train.log").write_text(read_reference())
    (folder / "losses.csv").write_text("epoch,batch,loss\n0,0,0.70098\n0,1,0.6\n")
    (folder / "run.json").write_text(json.dumps(run_record(**{"steps_done": 2, **changes})))
    return folder


def test_a_sound_record_of_the_2017_log_is_a_match(tmp_path, cli):
    # (the premise of the tests below: the same folders, their run.json damaged, would be a MATCH)
    run, other = matching_run(tmp_path / "run"), matching_run(tmp_path / "other")
    result = cli("compare", run)
    assert result.returncode == 0 and result.stdout.splitlines()[-1].startswith("MATCH"), result.stderr
    result = cli("compare", run, other)
    assert result.returncode == 0 and "same seed (0) and hyperparameters: bit-identical (2 losses)" in result.stdout


def _cut(folder):
    text = (folder / "run.json").read_text()
    (folder / "run.json").write_text(text[:len(text) // 2])


def _replace(folder, content):
    (folder / "run.json").write_text(content)


def _folder(folder):
    (folder / "run.json").unlink()
    (folder / "run.json").mkdir()


DAMAGE = {
    "cut in half": (_cut, "unreadable run record (Unterminated string"),
    "a brace": (lambda f: _replace(f, "{"), "unreadable run record (Expecting property name"),
    "empty": (lambda f: _replace(f, ""), "unreadable run record (Expecting value"),
    "a list": (lambda f: _replace(f, "[1, 2]"), "unreadable run record (a JSON list, not an object)"),
    "a folder": (_folder, "not a regular run record"),
    "config a string": (lambda f: _replace(f, json.dumps(run_record(config="x"))),
                        "unreadable run record (config: 'x' is not what a run records)"),
    "machine a number": (lambda f: _replace(f, json.dumps(run_record(machine=5))),
                         "unreadable run record (machine: 5 is not what a run records)"),
    "status a list": (lambda f: _replace(f, json.dumps(run_record(status=[1]))),
                      "unreadable run record (status: [1] is not what a run records)"),
    "status long": (lambda f: _replace(f, json.dumps(run_record(status="running" * 20))),  # elided, marked so
                    "unreadable run record (status: 'runningrunni...unningrunning' is not what a run records)"),
    "seed a string": (lambda f: _replace(f, json.dumps(run_record(seed="0"))),
                      "unreadable run record (seed: '0' is not what a run records)"),
    "portable a string": (lambda f: _replace(f, json.dumps(run_record(portable="no"))),
                          "unreadable run record (portable: 'no' is not what a run records)"),
    "an unknown hyperparameter": (lambda f: _replace(f, json.dumps(run_record(config={"hidden": 4}))),
                                  "unreadable run record (unknown hyperparameter(s): hidden)"),
    "a bad hyperparameter": (lambda f: _replace(f, json.dumps(run_record(config={**Config().to_dict(),
                                                                                "state_size": -1}))),
                             "unreadable run record (--state-size -1: must be a positive integer)"),
    "a hyperparameter a string": (lambda f: _replace(f, json.dumps(run_record(config={**Config().to_dict(),
                                                                                      "state_size": "4"}))),
                                  "unreadable run record (--state-size '4': must be a positive integer)"),
    "a hyperparameter missing": (lambda f: _replace(f, json.dumps(run_record(config={"num_epochs": 1}))),
                                 "unreadable run record (no total_series_length, truncated_backprop_length, "
                                 "state_size, num_classes, echo_step, batch_size, learning_rate among the "
                                 "hyperparameters)"),
    "no seed": (lambda f: _replace(f, json.dumps({k: v for k, v in run_record().items() if k != "seed"})),
                "unreadable run record (no 'seed')"),
    "a user's file listed": (lambda f: _replace(f, json.dumps(run_record(files=["run.json", "model.ckpt-notes.txt"]))),
                             "unreadable run record (files: 'model.ckpt-notes.txt' is not a name a run gives its "
                             "files)"),
    "a checkpoint of other steps": (
        lambda f: _replace(f, json.dumps(run_record(steps_done=2, checkpoint={
            "prefix": "model.ckpt-3", "sha256": {"model.ckpt-3.index": "0"}}))),
        "unreadable run record (checkpoint: model.ckpt-3 is not of the 2 steps it says the run trained)"),
    "a checkpoint's name with a NUL": (
        lambda f: _replace(f, json.dumps(run_record(steps_done=2, checkpoint={
            "prefix": "model.ckpt-2\0", "sha256": {"model.ckpt-2\0.index": "0"}}))),
        "unreadable run record (checkpoint: {'prefix': 'model.ckpt-2\\x00', "),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_compare_of_a_run_folder_with_a_damaged_record_is_refused_never_a_match(tmp_path, cli, damage):
    make, says = DAMAGE[damage]
    run = matching_run(tmp_path / "run")
    make(run)
    result = cli("compare", run)
    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr).startswith(f"echo_rnn_tf1: error: {run / 'run.json'}: {says}")


@pytest.mark.parametrize("machine", [5, "a CPU", [1], {"cores": [2]}, {"cuda_build": "yes"}])
def test_compare_of_two_runs_one_with_a_bad_machine_record_is_refused(tmp_path, cli, machine):
    run, other = matching_run(tmp_path / "run"), matching_run(tmp_path / "other", machine=machine)
    for args in ([run, other], [other, run]):
        result = cli("compare", *args)
        assert result.returncode == 2 and result.stdout == ""
        assert one_error_line(result.stderr).startswith(f"echo_rnn_tf1: error: {other / 'run.json'}: unreadable run "
                                                        f"record (machine: ")


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "0" * 10]])
def test_evaluate_and_predict_of_a_damaged_record_are_refused(tmp_path, cli, command):
    run = matching_run(tmp_path / "run", status=[1])
    result = cli(command[0], run, *command[1:])
    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {run / 'run.json'}: unreadable run record "
                                             f"(status: [1] is not what a run records)")


# Sizes no computer of today holds (config.py's limits), recorded in a run.json by hand or by a damaged file.
ABSURD = {"state_size": 10**6, "num_classes": 10**9, "batch_size": 10**7, "total_series_length": 10**12}


def test_absurd_sizes_in_a_record_are_refused_before_tensorflow_loads(tmp_path):
    folders = []
    for name, value in ABSURD.items():
        config = Config().to_dict()
        config[name] = value
        if name == "batch_size":
            config["total_series_length"] = value * 10  # (a whole number of windows: only the size is wrong)
        folders.append(matching_run(tmp_path / name, config=config,
                                    checkpoint={"prefix": "model.ckpt-2", "sha256": {"model.ckpt-2.index": "0"}}))
    code = ("import sys\nfrom echo_rnn_tf1.cli import main\n"
            f"for folder in {[str(f) for f in folders]!r}:\n"
            "    print(main(['evaluate', folder]), main(['predict', folder, '0' * 10]))\n"
            "print('tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)  # (0.5 s without TensorFlow; loading it, had it been loaded, 3 to 15 s)
    assert result.stdout.splitlines() == ["2 2"] * len(ABSURD) + ["False"], result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 * len(ABSURD) and all("unreadable run record (--" in line for line in lines), lines


@pytest.mark.parametrize("command", [["compare", "{path}"], ["compare", "{path}", "{path}"], ["evaluate", "{path}"],
                                     ["predict", "{path}", "0"]])
def test_a_path_with_a_line_break_is_named_whole_in_the_one_line(tmp_path, cli, command):
    path = str(tmp_path / "two\nlines" / "run")
    result = cli(*[path if arg == "{path}" else arg for arg in command])
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert result.stderr == line + "\n" and path.replace("\n", "\\n") in line


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
    for command in (["evaluate"], ["compare"]):
        result = cli(*command, fifo_run)
        assert result.returncode == 2 and "run.json: not a regular run record" in one_error_line(result.stderr)
        result = cli(*command, deep_run)
        assert result.returncode == 2 and "unreadable run record (nested too deeply)" in one_error_line(result.stderr)


def test_run_json_is_read_as_json_only(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(run_record()) + " " * 2_000_000)
    with pytest.raises(RunError, match="larger than 1024 KiB"):
        read_run(folder)
    (folder / "run.json").write_bytes(b'{"config": {"\xff": 1}}')
    with pytest.raises(RunError, match="unreadable run record"):
        read_run(folder)
    # a record from before the variants (carry_state, cell, ...) holds none of them: it was the source's network
    before_variants = {name: value for name, value in Config(num_epochs=1).to_dict().items() if name not in VARIANTS}
    (folder / "run.json").write_text(json.dumps(run_record(config=before_variants)))
    assert read_run(folder).config == Config(num_epochs=1)


@pytest.mark.parametrize("text", ["New data, epoch 0\nStep 0 Batch loss x\n", "no loss line\n",
                                  "New data, epoch 0\nStep 100 Batch loss 0.5\n", "a\0b"])
def test_reading_a_bad_log_leaves_no_file_open(tmp_path, monkeypatch, text):
    # A file left for the garbage collector to close warns (ResourceWarning) where it is collected, as an
    # "exception ignored": caught here by the hook Python calls for those.
    unclosed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: unclosed.append(unraisable.exc_value))
    path = tmp_path / "log"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(LogError):
            read_log(path)
        with pytest.raises(RunError):
            read_losses(path)
        gc.collect()
    assert unclosed == []


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


def test_a_log_larger_than_any_run_writes_is_refused_by_name(tmp_path):
    path = tmp_path / "big.log"
    with open(path, "wb") as f:
        f.truncate(LOG_LIMIT + 1)  # (sparse: nothing is written)
    with pytest.raises(LogError, match="big.log: larger than 16 MiB; a log of 10 million steps is 4 MB"):
        read_log(path)


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
    folder = tmp_path / "folder"  # (a folder with a train.log: the log is named, as every log error names it)
    folder.mkdir()
    (folder / "train.log").write_text(reference.read_text())
    for target, named in ((reference, reference), (folder, folder / "train.log")):
        result = cli("compare", reference, target)
        assert result.returncode == 2 and result.stdout == ""
        assert one_error_line(result.stderr).startswith(f"echo_rnn_tf1: error: {named}, line 2: the reference's loss "
                                                        f"is inf at epoch 0 step 0; a reference must be finite")


def test_losses_csv_is_refused_when_not_a_file_or_cut_short(tmp_path):
    with pytest.raises(RunError, match="not a regular file"):
        read_losses("/dev/zero")
    path = tmp_path / "losses.csv"
    path.write_text("epoch,batch,loss\n0,0,0.5\n0,1,0.2")  # a run writes whole rows, even when killed
    with pytest.raises(RunError, match="line 3: cut short: no line end"):
        read_losses(path)


def test_config_validates_on_construction():
    with pytest.raises(ConfigError, match="--echo-step 20: must be an integer from 0 to"):
        Config(echo_step=20)
    with pytest.raises(ConfigError, match="--batch-size 0"):
        dataclasses.replace(Config(), batch_size=0)
    with pytest.raises(ConfigError, match="--learning-rate 1e-46: .* a smaller rate is 0 there"):
        Config(learning_rate=1e-46)
    assert Config(learning_rate=1e-45).learning_rate == 1e-45  # the smallest float32 above 0: rounds to 1.4e-45


def test_nothing_reads_with_pickle_or_eval():
    package = os.path.join(ROOT, "echo_rnn_tf1")
    for name in os.listdir(package):
        if name.endswith(".py"):
            text = open(os.path.join(package, name), encoding="utf-8").read()
            for banned in ("import pickle", "eval(", "allow_pickle=True", "exec("):
                assert banned not in text, f"{name} uses {banned}"


def test_a_run_folders_log_cut_in_its_last_line_is_refused_not_read_as_a_loss(tmp_path, cli):
    # A run writes train.log a whole line at a time, even when killed: "Step 900 Batch loss 0.000" without its line
    # end is "Step 900 Batch loss 0.00012979713" cut short, not a loss of 0 (which compared as a MATCH). A log
    # file given alone may lack its last line end (pasted text): it is read.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(run_record()))
    log = read_reference().replace("    ", "")
    (folder / "train.log").write_text(log.rstrip("\n")[:-9])
    result = cli("compare", folder)
    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {folder / 'train.log'}: unreadable "
                                             f"(line {log.count(chr(10))}: cut short: no line end)")
    (tmp_path / "pasted.log").write_text(log.rstrip("\n"))
    assert [p.loss for p in read_log(tmp_path / "pasted.log")] == [p.loss for p in REFERENCE]


def test_a_diverged_reference_is_refused(tmp_path, cli):
    # A run that diverged at step 1 logs only its step 0: every point present and finite, yet no yardstick.
    log = read_reference().replace("    ", "")
    for name, changes in (("diverged", {"status": "diverged", "cause": "the loss diverged to nan at epoch 0, step 1"}),
                          ("basic", {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(run_record(**changes)))
        (tmp_path / name / "train.log").write_text(log)
    result = cli("compare", tmp_path / "basic", tmp_path / "diverged")
    assert result.returncode == 2 and result.stdout == ""
    assert one_error_line(result.stderr) == (f"echo_rnn_tf1: error: {tmp_path / 'diverged'}: the reference diverged "
                                             f"(the loss diverged to nan at epoch 0, step 1); a diverged run is no "
                                             f"yardstick")


def test_a_run_that_died_before_its_first_loss_is_said_to_have_died(tmp_path, cli):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(run_record(status="running", stage="training")))  # nobody holds it
    (folder / "train.log").write_text("")
    result = cli("compare", folder)
    assert result.returncode == 2
    assert one_error_line(result.stderr).endswith("train.log: no loss lines ('Step N Batch loss X') in it (the run "
                                                  "died (killed, or out of memory, before its end was recorded))")
