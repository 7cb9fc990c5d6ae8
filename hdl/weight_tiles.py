"""The weight tiles of a compiled program: what a weight stream from external memory fetches.

The compiler lays a layer's weight rows out group-major
(:meth:`~.layer_compilers.Builder.weight_rows`: rows ``g, tap, ci`` of ``P`` output channels,
``w_gstride`` rows per group), and the engine runs a layer's output groups one after the other
(group, then position, then step). One output group's rows are therefore a *tile*: everything the
engine reads while it computes that group, and nothing it reads again in the image.
:func:`tile_plan` lists the tiles of a program in the order the engine consumes them, with each
tile's bytes (rounded up to the external bus word) and its byte address when the tiles are stored
back to back in that order, so that every tile is one sequential run and every weight crosses the
bus once per image. :func:`double_buffer` sizes the on-chip buffer that holds the tile being
computed and the one being fetched.

:class:`~.weight_prefetch.WeightPrefetch` is the hardware that streams the tiles (a window of
the stream on chip, sized by :func:`prefetch_window`, or :func:`single_window` where block
RAM is short); ``sim/sdram.py`` prices the plan on an SDR
SDRAM and ``docs/boards.md`` §5c says what the model leaves out.
"""

from dataclasses import dataclass

from .accel_isa import Op

__all__ = ["Tile", "tile_plan", "plan_model", "double_buffer", "max_tile_rows", "prefetch_window",
           "single_window", "window_rows"]


@dataclass(frozen=True)
class Tile:
    """One output group's weight rows: a sequential run of the external memory.

    Parameters
    ----------
    name : str
        The descriptor's name (``Compiled.names``).
    group : int
        The output group within the descriptor.
    rows : int
        Weight rows (``w_gstride``: taps × input channels).
    row_bits : int
        Bits per row (``P`` × ``weight_bits``).
    nbytes : int
        The tile's bytes, ``rows × row_bits / 8`` rounded up to the bus word.
    address : int
        Its byte address in the external memory (tiles back to back in program order).
    """

    name: str
    group: int
    rows: int
    row_bits: int
    nbytes: int
    address: int


def _round_up(n, step):
    return -(-int(n) // step) * step


def tile_plan(compiled, bus_bytes=2, base=0):
    """The weight tiles of ``compiled`` in the order the engine consumes them.

    Parameters
    ----------
    compiled : Compiled
        A compiled (or planned) program: its descriptors' ``groups``, ``w_base`` and
        ``w_gstride`` and its configuration's weight row width.
    bus_bytes : int
        Bytes per word of the external memory's bus (2 for a 16-bit SDR SDRAM); every tile
        starts on a word.
    base : int
        Byte address of the first tile.

    Returns
    -------
    list of Tile
        One per (weighted descriptor, output group), in program order.

    Raises
    ------
    ValueError
        The program's weight rows are not laid out group-major in program order (a tile
        would not be the rows the compiler gave its group).
    """
    row_bits = compiled.config.row_bits("weights")
    tiles, address, next_row = [], int(base), 0
    for d, name in zip(compiled.program, compiled.names, strict=True):
        if d["op"] not in (Op.CONV, Op.PIXEL):
            continue
        stride = int(d["w_gstride"])
        if int(d["w_base"]) != next_row:
            raise ValueError(f"{name}: weight rows start at {d['w_base']}, not {next_row}")
        for g in range(int(d["groups"])):
            nbytes = _round_up(_round_up(stride * row_bits, 8) // 8, bus_bytes)
            tiles.append(Tile(name, g, stride, row_bits, nbytes, address))
            address += nbytes
        next_row += stride * int(d["groups"])
    return tiles


def plan_model(model, lanes, width, bus_bytes=2, base=0, *, config=None):
    """:func:`tile_plan` of ``model`` on ``config`` (by default its derived configuration at
    ``lanes`` and ``width``).

    Plans the program without packing any weight row (cheap for a paper-scale model).
    """
    from .compile import derive_config, plan_memories

    cfg = derive_config(model, lanes=lanes, width=width) if config is None else config
    return tile_plan(plan_memories(model, cfg, rows=False), bus_bytes, base)


def double_buffer(tiles):
    """The on-chip double buffer that holds the tile computed and the tile fetched: two
    halves of the largest tile's rows, rows as wide as a weight row (a board's block count:
    :func:`sdtforge.boards.targets.memory_blocks`).

    Returns
    -------
    dict
        ``rows`` (both halves), ``row_bits`` and ``bits``.
    """
    if not tiles:
        return {"rows": 0, "row_bits": 0, "bits": 0}
    rows = 2 * max(t.rows for t in tiles)
    row_bits = max(t.row_bits for t in tiles)
    return {"rows": rows, "row_bits": row_bits, "bits": rows * row_bits}


def max_tile_rows(compiled):
    """The largest tile of ``compiled`` in rows (at least 1): the ``tile_rows`` a
    :class:`~.weight_prefetch.WeightPrefetch` that runs it must be built for."""
    return max([t.rows for t in tile_plan(compiled)], default=1)


def prefetch_window(tile_rows):
    """The default window of :class:`~.weight_prefetch.WeightPrefetch` for tiles of up to
    ``tile_rows`` rows: the smallest power of two that holds two of them (the tile computed and
    the next one fetched)."""
    return 1 << (2 * max(int(tile_rows), 1) - 1).bit_length()


def single_window(tile_rows):
    """The smallest window that serves tiles of up to ``tile_rows`` rows at all: the smallest
    power of two that holds one. The next tile's fetch then overlaps the current one's compute
    only by the rows left over (``window − tile_rows``), and the engine waits for the rest of it
    at the tile's start (``sim/sdram.py`` prices the wait); a board short of block RAM takes it
    (``boards/targets.py``)."""
    return 1 << (max(int(tile_rows), 1) - 1).bit_length()


def window_rows(tile_rows, config=None):
    """The window of a tile prefetch for tiles of up to ``tile_rows`` rows: ``config``'s
    ``weight_window`` where it sets one, else the double buffer (:func:`prefetch_window`)."""
    return (config.weight_window if config is not None else 0) or prefetch_window(tile_rows)
