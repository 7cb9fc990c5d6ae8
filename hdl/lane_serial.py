"""The lane-serial write-back's fold: biases, and the sums it keeps in the result emitter's memory
(the logits, the pixel layer's Horner sum, the head's token sum), a chunk per cycle; and its
chunk registers: a row's chunks shifted out (:func:`chunk_of`) and collected back
(:func:`collect`)."""

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.utils import ceil_log2

from .ram import loader_filled

__all__ = ["fold", "chunk_row", "row_ahead", "chunk_of", "collect"]


def fold(stage, m, x, k, more, cur, nxt, flags, is_logit, feed):
    """A lane-serial stage's chunk ``x`` (group ``cur["g"]``) with its bias ``b`` (the
    stage's bias memory) → the chunk's value ``y`` to the LIF or ``AlignAdd``; and the
    sums kept in the result emitter's memory (one-chunk rows), ``kept ← a + y``.

    - ``LOGIT``: ``y = x + b``, ``a`` the chunk's logits so far (row ``g·c + chunk``;
      0 at the first step).
    - ``PIXEL``'s planes: ``y = x`` (the plane's sums), ``a`` twice the Horner sum so far
      (0 at the first plane); ``HEAD_SUM``'s tokens: ``y = x + b`` (its bias rows are
      zeros), ``a`` the token sum so far (0 at the first token). Both in rows ``0 … c − 1``,
      and neither to the LIF.
    - ``again`` (their value, at every step): ``y = kept + b`` to the LIF.
    - Every other row: ``y = x + b``.

    Both memories are read a cycle ahead: the next chunk of the row while ``more`` chunks
    follow, else chunk 0 of the next row (group ``nxt["g"]``, latched at least a cycle
    before its start). A row is read again ``c >= 2`` cycles after its write at the
    earliest (the same chunk of the next row), so no read meets the write at its row. The
    sum of the kept value ends at its memory; the path to the LIF has a multiplexer more
    than ``x + b``.

    ``stage`` is the :class:`~.writeback.RowWriteBack` (its ``config``, ``layer`` and memory
    ports), ``x`` the chunk (``n`` lanes) worked on while ``feed``, ``k`` its index, ``cur`` /
    ``nxt`` the row's and the next row's coordinates, ``flags`` the row's ``first`` and
    ``again``.
    """
    cfg, lay, c = stage.config, stage.layer, stage.config.writeback_cycles
    pix, head, again = lay.pixel, lay.head, flags["again"]
    m.submodules.b_mem = b_mem = loader_filled(memory.Memory(
        shape=cfg.lane_layout("biases"), depth=cfg.biases_depth, init=[]))
    b_wr, b_rd = b_mem.write_port(), b_mem.read_port()
    wiring.connect(m, wiring.flipped(stage.bias_write), b_wr)
    m.d.comb += b_rd.addr.eq(row_ahead(k, more, lay.prow + cur["g"], lay.prow + nxt["g"], c))
    scratch = pix | head                    # rows 0 … c − 1
    lr = stage.logits_read
    m.d.comb += [lr.en.eq(is_logit | scratch),
                 lr.addr.eq(row_ahead(k, more, Mux(scratch, 0, cur["g"]),
                                       Mux(scratch, 0, nxt["g"]), c))]
    restart = Mux(lay.conv, cur["first"], flags["first"])
    with_bias = ~pix | again
    y = Signal(data.ArrayLayout(cfg.sums_layout().elem_shape, len(x)), name="biased")
    kept = Signal(data.ArrayLayout(signed(cfg.logit_elem_bits), len(x)), name="kept")
    for lane in range(len(x)):
        old = lr.data[lane]
        m.d.comb += [
            y[lane].eq(Mux(again, old, x[lane]) + Mux(with_bias, b_rd.data[lane], 0)),
            kept[lane].eq(Mux(restart, 0, Mux(pix, old << 1, old)) + y[lane]),
        ]
    with m.If(feed & (is_logit | (scratch & ~again))):
        m.d.comb += [stage.logits.addr.eq(chunk_row(k, Mux(scratch, 0, cur["g"]), c)),
                     stage.logits.data.eq(kept), stage.logits.en.eq(1)]
    return y


def chunk_row(chunk, group, chunks):
    """Row ``group · chunks + chunk`` of a memory of one-chunk rows (``chunks`` a power of
    two; ``chunk`` at least ``log2 chunks`` bits): the bias and logits memories of a
    lane-serial stage."""
    return Cat(chunk[:ceil_log2(chunks)], group)


def row_ahead(k, more, g, g_next, chunks):
    """The one-chunk row to read a cycle ahead of chunk ``k`` of group ``g``: its next chunk
    while ``more`` of the row follow, else chunk 0 of ``g_next``, the next row to start."""
    first = Const(0, ceil_log2(chunks))
    return Mux(more, chunk_row(k + 1, g, chunks), chunk_row(first, g_next, chunks))


def chunk_of(m, name, source, n, start, running):
    """Lanes ``0 … n − 1`` of this cycle's chunk of ``source`` (a P-lane row): the row's later
    chunks in a shift register (``rest_NAME``) loaded at ``start``, shifted down a chunk per
    cycle while ``running``; ``source`` itself where a chunk is the whole row."""
    layout = source.shape()
    p, elem = layout.length, Shape.cast(layout.elem_shape).width
    if n == p:
        return source
    rest = Signal(data.ArrayLayout(layout.elem_shape, p - n), name=f"rest_{name}")
    with m.If(start):
        m.d.sync += rest.eq(source.as_value()[n * elem:])
    with m.Elif(running):
        if p > 2 * n:
            m.d.sync += rest.as_value()[:(p - 2 * n) * elem].eq(rest.as_value()[n * elem:])
    part = Mux(running, rest.as_value()[:n * elem], source.as_value()[:n * elem])
    return data.ArrayLayout(layout.elem_shape, n)(part)


def collect(m, name, shift_in, value, chunks):
    """A row of ``chunks`` chunks whose last is ``value``: the earlier ones, collected while
    ``shift_in`` (lowest lanes first), below it."""
    if chunks == 1:
        return value
    coll = Signal(len(value) * (chunks - 1), name=f"coll_{name}")
    with m.If(shift_in):
        m.d.sync += coll.eq(Cat(coll[len(value):], value))
    return Cat(coll, value)
