"""Did a run reproduce the 2017 result? A verdict from the logged losses, with the evidence beside it.

Seeds differ from the unseeded 2017 run, so losses cannot be equal; the question is whether a run is as
close to the 2017 run as honest runs of the source are to each other. The criterion:

1. every point of the reference is in the run (a run that stopped early is no match);
2. every one of them is finite (a run that diverged is no match);
3. the run starts untrained: its first loss is within a factor of 2 (``FIRST_DECADES``) of the reference's;
4. in every epoch after the first, the median of the run's logged losses is within 1.5 decades (a factor of
   31.6, ``MAX_DECADES``) of the reference's median for that epoch. Epoch 0 is shown, not judged.

The numbers, measured on TensorFlow 2.21 with seeds 0-39 and 100-139 of the source (``envelope`` redoes it):
- first losses: 0.57 to 0.89, at most 0.10 decades from the 2017 run's 0.70098;
- epochs 1-4: the seeds that learn the echo stay within 0.98 decades of the 2017 epoch medians (seed 118,
  which learns late; most stay within 0.4); the failure shapes are 2.2 decades or more away: never learning
  (0.69), the no-memory plateau (0.485), and seeds 1 and 106 of the source, which stick on a plateau for all
  5 epochs. 1.5 decades is the middle of that gap;
- epoch 0 is where a seed escapes the no-memory plateau, and when it does is luck: seeds whose epoch-0 median
  is 0.10 or 0.39 (the 2017 run's: 0.0032) end like every other seed. Its median is not a verdict;
- single points are noisy (one spike in an otherwise matching run reaches 2.5 decades), hence medians.
"""
import collections
import math

import numpy as np

FIRST_DECADES = math.log10(2)  # the first loss: seeds measured within 0.10 decades of 2017's
MAX_DECADES = 1.5              # epoch medians after the first: honest seeds <= 0.98 decades, failures >= 2.2

Verdict = collections.namedtuple("Verdict", ["match", "summary", "reasons", "rows", "epochs"])


def compare(run_points, reference_points):
    """Judge ``run_points`` against ``reference_points`` (lists of ``logs.Point``); return a ``Verdict``.

    ``rows``: ``(epoch, step, reference_loss, run_loss or None, run/reference ratio or None)`` for every
    reference point. ``epochs``: ``(epoch, reference_median, run_median or None, decades apart or None, ok)``;
    ``ok`` is None for epoch 0, which is not judged.
    """
    run = {(p.epoch, p.step): p for p in run_points}
    rows, reasons = [], []
    for ref in reference_points:
        got = run.get((ref.epoch, ref.step))
        loss = None if got is None else got.loss
        ratio = loss / ref.loss if loss is not None and math.isfinite(loss) and 0 < ref.loss < math.inf else None
        rows.append((ref.epoch, ref.step, ref.loss, loss, ratio))

    missing = [(e, s) for e, s, _, loss, _ in rows if loss is None]
    if missing:
        e, s = missing[0]
        reasons.append(f"the run stops early: {len(missing)} of the reference's {len(rows)} points are missing, "
                       f"from epoch {e} step {s} on")
    not_finite = [run[(e, s)] for e, s, _, loss, _ in rows if loss is not None and not math.isfinite(loss)]
    if not_finite:
        p = not_finite[0]
        reasons.append(f"the run diverged: its loss is {p.loss} at epoch {p.epoch} step {p.step} (line {p.line})")

    first = rows[0]
    first_decades = decades_apart(first[3], first[2]) if first[3] is not None else None
    if first_decades is not None and abs(first_decades) > FIRST_DECADES:
        reasons.append(f"the run does not start untrained: its first loss {first[3]:.3g} is not within "
                       f"{10 ** FIRST_DECADES:.2g}x of the reference's {first[2]:.3g}")

    epochs = []
    first_epoch = rows[0][0]
    for epoch in sorted({row[0] for row in rows}):
        ref_losses = [row[2] for row in rows if row[0] == epoch]
        run_losses = [row[3] for row in rows if row[0] == epoch and row[3] is not None]
        ref_median = float(np.median(ref_losses))
        if len(run_losses) < len(ref_losses) or not all(math.isfinite(x) for x in run_losses):
            epochs.append((epoch, ref_median, None, None, False))
            continue
        run_median = float(np.median(run_losses))
        decades = decades_apart(run_median, ref_median)
        ok = None if epoch == first_epoch else decades is not None and abs(decades) <= MAX_DECADES
        epochs.append((epoch, ref_median, run_median, decades, ok))
        if ok is False and decades is None:  # only a reference with an infinite or NaN loss gets here
            reasons.append(f"epoch {epoch}: the reference's median loss is {ref_median}; nothing compares with it")
        elif ok is False:  # (an epoch with missing or non-finite points is already a reason above)
            reasons.append(f"epoch {epoch}: median loss {run_median:.3g} is {times(abs(decades)):.3g}x "
                           f"{'above' if decades > 0 else 'below'} the reference's {ref_median:.3g} "
                           f"(the limit is {10 ** MAX_DECADES:.3g}x)")

    if reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""  # (compare lists them)
        summary = "NO MATCH: " + reasons[0] + more
    else:
        judged = [e for e in epochs if e[4] is not None]
        said = "no epoch after the first to judge (the reference logs one)"  # (a short run, or one stopped early)
        if judged:
            epoch, _, _, decades, _ = max(judged, key=lambda e: abs(e[3]))
            said = (f"every epoch's median loss after the first is within {10 ** MAX_DECADES:.3g}x of the "
                    f"reference's (the widest gap: {times(abs(decades)):.2f}x, epoch {epoch})")
        summary = f"MATCH: all {len(rows)} reference points present and finite; starts untrained; {said}"
    return Verdict(not reasons, summary, reasons, rows, epochs)


def decades_apart(loss, reference):
    """``log10(loss / reference)`` for losses >= 0: -inf and inf where one of them is 0 and the other is not;
    None where the ratio means nothing (an infinite or NaN loss)."""
    if not (math.isfinite(loss) and math.isfinite(reference)):
        return None
    if loss == reference:
        return 0.0
    if loss == 0 or reference == 0:
        return -math.inf if loss == 0 else math.inf
    return math.log10(loss) - math.log10(reference)  # (a quotient could overflow or underflow)


def times(decades):
    """``10 ** decades``, inf where a float cannot hold it."""
    try:
        return 10.0 ** decades
    except OverflowError:
        return math.inf


def format_table(verdict, run_name="this run", reference_name="2017"):
    """The side-by-side table: a row per reference point, and each epoch's medians after its rows."""
    width = max(12, len(run_name), len(reference_name))
    lines = [f"{'epoch':>5} {'step':>5}  {reference_name:>{width}}  {run_name:>{width}}  {'run/ref':>8}"]
    by_epoch = {e[0]: e for e in verdict.epochs}
    for i, (epoch, step, ref_loss, loss, ratio) in enumerate(verdict.rows):
        shown = "missing" if loss is None else f"{loss:.6g}"
        lines.append(f"{epoch:>5} {step:>5}  {ref_loss:>{width}.6g}  {shown:>{width}}  "
                     f"{'' if ratio is None else f'{ratio:.3g}':>8}")
        if i + 1 == len(verdict.rows) or verdict.rows[i + 1][0] != epoch:
            _, ref_median, run_median, decades, ok = by_epoch[epoch]
            run_shown = "-" if run_median is None else f"{run_median:.6g}"
            ratio_shown = "-" if decades is None else f"{times(decades):.3g}"
            judged = {None: "(not judged)", True: "ok", False: "FAIL"}[ok]
            lines.append(f"{epoch:>5} {'median':>5}  {ref_median:>{width}.6g}  {run_shown:>{width}}  "
                         f"{ratio_shown:>8}  {judged}")
    return "\n".join(lines)


def first_difference(losses, other):
    """Where two same-seed runs' losses part: ``(first index that differs or None, largest relative difference)``
    over the steps both have. Bits are compared (NaN equals NaN); the relative difference is ``|a - b| / |b|``."""
    a = np.asarray(losses, dtype=np.float32)
    b = np.asarray(other, dtype=np.float32)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    differs = a.view(np.uint32) != b.view(np.uint32)
    if not differs.any():
        return None, 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(a[differs].astype(np.float64) - b[differs]) / np.abs(b[differs].astype(np.float64))
    relative = relative[~np.isnan(relative)]
    return int(np.argmax(differs)), float(relative.max()) if relative.size else math.inf


def identity_line(losses, other, num_batches):
    """``bit-identical (N losses)`` or ``first differs at epoch E step S; largest relative difference X``."""
    index, largest = first_difference(losses, other)
    n = min(len(losses), len(other))
    shorter = f" (compared the {n} steps both have: {len(losses)} and {len(other)})" if len(losses) != len(other) else ""
    if index is None:
        return f"bit-identical ({n} losses){shorter}"
    epoch, step = divmod(index, num_batches)
    return f"first differs at epoch {epoch} step {step}; largest relative difference {largest:.3g}{shorter}"


def same_seed_lines(run, other):
    """For two run records (``record.Run``) of the same seed and hyperparameters: their losses step by step, and
    their machines; [] for others."""
    import os

    from .machine import machine_line
    from .record import LOSSES, read_losses

    if run.seed != other.seed or run.config != other.config:
        return []
    losses, other_losses = (  # (a run that trains now, or died, has not recorded its steps)
        read_losses(os.path.join(r.path, LOSSES), None if r.status == "running" else r.steps_done)[2]
        for r in (run, other))
    differ = [key for key in ("engine", "rnn", "portable") if getattr(run, key) != getattr(other, key)
              and not (key == "rnn" and run.engine != other.engine)]  # (tf2 records no rnn)
    also = f" (they differ in {', '.join(differ)})" if differ else ""
    return [f"same seed ({run.seed}) and hyperparameters{also}: "
            f"{identity_line(losses, other_losses, run.config.num_batches)}",
            f"  this run:  {machine_line(run.machine)}",
            f"  reference: {machine_line(other.machine)}"]
