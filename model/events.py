"""Event-camera input: event arrays ``(x, y, t, p)`` → frames ``[T, 2, H, W]`` of event counts.

An event model (``SDTConfig(encoding="events")``) takes, per sample, ``T`` frames that count the
events of each polarity at each pixel, as the reference code takes DVS128 Gesture and
CIFAR10-DVS (spikingjelly's ``data_type="frame", split_by="number"``). :func:`frame_events`
makes them from the raw events; :func:`read_events` reads an ``.npz`` file of event arrays.

The framing is written here rather than taken from spikingjelly or tonic so that the flow needs
neither (both pull in their own stacks); a user who has ``tonic`` can pass its structured event
arrays (fields ``x``, ``y``, ``t``, ``p``) to :func:`frame_events` directly.
"""

from pathlib import Path

import numpy as np

from sdtforge.errors import UserError

__all__ = ["SPLITS", "frame_events", "read_events"]

#: How :func:`frame_events` cuts the stream into ``T`` frames.
SPLITS = ("number", "time")
_FIELDS = ("x", "y", "t", "p")


def _fields(events):
    """``(x, y, t, p)`` int64 arrays from a dict-like or a structured array."""
    try:
        cols = [np.asarray(events[f]) for f in _FIELDS]
    except (KeyError, ValueError, IndexError, TypeError):
        raise UserError("events need the fields x, y, t and p (a dict of arrays, an .npz "
                        "file or a structured array such as tonic's)") from None
    n = cols[0].shape
    if any(c.ndim != 1 or c.shape != n for c in cols):
        raise UserError("events' x, y, t and p must be 1-D arrays of one length, not shapes "
                        + ", ".join(str(list(c.shape)) for c in cols))
    if any(not (np.issubdtype(c.dtype, np.integer) or c.dtype == bool) for c in cols):
        raise UserError("events' x, y, t and p must be integers, not "
                        + ", ".join(str(c.dtype) for c in cols))
    return [c.astype(np.int64) for c in cols]


def _bounds(t, frames, split_by):
    """Index ranges ``[lo, hi)`` of each frame in the time-sorted stream."""
    n = t.size
    if split_by == "number":
        # Equal event counts per frame; the last frame takes the remainder.
        lo = np.arange(frames) * (n // frames)
        hi = lo + n // frames
        hi[-1] = n
        return lo, hi
    # Equal time spans from the first event; the last frame runs to the end.
    span = (t[-1] - t[0]) // frames if n else 0
    edges = t[0] + span * np.arange(frames + 1) if n else np.zeros(frames + 1, np.int64)
    lo = np.searchsorted(t, edges[:-1], side="left")
    hi = np.searchsorted(t, edges[1:], side="left")
    hi[-1] = n
    return lo, hi


def frame_events(events, frames, size, *, split_by="number"):
    """Count events into ``frames`` frames of shape ``[2, H, W]`` (channel = polarity).

    Parameters
    ----------
    events : mapping or structured array
        Fields ``x`` (column), ``y`` (row), ``t`` (time stamps, any integer unit) and ``p``
        (polarity, 0/1 or -1/+1; -1 and 0 both count as channel 0).
    frames : int
        ``T``, the number of frames (the model's time steps).
    size : tuple of int
        ``(H, W)`` of the sensor; an event outside it is an error.
    split_by : str
        ``"number"``: each frame gets ``len // T`` events in time order, the last one the
        remainder (the reference's choice). ``"time"``: equal time spans from the first event.

    Returns
    -------
    numpy.ndarray
        int32 ``[T, 2, H, W]`` event counts.
    """
    if split_by not in SPLITS:
        raise UserError(f"unknown split {split_by!r}; use one of {', '.join(SPLITS)}")
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise UserError(f"frames must be a positive integer, not {frames!r}")
    h, w = (int(v) for v in size)
    x, y, t, p = _fields(events)
    if x.size and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h):
        raise UserError(f"events fall outside the {h}×{w} sensor (x {x.min()}..{x.max()}, "
                        f"y {y.min()}..{y.max()})")
    order = np.argsort(t, kind="stable")
    x, y, t, p = x[order], y[order], t[order], (p[order] > 0).astype(np.int64)
    out = np.zeros((frames, 2, h, w), np.int32)
    lo, hi = _bounds(t, frames, split_by)
    cells = 2 * h * w
    for i in range(frames):
        s = slice(lo[i], hi[i])
        idx = (p[s] * h + y[s]) * w + x[s]
        out[i] = np.bincount(idx, minlength=cells).reshape(2, h, w)
    return out


def read_events(path):
    """Read an ``.npz`` of event arrays (keys ``x``, ``y``, ``t``, ``p``) as a dict.

    Raises
    ------
    UserError
        Missing file, not an ``.npz`` archive, or a key missing.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"event file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _FIELDS if k not in z.files]
            if missing:
                raise UserError(f"event file {str(path)!r} lacks the arrays {missing} (it has "
                                f"{z.files}); expected x, y, t and p")
            events = {k: z[k] for k in _FIELDS}
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"event file {str(path)!r} is not an .npz archive of arrays "
                        f"({type(exc).__name__})") from None
    _fields(events)
    return events
