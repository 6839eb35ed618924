"""Which machine a run was made on, the portable settings, comparing two runs of one seed, and ``doctor``."""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import one_error_line, run_cli, train_in_process
from echo_rnn_tf1 import machine, oracle, portable, train
from echo_rnn_tf1.compare import first_difference, identity_line
from echo_rnn_tf1.doctor import check_shipped
from echo_rnn_tf1.failures import MachineError
from echo_rnn_tf1.record import read_losses

SSE41_CPU = {"sse", "sse2", "sse4_1"}
AVX2_CPU = SSE41_CPU | {"avx", "avx2", "fma"}
ZEN4 = AVX2_CPU | {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = ZEN4 | {"avx_vnni", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16"}


@pytest.mark.parametrize("flags, cap, level", [
    (set(), None, None),
    (SSE41_CPU, None, "SSE41"),
    (SSE41_CPU, "AVX2", "SSE41"),                  # a cap above the CPU changes nothing
    (AVX2_CPU, None, "AVX2"),
    (AVX2_CPU | {"avx_vnni"}, None, "AVX2_VNNI"),
    (ZEN4, None, "AVX512_CORE_BF16"),
    (ZEN4, "AVX2", "AVX2"),
    (ZEN4, "avx2_vnni", "AVX2"),                   # lower case is accepted; this CPU has no AVX-VNNI
    (ZEN4, "AVX512_CORE", "AVX512_CORE"),
    (ZEN4, "SSE41", "SSE41"),
    (ZEN4, "no such level", "AVX512_CORE_BF16"),   # oneDNN ignores a name it does not know
    (SAPPHIRE_RAPIDS, None, "AVX10_1_512_AMX"),
    (SAPPHIRE_RAPIDS, "AVX512_CORE_AMX", "AVX10_1_512_AMX"),
    (SAPPHIRE_RAPIDS, "AVX512_CORE_VNNI", "AVX512_CORE_VNNI"),  # the AVX2 VNNI branch is not under AVX-512
    (SAPPHIRE_RAPIDS, "AVX2_VNNI", "AVX2_VNNI"),
])
def test_onednn_isa_by_hand(flags, cap, level):
    assert machine.onednn_isa(flags, cap) == level


# oneDNN 3.7's own names for the levels (its verbose "cpu,isa" line), for those a test can meet on x86-64 CI.
ONEDNN_WORDS = {
    "SSE41": "Intel SSE4.1",
    "AVX": "Intel AVX",
    "AVX2": "Intel AVX2",
    "AVX2_VNNI": "Intel AVX2 with Intel DL Boost",
    "AVX512_CORE": "Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions",
    "AVX512_CORE_VNNI": "Intel AVX-512 with Intel DL Boost",
    "AVX512_CORE_BF16": "Intel AVX-512 with Intel DL Boost and bfloat16 support",
}


@pytest.mark.slow
@pytest.mark.parametrize("cap", ["AVX2", "SSE41"])
def test_the_recorded_level_is_the_one_onednn_reports(cap, monkeypatch):
    # The level in run.json is worked out from the CPU's flags; oneDNN itself says which it uses when verbose.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    level = machine.describe()["onednn_isa"]
    probe = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.matmul(tf.ones([2, 3]), tf.ones([3, 2]))"],
                           env={**os.environ, "ONEDNN_VERBOSE": "1"}, capture_output=True, text=True, timeout=120)
    said = re.search(r"^onednn_verbose,(?:v1,)?info,cpu,isa:(.*)$", probe.stdout, re.M)  # (at its first product)
    assert said is not None and said.group(1).strip() == ONEDNN_WORDS[level]


@pytest.mark.slow
def test_run_json_records_the_machine(tiny_run):
    out = tiny_run
    env_cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    recorded = json.loads((out / "run.json").read_text())["machine"]
    model, flags = machine.cpu_info()
    assert recorded["cpu"] == model and recorded["cores"] >= 1 and isinstance(recorded["cuda_build"], bool)
    assert recorded["onednn_isa"] == machine.onednn_isa(flags, env_cap)
    assert recorded["ONEDNN_MAX_CPU_ISA"] == env_cap
    assert json.loads((out / "run.json").read_text())["portable"] is False


def test_first_difference_by_hand():
    a = np.float32([0.5, 0.4, 0.3, 0.2])
    assert first_difference(a, a.copy()) == (None, 0.0)
    b = a.copy()
    b[2] = 0.6
    assert first_difference(a, b) == (2, 0.5)
    assert identity_line(a, b, num_batches=2) == "first differs at epoch 1 step 0; largest relative difference 0.5"
    assert identity_line(a, a[:3], num_batches=2) == "bit-identical (3 losses) (compared the 3 steps both have: 4 and 3)"
    nan = np.float32([np.nan, 0.1])
    assert identity_line(nan, nan.copy(), 2) == "bit-identical (2 losses)"  # a diverged step equals itself


@pytest.fixture(scope="session")  # (a module's is made again when other modules' tests come between)
def seed_runs(tmp_path_factory):
    """``{name: run folder}``: "first" and "again" of seed 4, "other" of seed 5; 20 steps each. Read only."""
    folder, runs = tmp_path_factory.mktemp("seeds"), {}
    for name, seed in (("first", 4), ("again", 4), ("other", 5)):
        runs[name] = folder / name
        train_in_process("--num-epochs", 1, "--total-series-length", 1000, "--seed", seed, "--out", runs[name],
                         "--no-pictures")
    return runs


@pytest.mark.slow
@pytest.mark.xdist_group("seed_runs")
def test_compare_two_runs_of_one_seed(seed_runs, tmp_path, cli):
    first, again = seed_runs["first"], tmp_path / "again"
    shutil.copytree(seed_runs["again"], again)
    result = cli("compare", first, again)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    same = [line for line in lines if line.startswith("same seed")]
    assert same == ["same seed (4) and hyperparameters: bit-identical (20 losses)"]
    machine_line = machine.machine_line(json.loads((first / "run.json").read_text())["machine"])
    assert f"  this run:  {machine_line}" in lines and f"  reference: {machine_line}" in lines

    # Recorded as a tf2 run (which records no tf1 "rnn"): the engine is the one difference said.
    record = json.loads((again / "run.json").read_text())
    (again / "run.json").write_text(json.dumps({**{k: v for k, v in record.items() if k != "rnn"}, "engine": "tf2"}))
    assert "same seed (4) and hyperparameters (they differ in engine): " in cli("compare", first, again).stdout
    (again / "run.json").write_text(json.dumps(record))

    # One loss changed by hand: where it differs is said, and the exit code stays the verdict on the logs.
    csv = (again / "losses.csv").read_text().splitlines()
    epoch, batch, loss = csv[14].split(",")
    csv[14] = f"{epoch},{batch},{np.float32(float(loss) * 1.5)!s}"
    (again / "losses.csv").write_text("\n".join(csv) + "\n")
    result = cli("compare", first, again)
    assert result.returncode == 0
    assert "same seed (4) and hyperparameters: first differs at epoch 0 step 13; largest relative difference 0.333" \
        in result.stdout


def _cut_in_its_last_row(text):
    """The file cut in the middle of its last number, as a copy cut short is."""
    return text[:-3]


@pytest.mark.slow
@pytest.mark.xdist_group("seed_runs")
def _row(step, row):
    """The file with step ``step``'s row (0-based; the header is line 1) replaced by ``row`` (None: removed)."""
    def damage(text):
        lines = text.splitlines(keepends=True)
        lines[step + 1:step + 2] = [] if row is None else [row]
        return "".join(lines)
    return damage


# Each read as a row, it compared misaligned steps as the same: the two runs "bit-identical", or differing where not.
@pytest.mark.parametrize("damage, says", [
    (lambda text: text + "0,not a row\n", "line 22: '0,not a row' is not epoch,step,loss"),
    (_cut_in_its_last_row, "line 21: cut short: no line end"),
    (_row(3, None), "line 5: epoch 0 step 4 where a run writes epoch 0 step 3 or epoch 1 step 0"),
    (_row(3, "0,2,0.5\n"), "line 5: epoch 0 step 2 where a run writes epoch 0 step 3 or epoch 1 step 0"),
    (_row(3, "0,\u0663,0.5\n"), "line 5: not ASCII"),  # an Arabic-Indic 3, which int() reads as 3
    (_row(3, "0,3 ,0.5\n"), "line 5: '0,3 ,0.5' is not as a run writes it"),
    (lambda text: text + "1,0,0.5\n2,0,0.5\n", "line 23: epoch 1 has 1 steps, epoch 0 has 20"),
])
def test_a_damaged_losses_csv_of_a_same_seed_run_is_one_line(seed_runs, tmp_path, cli, damage, says):
    first, again = seed_runs["first"], tmp_path / "again"
    shutil.copytree(seed_runs["again"], again)
    (again / "losses.csv").write_text(damage((again / "losses.csv").read_text()))
    result = cli("compare", first, again)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"echo_rnn_tf1: error: {again / 'losses.csv'}: unreadable ({says})"


@pytest.mark.slow
@pytest.mark.xdist_group("seed_runs")
def test_a_losses_csv_must_hold_the_steps_its_record_says(seed_runs, tmp_path, cli):
    first, again = seed_runs["first"], tmp_path / "again"
    shutil.copytree(seed_runs["again"], again)
    record = json.loads((again / "run.json").read_text())
    (again / "run.json").write_text(json.dumps({**record, "steps_done": 19, "checkpoint": None}))  # (a checkpoint
    result = cli("compare", first, again)  # says the steps too: test_readers)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"echo_rnn_tf1: error: {again / 'losses.csv'}: 20 rows, where run.json says the "
                                     f"run trained 19 steps")


@pytest.mark.slow
@pytest.mark.xdist_group("seed_runs")
def test_no_same_seed_line_for_other_seeds_or_log_files(seed_runs, cli):
    first, other = seed_runs["first"], seed_runs["other"]
    for args in ((first, other), (first, first / "train.log")):
        result = cli("compare", *args)
        assert result.returncode == 0 and "same seed" not in result.stdout


def test_shipped_bits_are_consistent():
    losses, info = portable.shipped()
    assert sorted(losses) == list(portable.SEEDS) and info["settings"] == machine.PORTABLE_ENV
    assert all(len(losses[seed]) == portable.CONFIG.num_batches for seed in portable.SEEDS)
    assert {int(seed): value for seed, value in info["digests"].items()} == \
        {seed: portable.digest(values) for seed, values in losses.items()}
    assert all(0.5 < values[0] < 0.9 for values in losses.values())  # untrained at the first step, as every seed


def test_check_shipped_names_the_seed_and_step():
    losses, _ = portable.shipped()
    computed = {seed: values.copy() for seed, values in losses.items()}
    lines, same = check_shipped(computed, losses)
    assert same and all(line.endswith("the shipped bits") for line in lines)
    computed[3][500:] *= np.float32(1.5)
    lines, same = check_shipped(computed, losses)
    assert not same
    assert [line.split(": ", 1)[0] for line in lines if "differs" in line] == ["  seed 3"]
    assert lines[3].endswith("first differs at step 500, largest relative difference 0.5")  # |here - shipped| / shipped


@pytest.fixture(scope="session")  # (a module's is made again when other modules' tests come between)
def doctor_portable():
    """``python -m echo_rnn_tf1 doctor --portable`` in a fresh process whose environment caps oneDNN at AVX2, which
    --portable overrides: the CompletedProcess (read by two tests, on one xdist worker)."""
    return run_cli("doctor", "--portable", env=machine.environ_without_onednn_settings(ONEDNN_MAX_CPU_ISA="AVX2"))


@pytest.mark.slow
@pytest.mark.xdist_group("doctor_portable")
def test_portable_bits_do_not_depend_on_the_isa_cap(tmp_path, doctor_portable, faithful_epoch):
    # --portable sets oneDNN's settings before TensorFlow loads, over whatever the environment had: the same
    # bits under any cap. Without it, capping the instruction set changes the bits from step ~7 (measured).
    # A portable run without a cap against doctor --portable's seed 0 (one default epoch), made under an AVX2 cap
    # (which --portable overrides): the digest of its losses, in doctor's report.
    out = tmp_path / "portable"
    result = run_cli("--num-epochs", 1, "--seed", 0, "--out", out, "--portable", "--no-pictures",
                     env=machine.environ_without_onednn_settings())
    assert result.returncode == 0, result.stderr
    (seed_0,) = [line for line in doctor_portable.stdout.splitlines() if line.startswith("  seed 0: ")]
    assert seed_0.split()[2] == portable.digest(read_losses(out / "losses.csv")[2])[:16]

    # Without --portable the environment's settings decide, and the default ones train the same seed to other bits
    # here: the digests above agree by --portable's doing.
    env = machine.environ_without_onednn_settings()
    if env == os.environ:  # this process has the default settings: the same bits as a fresh one (test_oracle)
        default = faithful_epoch(0)[0]  # (portable.CONFIG's epoch, the source's update)
    else:
        result = run_cli("--num-epochs", 1, "--seed", 0, "--out", tmp_path / "default", "--no-pictures", env=env)
        assert result.returncode == 0, result.stderr
        default = read_losses(tmp_path / "default" / "losses.csv")[2]
    assert portable.digest(default)[:16] != seed_0.split()[2]


@pytest.mark.slow
@pytest.mark.xdist_group("epochs")
def test_doctor_checks_the_package_against_the_source(cli, source_epoch, monkeypatch):
    # In this process, with the source's epoch run once for test_oracle too (here first, if this test comes first:
    # before SourceRun is replaced): doctor --portable below runs the oracle from doctor itself.
    source = source_epoch(0)

    class RunAlready(contextlib.nullcontext):
        def __init__(self, seed, num_epochs, env=None):
            assert (seed, num_epochs, env) == (0, 1, None)
            super().__init__(self)

        def result(self, timeout=600):
            return source

    monkeypatch.setattr(oracle, "SourceRun", RunAlready)
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("environment: python ") and "tensorflow 2." in lines[0]
    assert "legacy Keras cell: available (tf.compat.v1.nn.rnn_cell.BasicRNNCell)" in lines
    assert any(line.startswith("machine: ") and "oneDNN" in line for line in lines)
    assert "the package against the source's own loop (seed 0, one epoch): bit-identical (1000 losses)" in lines
    assert lines[-1] == "doctor: everything reproduces"


def test_doctor_says_when_the_machine_failed_the_sources_run(cli, monkeypatch):
    # e.g. killed by the out-of-memory killer: not "does not reproduce" (exit 1) but the machine (exit 3)
    class Killed(contextlib.nullcontext):
        def __init__(self, *args, **kwargs):
            super().__init__(self)

        def result(self, timeout=600):
            raise MachineError("the source's code was killed by SIGKILL")

    monkeypatch.setattr(oracle, "SourceRun", Killed)
    monkeypatch.setattr(train, "train", lambda config, seed, log: [0.5] * config.num_batches)  # (the package's epoch)
    result = cli("doctor")
    assert result.returncode == 3, result.stdout + result.stderr
    assert one_error_line(result.stderr) == "echo_rnn_tf1: error: the source's code was killed by SIGKILL"
    assert result.stdout.splitlines()[-1].startswith("portable settings: ")  # the report so far, then the error


@pytest.mark.slow
@pytest.mark.xdist_group("doctor_portable")
def test_doctor_portable_reports_every_seed(doctor_portable):
    # Whether this machine reproduces bits made on another is what doctor tells, not what a test may assume;
    # the report must be whole and its exit code must say what its lines say.
    result = doctor_portable
    lines = result.stdout.splitlines()
    seeds = [line for line in lines if line.startswith("  seed ")]
    assert [line.split(":")[0] for line in seeds] == [f"  seed {s}" for s in portable.SEEDS]
    reproduces = "this machine reproduces the shipped bits" in lines
    assert reproduces == all(line.endswith("the shipped bits") for line in seeds)
    assert result.returncode == (0 if reproduces else 1), result.stderr
    assert "portable settings: on (TF_ENABLE_ONEDNN_OPTS=0 ONEDNN_MAX_CPU_ISA=SSE41)" in lines  # (over AVX2)
    (machine_line,) = [line for line in lines if line.startswith("machine: ")]
    assert ", oneDNN SSE41 (" in machine_line
    # the source's own loop runs under the same settings: bit-identical on any machine
    assert "the package against the source's own loop (seed 0, one epoch): bit-identical (1000 losses)" in lines
