"""What cannot work, refused before anything starts: a run that needs more memory than the machine has, and an
output folder whose path the file system cannot hold with the run's files inside."""
import os

from .failures import BadInput, MachineError

# Lower bounds of what a run holds in memory, measured with tracemalloc and the peak RSS:
SERIES_BYTES = 24       # per element of the series: generate_data peaks at 24.0 bytes (int64 draws, roll, targets)
PARAMETER_BYTES = 32    # per trained parameter: 44.6 bytes measured (tf1, state_size 4000), 69 (tf2); the
                        # variable, its Adagrad accumulator, its gradient and its initializer are 16 at least
# The longest paths a run writes inside its folder (seen with strace): the Saver's
# "model.ckpt-N.data-00000-of-00001.tempstate<up to 20 digits>" (N up to 20 digits: 85 characters) and
# TensorBoard's "tb/events.out.tfevents.<10 digits>.<host name, up to 64>" (98). 200 leave room.
INNER_PATH = 200


def memory_needed(config):
    """Bytes a run of ``config`` needs at least: the series (data and targets), and the model's parameters."""
    state, classes = config.state_size, config.num_classes
    parameters = (classes + state) * state + state + state * classes + classes
    return SERIES_BYTES * config.total_series_length + PARAMETER_BYTES * parameters


def memory_available():
    """Bytes of memory this process may still use (Linux: MemAvailable, and the cgroup's limit), or None."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read())
        if limit != "max":
            found.append(int(limit) - current)
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def check_memory(config):
    """Refuse (MachineError, exit code 3) a run that needs more memory than is available, naming the flags."""
    needed, available = memory_needed(config), memory_available()
    if available is None or needed <= available:
        return
    series = SERIES_BYTES * config.total_series_length
    flag = (f"--total-series-length {config.total_series_length}" if series >= needed / 2
            else f"--state-size {config.state_size}")
    raise MachineError(f"{flag}: the run needs at least {_gib(needed)} of memory (the series and the model's "
                       f"parameters), and {_gib(available)} is available")


def check_folder_path(path, flag="--out"):
    """Refuse (BadInput, exit code 2) a folder path that is too long for the file system, alone or with a run's files in it."""
    if "\0" in path:
        raise BadInput(f"{flag} {path!r}: a path cannot hold a NUL byte")
    absolute = os.path.abspath(path)
    existing = absolute
    while not os.path.isdir(existing):
        existing = os.path.dirname(existing)
    name_max = _pathconf(existing, "PC_NAME_MAX", 255)
    path_max = _pathconf(existing, "PC_PATH_MAX", 4096)
    for part in absolute.split(os.sep):
        if len(os.fsencode(part)) > name_max:
            raise BadInput(f"{flag} {path[:60]}...: a name in it has {len(os.fsencode(part))} bytes; the file system "
                           f"allows {name_max}")
    if len(os.fsencode(absolute)) + INNER_PATH >= path_max:
        raise BadInput(f"{flag} {path[:60]}...: the path has {len(os.fsencode(absolute))} bytes; with the run's "
                       f"files inside (up to {INNER_PATH} more) it would pass the file system's {path_max}")


def _pathconf(path, name, default):
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError):
        return default


def _gib(size):
    return f"{size / 2**30:.3g} GiB"
