"""The compatibility matrix: every supported TensorFlow minor version, each in a virtual environment of its own.

    nice -n 10 python benchmarks/compat_matrix.py [--versions 2.12 2.21] [--venvs DIR] [--setup-only]

For each version the environment starts as a user's would (that TensorFlow installed, with tf-keras of the same
minor version from 2.16 on), then the project is installed into it the documented way: ``requirements.txt``
from 2.16 on, ``requirements-tf2.12-2.15.txt`` before. Then, per version:

- kept: the installed TensorFlow is still that version after the project's install;
- tests: ``TESTS`` below pass (those that hold on any TensorFlow: the suite less the full 5-epoch runs, the
  notebook's committed outputs, which are bits of the TensorFlow they were made with, and the fault tests);
- = source: the package's losses equal the source's own loop (echo_rnn_tf1/source_2017.py) bit for bit, seed 0, one epoch;
- tf2 step 0: the TF2 engine's first loss against the faithful one's (relative difference);
- notebook: it runs headless with one epoch, no error, its three pictures drawn;
- seed 0 digest: the first 12 hex digits of the SHA-256 of seed 0's 1000 float32 losses; "same" where they are
  the bits of the newest version's run, made on the same machine in the same matrix run;
- steps/s: the faithful loop (one ``sess.run`` a step) and the TF2 engine (an XLA-compiled epoch), each timed
  an epoch at a time, alternating, median of 3.

Environments are kept in ``--venvs`` and reused by the next run; each version's results are kept there too
(tf2.X/result.json), and ``--table`` prints the table of those kept, without measuring. Not part of CI: it downloads a TensorFlow per version and takes minutes per version.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERSIONS = [f"2.{minor}" for minor in range(12, 22)]
LEGACY_KERAS_FROM = (2, 16)  # as tfcompat: from here the cells need tf-keras (imported there only inside a venv)
TESTS = ["tests/test_data.py", "tests/test_model.py", "tests/test_cli.py", "tests/test_compare.py",
         "tests/test_oracle.py", "tests/test_numpy_proof.py", "tests/test_tf2.py", "tests/test_trained_run.py",
         "tests/test_tensorboard.py", "tests/test_tfcompat.py"]
DISTRIBUTIONS = ["tensorflow", "tf-keras", "keras", "numpy", "tensorboard", "protobuf"]
ROUNDS = 3


def quiet_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT, PIP_DISABLE_PIP_VERSION_CHECK="1")


def run(args, timeout=3600, **kwargs):
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=quiet_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def installed(python):
    code = ("import json; from importlib import metadata\n"
            "def v(d):\n    try: return metadata.version(d)\n    except metadata.PackageNotFoundError: return None\n"
            f"print(json.dumps({{d: v(d) for d in {DISTRIBUTIONS!r}}}))")
    return json.loads(run([python, "-c", code]).stdout)


def requirements_file(version):
    legacy = tuple(int(p) for p in version.split(".")) >= LEGACY_KERAS_FROM
    return ("requirements.txt" if legacy else "requirements-tf2.12-2.15.txt"), legacy


def setup(version, venvs):
    """The environment for ``version``: a user's TensorFlow first, then the project's install. Returns
    ``(python, versions before the project's install, versions after, the requirements file)``."""
    path = os.path.join(venvs, f"tf{version}")
    python = os.path.join(path, "bin", "python")
    requirements, legacy = requirements_file(version)
    marker = os.path.join(path, "user-tensorflow-installed")
    if not os.path.exists(marker):
        venv.create(path, with_pip=True, clear=True)
        user = [f"tensorflow=={version}.*"] + ([f"tf-keras=={version}.*"] if legacy else [])
        result = run([python, "-m", "pip", "install", "--quiet", *user])
        if result.returncode != 0:
            raise SystemExit(f"installing {' '.join(user)} failed:\n{result.stderr[-3000:]}")
        open(marker, "w").close()
    before = installed(python)
    result = run([python, "-m", "pip", "install", "--quiet", "-r", requirements])
    if result.returncode == 0 and not legacy:  # (the documented second step: the package, its declared deps aside)
        result = run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."])
    if result.returncode != 0:
        raise SystemExit(f"pip install -r {requirements} failed for TensorFlow {version}:\n{result.stderr[-3000:]}")
    return python, before, installed(python), requirements


def run_tests(python):
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], timeout=3600)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    failed = [line.split(" ")[1] for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    return {"exit_code": result.returncode, "summary": summary.strip("= "), "failed": failed}


def probe():
    """Inside a version's environment: the measurements that need its TensorFlow, as one JSON object."""
    sys.path.insert(0, ROOT)
    import numpy as np

    import echo_rnn_tf1  # noqa: F401  (before tensorflow)
    from echo_rnn_tf1 import tf2
    from echo_rnn_tf1.config import Config
    from echo_rnn_tf1.tfcompat import import_quiet_tensorflow
    from echo_rnn_tf1.train import prepare, run_training, train

    tf = import_quiet_tensorflow()
    config = Config(num_epochs=1)
    faithful = np.array(train(config, 0, log=lambda line: None), dtype=np.float32)
    from echo_rnn_tf1.oracle import OracleError, source_losses

    try:
        source, oracle_error = source_losses(0, 1)[0], None
    except OracleError as e:
        source, oracle_error = None, str(e)
    native = np.array(tf2.train(config, 0, log=lambda line: None), dtype=np.float32)

    graph, model, inputs_value, targets_value = prepare(config, 0)
    with graph.as_default():
        init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session(graph=graph)
    sess.run(init)
    engine, windowsX, windowsY = tf2.start(config, 0)
    engine.compile(windowsX, windowsY)
    faithful_times, native_times = [], []
    for _ in range(ROUNDS):  # alternating, so that machine noise falls on both alike
        start = time.perf_counter()
        run_training(sess, model, inputs_value, targets_value, config, log=lambda line: None)
        faithful_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.train_epoch(windowsX, windowsY)
        native_times.append(time.perf_counter() - start)
    sess.close()

    return {"tensorflow": tf.__version__, "numpy": np.__version__,
            "equals_source": None if source is None else faithful.tobytes() == source.tobytes(),
            "oracle_error": oracle_error,
            "tf2_step0_rel": float(abs(native[0] - faithful[0]) / faithful[0]),
            "digest": hashlib.sha256(faithful.tobytes()).hexdigest()[:12],
            "faithful_steps_per_s": config.num_batches / statistics.median(faithful_times),
            "tf2_steps_per_s": config.num_batches / statistics.median(native_times),
            "notebook": notebook()}


def notebook():
    """Run the notebook headless with one epoch, seed 0, from its own folder; say whether it ran clean."""
    import nbformat
    from nbclient import NotebookClient

    path = os.path.join(ROOT, "notebooks", "echo_rnn_tf1.ipynb")
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = "num_epochs = 1\nseed = 0"
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    except Exception as e:  # a cell raised: nbclient's CellExecutionError names it
        return {"ok": False, "error": str(e).strip().splitlines()[-1][:300]}
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    errors = [o for o in outputs if o.output_type == "error"]
    return {"ok": not errors and images == 3, "images": images, "seconds": round(time.perf_counter() - start, 1)}


def measure(version, venvs, skip_tests):
    started = time.perf_counter()
    python, before, after, requirements = setup(version, venvs)
    row = {"version": version, "requirements": requirements, "before": before, "after": after,
           "kept": before["tensorflow"] == after["tensorflow"]}
    result = run([python, os.path.abspath(__file__), "--probe"], timeout=1800)
    if result.returncode != 0:
        row["probe_error"] = result.stderr[-3000:]
    else:
        row.update(json.loads(result.stdout.strip().splitlines()[-1]))
    if not skip_tests:
        row["tests"] = run_tests(python)
    row["minutes"] = round((time.perf_counter() - started) / 60, 1)
    row["date"], row["machine"] = datetime.date.today().isoformat(), machine()
    with open(result_path(version, venvs), "w") as f:
        json.dump(row, f, indent=1)
    return row


def result_path(version, venvs):
    return os.path.join(venvs, f"tf{version}", "result.json")


def machine():
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), [])
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma") if f in flags]
    return f"{model}, {os.cpu_count()} cores ({', '.join(isa) or 'no AVX2'}), Python {platform.python_version()}"


def table(rows, newest):
    reference = next((r.get("digest") for r in rows if r["version"] == newest), None)
    lines = ["| TensorFlow | tf-keras | numpy | tensorboard | kept | tests | = source | tf2 step 0 | notebook "
             "| seed 0 digest | faithful steps/s | tf2 steps/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        after = r["after"]
        if "probe_error" in r:
            probe_cells = ["probe failed: " + r["probe_error"].strip().splitlines()[-1][:120]] + [""] * 5
        else:
            nb = r["notebook"]
            same = "" if reference is None else (" (same)" if r["digest"] == reference else " (differs)")
            probe_cells = ["yes" if r["equals_source"] else "**no**", f"{r['tf2_step0_rel']:.1e}",
                           f"ok, {nb['seconds']} s" if nb["ok"] else f"**failed**: {nb.get('error', nb)}",
                           f"`{r['digest']}`{same}", f"{r['faithful_steps_per_s']:.0f}", f"{r['tf2_steps_per_s']:.0f}"]
        tests = r.get("tests")
        tests_cell = "not run" if tests is None else (tests["summary"] if not tests["failed"] else
                                                      f"**{tests['summary']}**: {', '.join(tests['failed'])}")
        lines.append("| " + " | ".join([after["tensorflow"], after["tf-keras"] or "(built-in Keras "
                                         f"{after['keras']})", after["numpy"], after["tensorboard"] or "none",
                                         "yes" if r["kept"] else f"**no** (was {r['before']['tensorflow']})",
                                         tests_cell, *probe_cells]) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=VERSIONS, help="TensorFlow minor versions (default: all)")
    parser.add_argument("--venvs", default=os.path.join(tempfile.gettempdir(), "echo-rnn-tf1-compat"),
                        help="where the environments are made and kept (default: %(default)s)")
    parser.add_argument("--setup-only", action="store_true", help="make the environments, measure nothing")
    parser.add_argument("--skip-tests", action="store_true", help="measure, but do not run the test subset")
    parser.add_argument("--table", action="store_true", help="measure nothing: the table of the results kept")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # inside a version's venv
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe()))
        return 0
    os.makedirs(args.venvs, exist_ok=True)
    if args.setup_only:
        for version in args.versions:
            _, before, after, requirements = setup(version, args.venvs)
            print(f"TensorFlow {version}: {before['tensorflow']} -> {after['tensorflow']} ({requirements})", flush=True)
        return 0
    if not args.table:
        for version in args.versions:
            row = measure(version, args.venvs, args.skip_tests)
            print(f"TensorFlow {version}: {row['minutes']} min, " + json.dumps(row["after"]), flush=True)
    rows = []
    for version in args.versions:
        if os.path.exists(result_path(version, args.venvs)):
            with open(result_path(version, args.venvs)) as f:
                rows.append(json.load(f))
    print("\n".join(sorted({f"{r['date']}, {r['machine']}" for r in rows})))  # one line if made in one go
    print(table(rows, max(args.versions, key=lambda v: tuple(map(int, v.split("."))))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
