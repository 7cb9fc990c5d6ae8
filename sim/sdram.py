"""Weights in an SDR SDRAM: a timing model of the weight stream and its double-buffer schedule.

The engine computes a layer's output groups one after the other; a group's weight rows are one
tile (:mod:`sdtforge.hdl.weight_tiles`), stored back to back in the order the engine consumes
them, so the weights of an image are one sequential stream that crosses the SDRAM bus once.
:func:`read_run` prices one tile's run of bytes on the chip (:class:`SdramChip`, timings in ns
turned into cycles of the SDRAM clock by :meth:`SdramChip.timing`); :func:`schedule` overlaps
the loads with the compute of the cycle model's groups
(:func:`sdtforge.sim.cycles.predict_groups`) through a two-tile buffer and counts the cycles the
engine waits; :func:`weight_stream` does both for a model.

What the SDRAM controller is assumed to do (LiteDRAM's SDR path, ``docs/boards.md`` §5d; the
RTL's weight source over it, §5e, reads row by row and has no tile prefetch yet): burst
length 1 column reads, one a cycle to an open row (LiteDRAM's SDR burst length is 1 and its
``GENSDRPHY`` runs CAS latency 2), so a run streams a bus word a cycle with the CAS
latency paid once; a run starts with a precharge and an activate (its row may have been closed
by a refresh or another port); a row boundary costs a precharge and an activate (tRP + tRCD,
after tRAS), unless ``interleave``: the next row is in the next bank (row-bank-column address
mapping) and a controller that opens it ahead hides it. Refresh: tRP + tRFC + tRCD per
refresh, counted for the worst phase of the 7.8 µs refresh clock against the run.
"""

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["SdramChip", "SdramTiming", "RunCost", "AS4C32M16SB_7", "read_run",
           "peak_bandwidth", "sustained_bandwidth", "schedule", "weight_stream"]


def _frac(x):
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


@dataclass(frozen=True)
class SdramChip:
    """Geometry and datasheet timing of an SDR SDRAM (times in ns).

    The defaults are the ULX3S's Alliance Memory AS4C32M16SB in its -7 grade (143 MHz,
    AS4C32M16SB-7TCN): 4 banks × 8192 rows × 1024 columns of 16 bit (64 MB), datasheet Rev 1.0
    (June 2016), Table 16 "Electrical Characteristics and Recommended A.C. Operating
    Conditions": tRC 63, tRFC 63, tRCD 21, tRP 21, tRRD 14, tRAS 42, tWR 14 ns; tCK at least
    10 ns at CAS latency 2, 7 ns at 3; 8192 refreshes per 64 ms (tREFI 7.8 µs). ULX3S boards
    with 32 MB carry a 512-column chip (MT48LC16M16A2 or AS4C16M16SA): ``columns=512`` and its
    own timing.

    Parameters
    ----------
    name : str
    bus_bits : int
        Data bus width.
    banks, rows, columns : int
        Banks, rows per bank and columns (bus words) per row.
    t_rcd, t_rp, t_ras, t_rc, t_rfc, t_wr : float
        ACTIVATE to READ, PRECHARGE to ACTIVATE, ACTIVATE to PRECHARGE (min), ACTIVATE to
        ACTIVATE in a bank, REFRESH to any command, write recovery (ns).
    t_refi : float
        Average refresh interval (ns).
    t_ck_cl2, t_ck_cl3 : float
        The shortest clock period at CAS latency 2 and at 3 (ns); the clock is refused faster
        than ``1 / t_ck_cl3``.
    """

    name: str = "AS4C32M16SB-7"
    bus_bits: int = 16
    banks: int = 4
    rows: int = 8192
    columns: int = 1024
    t_rcd: float = 21
    t_rp: float = 21
    t_ras: float = 42
    t_rc: float = 63
    t_rfc: float = 63
    t_wr: float = 14
    t_refi: float = 7800
    t_ck_cl2: float = 10
    t_ck_cl3: float = 7

    @property
    def bus_bytes(self):
        """Bytes per bus word."""
        return self.bus_bits // 8

    @property
    def capacity(self):
        """Bytes of the chip."""
        return self.banks * self.rows * self.columns * self.bus_bytes

    def timing(self, clock_mhz):
        """The chip's timing in cycles of a ``clock_mhz`` clock (:class:`SdramTiming`).

        Each minimum time is rounded up to whole cycles, the refresh interval (a maximum) down;
        the CAS latency is 2 where the clock period allows it (what LiteDRAM's SDR PHY runs),
        else 3.

        Raises
        ------
        ValueError
            The clock is faster than the chip's grade.
        """
        f = _frac(clock_mhz)
        if f <= 0 or Fraction(1000) / f < _frac(self.t_ck_cl3):
            raise ValueError(f"{self.name} runs at most {1000 / self.t_ck_cl3:.1f} MHz, "
                             f"not {clock_mhz} MHz")
        period = Fraction(1000) / f

        def up(ns):
            return math.ceil(_frac(ns) * f / 1000)

        return SdramTiming(
            clock_mhz=float(clock_mhz), rcd=up(self.t_rcd), rp=up(self.t_rp),
            ras=up(self.t_ras), rfc=up(self.t_rfc), refi=math.floor(_frac(self.t_refi) * f / 1000),
            cl=2 if period >= _frac(self.t_ck_cl2) else 3)


#: The ULX3S-85F's SDRAM (the default chip).
AS4C32M16SB_7 = SdramChip()


@dataclass(frozen=True)
class SdramTiming:
    """A chip's timing in cycles of its clock (:meth:`SdramChip.timing`)."""

    clock_mhz: float
    rcd: int
    rp: int
    ras: int
    rfc: int
    refi: int
    cl: int

    @property
    def refresh_cost(self):
        """Cycles one refresh takes from a stream: precharge all, refresh, reopen the row."""
        return self.rp + self.rfc + self.rcd


@dataclass(frozen=True)
class RunCost:
    """The cycles of one sequential read run (:func:`read_run`), in SDRAM cycles.

    ``words`` bus words transferred (the run rounded out to whole bursts), ``rows`` rows
    opened, ``row_cycles`` the precharge / activate cycles (tRP + tRCD per row, and a wait for
    tRAS), ``cas`` the CAS latency, ``refreshes`` and ``refresh_cycles``; ``cycles`` is their
    total.
    """

    words: int
    rows: int
    row_cycles: int
    cas: int
    refreshes: int
    refresh_cycles: int

    @property
    def cycles(self):
        return self.words + self.row_cycles + self.cas + self.refresh_cycles


def _ceil(a, b):
    return -(-a // b)


def _burst_align(burst, columns):
    if burst == "page":
        return 1
    if burst not in (1, 2, 4, 8) or columns % burst:
        raise ValueError(f"burst must be 1, 2, 4, 8 or 'page', not {burst!r}")
    return burst


def read_run(address, nbytes, clock_mhz, chip=AS4C32M16SB_7, *, burst=1, interleave=False,
             refresh=True):
    """SDRAM cycles to read ``nbytes`` sequential bytes from byte ``address``.

    Parameters
    ----------
    address, nbytes : int
        The run's first byte and length.
    clock_mhz : float
        The SDRAM clock.
    chip : SdramChip
    burst : int or "page"
        Words per read command: 1 (LiteDRAM's SDR native port), 2, 4, 8 (the run is rounded
        out to aligned bursts) or ``"page"`` (a full-page burst, stopped at the run's end).
        Reads to an open row follow each other without a gap in every case.
    interleave : bool
        Row boundaries cost nothing: the next row (in the next bank) is opened while the
        current one streams. Without it each boundary costs tRP + tRCD (after tRAS).
    refresh : bool
        Count refreshes: ``ceil(b / (tREFI - c))`` of ``c`` cycles each for a run of ``b``
        cycles, the most a run can meet whatever the refresh clock's phase.

    Returns
    -------
    RunCost
    """
    if nbytes <= 0:
        return RunCost(0, 0, 0, 0, 0, 0)
    t = chip.timing(clock_mhz)
    align = _burst_align(burst, chip.columns)
    first = int(address) // chip.bus_bytes // align * align
    end = _ceil(_ceil(int(address) + int(nbytes), chip.bus_bytes), align) * align
    words = end - first
    crossings = (end - 1) // chip.columns - first // chip.columns
    # Precharge and activate the run's first row; at each boundary close it (after tRAS) and
    # open the next, unless the next bank's row was opened ahead.
    row_cycles = t.rp + t.rcd
    if crossings and not interleave:
        in_first = chip.columns - first % chip.columns
        row_cycles += max(0, t.ras - t.rcd - in_first) + crossings * (t.rp + t.rcd)
    busy = words + row_cycles + t.cl
    n = _ceil(busy, t.refi - t.refresh_cost) if refresh else 0
    return RunCost(words, 1 + crossings, row_cycles, t.cl, n, n * t.refresh_cost)


def peak_bandwidth(clock_mhz, chip=AS4C32M16SB_7):
    """Bytes per second of the bus moving a word every cycle."""
    return float(_frac(clock_mhz) * 1_000_000 * chip.bus_bytes)


def sustained_bandwidth(clock_mhz, chip=AS4C32M16SB_7, interleave=False):
    """Bytes per second of a long sequential read (:func:`read_run`'s model).

    A row's ``columns`` words take ``columns + tRP + tRCD`` cycles (``columns`` with
    ``interleave``), and refresh takes ``tRP + tRFC + tRCD`` of every ``tREFI``.
    """
    t = chip.timing(clock_mhz)
    rows = Fraction(chip.columns, chip.columns + (0 if interleave else t.rp + t.rcd))
    return float(Fraction(peak_bandwidth(clock_mhz, chip)) * rows
                 * (1 - Fraction(t.refresh_cost, t.refi)))


def schedule(segments, loads, *, rows=None, window=None, warm=False):
    """The weight stream's tiles against the engine's compute: its cycles with the waits.

    By default a double buffer; with ``window`` the tile prefetch's ring
    (:class:`~sdtforge.hdl.weight_prefetch.WeightPrefetch`), see below.

    Compute runs the segments in order. A weighted segment (group not ``None``) needs its tile:
    tile ``i`` loads once the bus is free (tile ``i - 1`` loaded) and a buffer half is free
    (tile ``i - 2``'s segment done), from cycle 0 for the first two; the segment starts when
    the previous segment is done and its tile is loaded. So tile 0 loads before the first
    group, tile ``i + 1`` while tile ``i`` computes, and a layer's first tile during the
    previous layer's last group (or its weightless descriptors).

    Parameters
    ----------
    segments : list of tuple
        ``(name, group, cycles)`` (:func:`sdtforge.sim.cycles.predict_groups`).
    loads : list of int
        Engine cycles to load each weighted segment's tile, in order.
    rows : list of int, optional
        With ``window``: each tile's rows.
    window : int, optional
        The prefetch's ring in rows. Tiles load in order while the bus is free and the ring
        has room: the prefetch keeps the rows from ``r − L + 1`` on (``L`` the largest tile,
        ``r`` the row asked for last), so tile ``i`` may load once the engine has asked for
        the first tile ``k`` with ``start_k − L + 1 + window ≥ end_i`` (from cycle 0 for the
        tiles with ``end_i ≤ window``); a segment asks when the segment before it is done.
        Where no earlier ask frees the whole of tile ``i``, its rows below
        ``max(start_{i−1} − L + 1, 0) + window`` load after tile ``i − 1``'s ask, the rest
        after its own.
    warm : bool
        With ``window``: the tiles with ``end_i ≤ window`` are in the ring before the image
        starts (the prefetch fills it during the previous image and the pixel upload), and
        their loads are not counted.

    Returns
    -------
    dict
        ``compute_cycles`` (Σ segments), ``load_cycles`` (Σ loads: the bus busy),
        ``stall_cycles`` (cycles compute waits for a tile), ``first_stall`` (the wait for tile
        0), ``total_cycles`` (compute + stalls) and ``waits`` (each tile's wait, in order).

    Raises
    ------
    ValueError
        ``loads`` is not one per weighted segment.
    """
    weighted = sum(1 for _, g, _ in segments if g is not None)
    if weighted != len(loads):
        raise ValueError(f"{len(loads)} tile loads for {weighted} weighted segments")
    if window is not None:
        if rows is None or len(rows) != len(loads):
            raise ValueError("a window needs each tile's rows")
        ends = list(itertools.accumulate(int(r) for r in rows))
        starts = [e - int(r) for e, r in zip(ends, rows, strict=True)]
        big_l = max(rows, default=1)
        if window < big_l:
            raise ValueError(f"a window of {window} rows cannot hold a tile of {big_l}")
    now = 0
    loaded, done, waits, asked = [], [], [], []   # per tile: load end, compute end, wait, ask
    for _, group, cycles in segments:
        if group is not None:
            i = len(loaded)
            asked.append(now)
            bus = loaded[-1] if loaded else 0
            if window is None:
                end = max(bus, done[i - 2] if i >= 2 else 0) + int(loads[i])
            elif ends[i] <= window:
                end = bus + int(loads[i])
                if warm:
                    loaded.append(0)
                    waits.append(0)
                    now += int(cycles)
                    done.append(now)
                    continue
            else:
                k = next((k for k in range(i + 1)
                          if starts[k] - big_l + 1 + window >= ends[i]), i)
                end = max(bus, asked[k]) + int(loads[i])
                if k == i and i:
                    # No earlier ask frees all of tile i: the rows below the limit the
                    # previous tile's ask sets load ahead, the rest once the engine works on
                    # this tile (its requests free the rows below them, docs/boards.md §5c).
                    limit = max(starts[i - 1] - big_l + 1, 0) + window
                    ahead = min(max(limit - starts[i], 0), int(rows[i]))
                    part = int(loads[i]) * ahead // int(rows[i])
                    end = max(max(bus, asked[i - 1]) + part, asked[i]) + int(loads[i]) - part
            loaded.append(end)
            waits.append(max(0, loaded[i] - now))
            now += waits[i]
        now += int(cycles)
        if group is not None:
            done.append(now)
    stall = sum(waits)
    if window is not None and warm:
        loads = [x for x, e in zip(loads, ends, strict=True) if e > window]
    return {"compute_cycles": now - stall, "load_cycles": int(sum(int(x) for x in loads)),
            "stall_cycles": stall, "first_stall": waits[0] if waits else 0,
            "total_cycles": now, "waits": waits}


def _engine_cycles(sdram_cycles, clock_mhz, sdram_mhz):
    """SDRAM cycles as whole engine cycles (rounded up)."""
    return math.ceil(Fraction(int(sdram_cycles)) * _frac(clock_mhz) / _frac(sdram_mhz))


def weight_stream(model, spikes, lanes, width, clock_mhz, *, sdram_mhz=None,
                  chip=AS4C32M16SB_7, image=0, config=None, interleave=False, window=None,
                  warm=False):
    """The cycle model with the weights in SDRAM, for one image.

    Parameters
    ----------
    model, spikes, lanes, width, image, config
        As for :func:`sdtforge.sim.cycles.predict`.
    clock_mhz : float
        The engine clock.
    sdram_mhz : float, optional
        The SDRAM clock (default: the engine's).
    chip : SdramChip
    interleave : bool
        As for :func:`read_run`.
    window, warm :
        As for :func:`schedule` (the tile prefetch's ring; ``window="rtl"``: the one
        :class:`~sdtforge.hdl.weight_prefetch.WeightPrefetch` gets,
        :func:`~sdtforge.hdl.weight_tiles.window_rows` of the largest tile).

    Returns
    -------
    dict
        ``weight_bytes`` (per image), ``tiles``, ``double_buffer``
        (:func:`~sdtforge.hdl.weight_tiles.double_buffer`), ``sdram_busy_cycles`` (SDRAM
        clock), :func:`schedule`'s counts (engine clock) with its ``waits`` summed per
        descriptor (``stalls_by_descriptor``, the descriptors that wait), ``latency_ms`` at
        ``clock_mhz``.

    Raises
    ------
    ValueError
        The tiles do not match the cycle model's weighted segments.
    """
    from sdtforge.hdl.weight_tiles import double_buffer, plan_model, window_rows

    from .cycles import predict_groups

    sdram_mhz = clock_mhz if sdram_mhz is None else sdram_mhz
    tiles = plan_model(model, lanes, width, chip.bus_bytes, config=config)
    segments = predict_groups(model, spikes, lanes, width, image, config=config)
    keys = [(name, g) for name, g, _ in segments if g is not None]
    if keys != [(t.name, t.group) for t in tiles]:
        raise ValueError("the tile plan and the cycle model's groups differ")
    runs = [read_run(t.address, t.nbytes, sdram_mhz, chip, interleave=interleave).cycles
            for t in tiles]
    if window == "rtl":
        window = window_rows(max(t.rows for t in tiles), config)
    out = schedule(segments, [_engine_cycles(c, clock_mhz, sdram_mhz) for c in runs],
                   rows=[t.rows for t in tiles], window=window, warm=warm)
    by_name = {}
    for t, wait in zip(tiles, out.pop("waits"), strict=True):
        if wait:
            by_name[t.name] = by_name.get(t.name, 0) + wait
    out["stalls_by_descriptor"] = by_name
    return {"weight_bytes": sum(t.nbytes for t in tiles), "tiles": len(tiles),
            "double_buffer": double_buffer(tiles), "sdram_busy_cycles": sum(runs), **out,
            "latency_ms": float(Fraction(out["total_cycles"]) / _frac(clock_mhz) / 1000)}
