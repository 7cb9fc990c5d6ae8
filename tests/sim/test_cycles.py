"""The cycle model's per-row pieces against naive enumerations (the whole model is checked
against the RTL in ``tests/accel/test_accelerator.py`` and by co-simulation)."""

import numpy as np
import pytest

from sdtforge.sim import cycles


def _naive_third(s, width, k3):
    """The encoder cycle of each row's third event, enumerating the row's words in fetch
    order (taps raster, words inner; out-of-bounds taps skipped)."""
    t_steps, c, h, w = s.shape
    words = -(-c // width)
    out = np.full((t_steps, h, w), -1)
    taps = [(dy, dx) for dy in range(3) for dx in range(3)] if k3 else [(1, 1)]
    for t in range(t_steps):
        for y in range(h):
            for x in range(w):
                seq = []
                for dy, dx in taps:
                    iy, ix = y + dy - 1, x + dx - 1
                    if not (0 <= iy < h and 0 <= ix < w):
                        continue
                    for k in range(words):
                        n = int(s[t, k * width:(k + 1) * width, iy, ix].sum())
                        seq += [True] * n if n else [False]
                seq[-1] = True            # the row's last word ends in an event (a marker)
                found = [i for i, e in enumerate(seq) if e]
                out[t, y, x] = found[2] if len(found) >= 3 else -1
    return out


@pytest.mark.parametrize("k3", [True, False])
@pytest.mark.parametrize("density", [0.02, 0.1, 0.5])
def test_third_event(k3, density):
    rng = np.random.default_rng(int(density * 100) + k3)
    s = (rng.random((2, 20, 4, 5)) < density).astype(np.uint8)
    np.testing.assert_array_equal(cycles._third_event(s, 8, k3), _naive_third(s, 8, k3))


def test_rows_equal_the_closed_form_without_holds():
    """A non-pooled conv with a one-cycle write-back never holds the PE array: the row-by-row
    recurrence gives the closed form (each row ``max(gather, 3)``)."""
    rng = np.random.default_rng(4)
    s = (rng.random((3, 24, 5, 4)) < 0.05).astype(np.uint8)
    rows = cycles._box(cycles._word_cost(s, 8), True)
    first = int(rows[0, 0, 0])
    closed = 7 + first - max(first, 3) + 2 * int(np.maximum(rows, 3).sum())
    assert cycles._rows(rows, cycles._third_event(s, 8, True), 2, 1, False) == closed
    assert cycles._conv_cycles(s, 2, True, 8) == closed
    # A lane-serial write-back of more cycles than most rows gather costs more.
    assert cycles._conv_cycles(s, 2, True, 8, writeback=16) > closed
