"""Which machine a run was made on, and the settings under which its bits do not depend on it.

A seeded run's losses are the same bits every time on one machine, but not on another: the cell's matrix
products (and, with oneDNN's custom operations on, the ``tanh`` fused to them) run in oneDNN, which picks its
kernels by the CPU's instruction set when TensorFlow loads. ``ONEDNN_MAX_CPU_ISA`` caps that choice, so one
machine can stand for an older one. ``PORTABLE_ENV`` caps it at SSE4.1, which every x86-64 CPU oneDNN runs on
has, and turns the custom operations off, so that only oneDNN's matrix product is left to depend on the CPU
(``scripts/portable_bits.py`` measures what this buys; docs/machines.md has the numbers).

Nothing here imports TensorFlow: these settings must be in the environment before it loads.
"""
import os
import platform
import sys

from .failures import BadInput

# oneDNN's instruction-set levels, lowest first, as ONEDNN_MAX_CPU_ISA names them: each with the level it
# extends and the CPU flags (as /proc/cpuinfo spells them) it adds. The AVX2 VNNI levels are a side branch that no
# AVX-512 level includes. A level is used when the CPU has all its flags and the cap includes it.
ISA_LEVELS = {
    "SSE41": (None, {"sse4_1"}),
    "AVX": ("SSE41", {"avx"}),
    "AVX2": ("AVX", {"avx2", "fma"}),
    "AVX2_VNNI": ("AVX2", {"avx_vnni"}),
    "AVX2_VNNI_2": ("AVX2_VNNI", {"avx_vnni_int8", "avx_ne_convert"}),
    "AVX512_CORE": ("AVX2", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}),
    "AVX512_CORE_VNNI": ("AVX512_CORE", {"avx512_vnni"}),
    "AVX512_CORE_BF16": ("AVX512_CORE_VNNI", {"avx512_bf16"}),
    "AVX10_1_512": ("AVX512_CORE_BF16", {"avx512_fp16"}),
    "AVX10_1_512_AMX": ("AVX10_1_512", {"amx_tile", "amx_int8", "amx_bf16"}),
    "AVX10_1_512_AMX_FP16": ("AVX10_1_512_AMX", {"amx_fp16"}),
}
_ALIASES = {"AVX512_CORE_FP16": "AVX10_1_512", "AVX512_CORE_AMX": "AVX10_1_512_AMX",
            "AVX512_CORE_AMX_FP16": "AVX10_1_512_AMX_FP16"}

ONEDNN_ENV = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")
PORTABLE_ENV = {"TF_ENABLE_ONEDNN_OPTS": "0", "ONEDNN_MAX_CPU_ISA": "SSE41"}


def cpu_info():
    """``(model name, set of flags)`` of the first CPU, from /proc/cpuinfo; ``(platform's guess, empty set)`` elsewhere."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
                if model is not None and flags:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _chain(level):
    """``level`` and every level it extends."""
    while level is not None:
        yield level
        level = ISA_LEVELS[level][0]


def onednn_isa(flags, cap=None):
    """The level oneDNN dispatches to on a CPU with ``flags`` under ``ONEDNN_MAX_CPU_ISA=cap``; None below SSE4.1."""
    cap = _ALIASES.get((cap or "ALL").upper(), (cap or "ALL").upper())
    allowed = set(_chain(cap)) if cap in ISA_LEVELS else set(ISA_LEVELS)  # ALL, DEFAULT: no cap
    usable = [level for level in ISA_LEVELS
              if set(_chain(level)) <= allowed and all(ISA_LEVELS[l][1] <= flags for l in _chain(level))]
    return usable[-1] if usable else None


def emulable_levels(flags):
    """The levels a CPU with ``flags`` can stand for by capping oneDNN (``ONEDNN_MAX_CPU_ISA``), lowest first;
    the last is its own."""
    return [level for level in ISA_LEVELS if onednn_isa(flags, level) == level]


def environ_without_onednn_settings(**settings):
    """This process's environment with no oneDNN setting of its own, then ``settings``: for a child process that
    is to run as a given (emulated) machine."""
    env = {name: value for name, value in os.environ.items() if name not in ONEDNN_ENV}
    env.update(settings)
    return env


def usable_cores():
    """The cores this process may run on (its affinity, on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def describe(tf=None):
    """The ``machine`` object of run.json: CPU, oneDNN's level and settings, cores, and (given ``tf``) CUDA."""
    model, flags = cpu_info()
    settings = {name: os.environ.get(name) for name in ONEDNN_ENV}
    machine = {
        "cpu": model,
        "architecture": platform.machine(),
        "onednn_isa": onednn_isa(flags, settings["ONEDNN_MAX_CPU_ISA"]) if flags else None,
        "cores": usable_cores(),
        **settings,
    }
    if tf is not None:
        machine["cuda_build"] = bool(tf.test.is_built_with_cuda())
    return machine


def machine_line(machine):
    """One line for people: ``AMD EPYC, 2 cores, oneDNN AVX512_CORE_BF16 (ONEDNN_MAX_CPU_ISA unset, ...)``."""
    if not machine:
        return "machine not recorded"
    settings = ", ".join(f"{name}={machine.get(name)}" if machine.get(name) is not None else f"{name} unset"
                         for name in ONEDNN_ENV)
    cuda = {True: ", a CUDA build", False: "", None: ""}[machine.get("cuda_build")]
    cores = machine.get("cores")
    return (f"{machine.get('cpu')}, {cores} core{'s' * (cores != 1)}, oneDNN {machine.get('onednn_isa')} "
            f"({settings}){cuda}")


def versions():
    """Versions of what a run depends on, for run.json."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for dist in ("tensorflow", "tf-keras", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def is_portable(environ=os.environ):
    return all(environ.get(name) == value for name, value in PORTABLE_ENV.items())


def apply_portable():
    """Put ``PORTABLE_ENV`` in the environment; it must come before TensorFlow loads (child processes inherit it)."""
    if "tensorflow" in sys.modules and not is_portable():
        raise BadInput("--portable: TensorFlow is already loaded with other oneDNN settings; set "
                       + " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items()) + " before it loads")
    os.environ.update(PORTABLE_ENV)
