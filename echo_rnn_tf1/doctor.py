"""``python -m echo_rnn_tf1 doctor``: what to run first when your numbers differ from ours.

It prints the environment (versions, the legacy Keras cell, the machine and its oneDNN settings, TensorBoard),
then checks, on this machine: the package against the source's own loop, bit for bit (seed 0, one epoch);
and, with ``--portable``, seeds 0-9 against the bits shipped in the package. Exit code 0: everything
reproduces; 1: something does not (each line says what); 3: the machine failed one of its processes.
"""
from . import machine
from .failures import EXIT_FAILED, EXIT_OK

ORACLE_SEED = 0


def check_shipped(computed, shipped_losses):
    """Lines comparing ``{seed: losses}`` computed here with the shipped ones; ``(lines, all reproduce)``."""
    from .compare import first_difference
    from .portable import digest

    lines, same = [], True
    for seed in sorted(shipped_losses):
        index, largest = first_difference(computed[seed], shipped_losses[seed])
        if index is None and len(computed[seed]) == len(shipped_losses[seed]):
            lines.append(f"  seed {seed}: {digest(computed[seed])[:16]}  the shipped bits")
        else:
            same = False
            lines.append(f"  seed {seed}: {digest(computed[seed])[:16]}  first differs at step {index}, "
                         f"largest relative difference {largest:.3g}")
    return lines, same


def doctor(portable=False, out=print):
    """Print the report; return the exit code. The source's own loop runs in a process of its own, started first:
    it goes on while this one loads TensorFlow and trains."""
    if portable:
        machine.apply_portable()
    from .oracle import SourceRun
    from .portable import CONFIG

    with SourceRun(ORACLE_SEED, CONFIG.num_epochs) as source:
        return _report(portable, out, source)


def _report(portable, out, source):
    from .tfcompat import LegacyKerasError, import_quiet_tensorflow, installed_version

    found = machine.versions()
    out("environment: " + ", ".join(f"{name} {found[name] or 'not installed'}" for name in found))
    tensorboard = installed_version("tensorboard", "tensorboard")
    out(f"TensorBoard: {tensorboard or 'not installed (pip install tensorboard)'}")
    try:
        tf = import_quiet_tensorflow()
    except LegacyKerasError as e:
        out(f"legacy Keras cell: NOT available: {e}")
        return EXIT_FAILED
    out("legacy Keras cell: available (tf.compat.v1.nn.rnn_cell.BasicRNNCell)")
    described = machine.describe(tf)
    out(f"machine: {machine.machine_line(described)}")
    settings = " ".join(f"{k}={v}" for k, v in machine.PORTABLE_ENV.items())
    out(f"portable settings: on ({settings})" if machine.is_portable() else
        f"portable settings: off (--portable sets {settings})")

    ok = _check_oracle(out, source)
    if portable:
        ok = _check_portable(out) and ok
    else:
        out("(doctor --portable also checks this machine against the bits shipped from another one)")
    out("doctor: " + ("everything reproduces" if ok else "something does not reproduce (see above)"))
    return EXIT_OK if ok else EXIT_FAILED


def _check_oracle(out, source):
    """The package against the source's own loop (``source``: its ``SourceRun``), in this environment: bit for bit
    on any machine. Returns whether they are bit-identical."""
    import numpy as np

    from .compare import identity_line
    from .oracle import OracleError
    from .portable import CONFIG
    from .train import train

    package = np.asarray(train(CONFIG, ORACLE_SEED, log=lambda line: None), dtype=np.float32)
    try:
        expected, _ = source.result()
    except OracleError as e:
        out(f"the package against the source's own loop: cannot tell ({e})")
        return False
    line = identity_line(package, expected, CONFIG.num_batches)
    out(f"the package against the source's own loop (seed {ORACLE_SEED}, one epoch): {line}")
    return line.startswith("bit-identical") and len(package) == len(expected)


def _check_portable(out):
    """This machine against the shipped bits: ``--portable``'s training of each seed."""
    from .portable import SEEDS, shipped, train_seeds

    shipped_losses, info = shipped()
    made = info.get("versions", {})
    out(f"the shipped bits (seeds {SEEDS[0]}-{SEEDS[-1]}, one default epoch each) were made with tensorflow "
        f"{made.get('tensorflow')}, tf-keras {made.get('tf-keras')}, numpy {made.get('numpy')} on "
        f"{machine.machine_line(info.get('machine'))}:")
    for where in info.get("reproduced_on", []):
        out(f"  seen on: {where}")
    lines, same = check_shipped(train_seeds(SEEDS), shipped_losses)
    for line in lines:
        out(line)
    out("this machine reproduces the shipped bits" if same else "this machine does not reproduce the shipped bits")
    return same
