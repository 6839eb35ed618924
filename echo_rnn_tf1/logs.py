"""Reading loss logs in the source's format: ``New data, epoch k`` and ``Step N Batch loss X``.

Reads what users actually have: logs written by this package, and the 2017 text pasted from the notebook
(indented, with TensorFlow's WARNING lines between), values in the old 6-significant-digit style (0.70098) or
today's float32 style (0.65985644). Anything wrong is a ``LogError`` that names the line.
"""
import codecs
import collections
import re
from importlib import resources

from .config import LOG_EVERY
from .failures import BadInput

REFERENCE_NAME = "reference_2017.log"  # the 2017 run's 50 loss lines, exactly as the source recorded them

_EPOCH = re.compile(r"New\s+data,\s*epoch\s+(\S+)")  # (any spacing, tabs too: between every two words alike)
_LOSS = re.compile(r"Step\s+(\S+)\s+Batch\s+loss\s+(\S+)")
LOG_LIMIT = 16 * 2**20  # bytes of a log: a run of 10 million steps logs about 4 MB
# Byte-order marks, longest first (UTF-32's LE mark begins with UTF-16's)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class LogError(BadInput, ValueError):
    """A log that cannot be read; the message names the file and line."""


# One logged loss; ``line`` is its 1-based line number in the file.
Point = collections.namedtuple("Point", ["epoch", "step", "loss", "line"])


def read_reference():
    """The 2017 run's log text, as shipped with the package."""
    return resources.files(__package__).joinpath(REFERENCE_NAME).read_text()


def reference_points():
    """The 2017 run's 50 logged losses."""
    return parse_log(read_reference(), "2017 log")


def read_log(path, whole_lines=False):
    """Parse the log at ``path`` (a ``train.log`` or any text holding the source's lines): a regular file of at most
    ``LOG_LIMIT`` bytes, UTF-8, or UTF-16 or UTF-32 with a byte-order mark. ``whole_lines``: a last line without its
    line end is a cut file (a run writes whole lines, even when killed), not a loss cut short read as a loss."""
    from .record import RunError, open_regular

    try:
        with open_regular(path, "file (a log must be a file)") as f:
            data = f.read(LOG_LIMIT + 1)
    except RunError as e:
        raise LogError(str(e)) from None
    except OSError as e:
        raise LogError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) > LOG_LIMIT:
        raise LogError(f"{path}: larger than {LOG_LIMIT // 2**20} MiB; a log of 10 million steps is 4 MB")
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    if encoding == "utf-8" and b"\0" in data:
        raise LogError(f"{path}: not a text log (it holds NUL bytes): a binary file, or UTF-16 or UTF-32 without "
                       f"a byte-order mark; save it as UTF-8")
    text = data.decode(encoding, errors="replace")
    if whole_lines and text and not text.endswith("\n"):
        cut = text.count("\n") + 1
        raise LogError(f"{path}: unreadable (line {cut}: cut short: no line end)")
    return parse_log(text, str(path))


def parse_log(text, name="log"):
    """Return the ``Point``s of a log's text in order, or raise ``LogError`` naming the first bad line.

    Lines that are neither an epoch line nor a loss line are noise and skipped. The points must be what
    the source prints: epochs 0, 1, 2, ... in order; in each, steps 0, 100, 200, ... with none missing or
    repeated; every epoch but the last as long as the first (the last may stop early).
    """
    points, epoch, epoch_line, expected_step, lengths = [], None, 0, 0, []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{name}, line {number}"
        epoch_match, loss_match = _EPOCH.fullmatch(line), _LOSS.fullmatch(line)
        if epoch_match:
            new_epoch = _integer(epoch_match.group(1), where, "epoch")
            expected = 0 if epoch is None else epoch + 1
            if new_epoch != expected:
                problem = "repeats epoch" if epoch is not None and new_epoch <= epoch else "skips to epoch"
                raise LogError(f"{where}: {problem} {new_epoch} (expected epoch {expected})")
            if epoch is not None:
                lengths.append((epoch, expected_step // LOG_EVERY, epoch_line))
            epoch, epoch_line, expected_step = new_epoch, number, 0
        elif loss_match:
            if epoch is None:
                raise LogError(f"{where}: a loss line before any 'New data, epoch' line")
            step = _integer(loss_match.group(1), where, "step")
            if step != expected_step:
                if step < expected_step:
                    raise LogError(f"{where}: epoch {epoch} step {step} again, or out of order (expected step {expected_step})")
                raise LogError(f"{where}: epoch {epoch} step {step} follows step {expected_step - LOG_EVERY}: "
                               f"step {expected_step} is missing")
            loss = _loss(loss_match.group(2), where)
            points.append(Point(epoch, step, loss, number))
            expected_step += LOG_EVERY
        elif line.startswith(("Step", "New data")):  # (the 2017 log's noise is TensorFlow's WARNING lines)
            raise LogError(f"{where}: malformed log line {line[:80]!r}")
    if not points:
        raise LogError(f"{name}: no loss lines ('Step N Batch loss X') in it")
    first_length = lengths[0][1] if lengths else None
    for epoch_idx, length, line_no in lengths:
        if length != first_length:
            raise LogError(f"{name}, line {line_no}: epoch {epoch_idx} has {length} loss lines, epoch 0 has {first_length}")
    return points


def _integer(text, where, what):
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # str.isdigit alone accepts "²"
        raise LogError(f"{where}: {what} {text[:40]!r} is not a whole number (0-9, at most 18 digits)")
    return int(text)


def _loss(text, where):
    try:
        if not text.isascii():  # float() reads other scripts' digits too
            raise ValueError
        value = float(text)
    except ValueError:
        raise LogError(f"{where}: loss {text[:40]!r} is not a number") from None
    if value < 0:  # NaN and inf pass: they are what a diverged run printed
        raise LogError(f"{where}: loss {text} is negative; a cross-entropy never is")
    return value


def logged_points(losses, num_batches):
    """The points a run with these per-step losses logs: every ``LOG_EVERY``-th step of each epoch."""
    return [Point(i // num_batches, i % num_batches, float(loss), None)
            for i, loss in enumerate(losses) if i % num_batches % LOG_EVERY == 0]
