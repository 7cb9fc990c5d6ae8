"""A weight source over a DRAM controller's word port (LiteDRAM's native port).

Row ``r`` of ``n = ceil(row bits / word bits)`` words lives at word address
``base + r · 2^k`` (``2^k ≥ n``, so the address is a shift, no multiplier), lowest word first.
A row request is answered by ``n`` reads; the words come back in order after any latency and
are assembled into the row. The loader's row writes become ``n`` word writes.

Alone it is the plain path: every event's row is read from DRAM (a row miss costs tens of
cycles), so the engine waits for most rows. Behind :class:`~.weight_prefetch.WeightPrefetch`
(:func:`connect_dram_weights` with ``prefetch``) it streams the rows in order instead, each
once per image (``docs/boards.md`` §5c).

The word port (:func:`word_port_signature`) is LiteDRAM's native port as its core implements
it: a command stream ``cmd`` (``we``, ``addr``); write data ``wdata`` taken in the cycle its
``ready`` pulses (one pulse per write command, in order; the core ignores ``wdata.valid``);
read data ``rdata`` (one ``valid`` pulse per read command, in order) with **no back-pressure**
(the core ignores ``rdata.ready``). So the source only issues a read while its word queue has
room for every read in flight (a credit counter).
"""

from amaranth.hdl import Cat, Module, Shape, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_positive
from .weights import weight_source_signature

__all__ = ["DRAMWeights", "connect_dram_weights", "word_port_signature"]


def word_port_signature(word_bits, addr_bits):
    """The user side of a DRAM controller's word port (LiteDRAM native port semantics)."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(data.StructLayout({"we": 1, "addr": addr_bits}))),
        "wdata": Out(stream.Signature(data.StructLayout({"data": word_bits,
                                                         "we": word_bits // 8}))),
        "rdata": In(stream.Signature(word_bits)),
    })


class DRAMWeights(wiring.Component):
    """Weight rows in DRAM, served as a weight source (:mod:`~sdtforge.hdl.weights`).

    **Cycle contract.** A request is taken (``req.ready``) when its last word's read command is
    taken; reads issue one per cycle while the controller takes them and the word queue has a
    credit. A row goes out on ``rsp`` once its ``n`` words are in; rows leave in request order.
    A row write (``write.en``, one cycle) is taken only while ``write_busy`` is low; it issues
    ``n`` write commands, and ``write_busy`` stays high until the controller has taken the
    last word. Writes may come between reads (a prefetch goes on reading while the loader
    writes): a pending write's commands go first, a request whose words are partly issued
    finishes after them, and rows still come back in request order.

    Parameters
    ----------
    shape : ShapeLike
        One weight row.
    depth : int
        Rows.
    word_bits, addr_bits : int
        The word port's data and (word) address widths.
    base : int
        Word address of row 0.
    queue : int
        Words the read queue holds (reads in flight at most).

    Members
    -------
    req, rsp :
        As :class:`~.weights.ReadPortWeights` (any latency).
    write : ``Out(memory.WritePort.Signature(...))``
        Row writes (as :class:`~.weights.WeightMemory`'s).
    write_busy : ``Out(1)``
        A row write is being written (the next must wait).
    port : ``Out(word_port_signature(word_bits, addr_bits))``
        The DRAM controller's word port.
    """

    def __init__(self, shape, depth, *, word_bits=16, addr_bits=24, base=0, queue=16):
        check_positive("Weight depth", depth)
        check_positive("Queue depth", queue)
        if word_bits % 8 or word_bits <= 0:
            raise ValueError(f"Word width must be a positive multiple of 8, not {word_bits!r}")
        self._row_bits = Shape.cast(shape).width
        self._words = -(-self._row_bits // word_bits)
        self._stride = 1 << ceil_log2(self._words)
        if base < 0 or base + depth * self._stride > 1 << addr_bits:
            raise ValueError(f"{depth} rows of {self._stride} words from word {base} do not "
                             f"fit a {addr_bits}-bit word address")
        self._word_bits, self._base, self._queue = word_bits, base, queue
        aw = ceil_log2(depth)
        super().__init__({
            **weight_source_signature(shape, aw).members,
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=shape)),
            "write_busy": Out(1),
            "port": Out(word_port_signature(word_bits, addr_bits)),
        })

    @property
    def words_per_row(self):
        """Words of one row, and the row stride in words (a power of two)."""
        return self._words, self._stride

    def elaborate(self, platform):
        m = Module()
        n, wbits, port = self._words, self._word_bits, self.port
        k = ceil_log2(self._stride)
        padded = n * wbits

        def word_addr(row, word):
            return self._base + (Cat(word[:k], row) if k else row)

        # -- reads: n commands per request, credits for the word queue ------------------------
        m.submodules.q = q = fifo.SyncFIFO(width=wbits, depth=self._queue)
        credits = Signal(range(self._queue + 1), init=self._queue)
        issued = Signal(range(max(n, 2)))          # words of the current request issued
        read_cmd = Signal()
        m.d.comb += [q.w_en.eq(port.rdata.valid), q.w_data.eq(port.rdata.payload),
                     port.rdata.ready.eq(1)]

        # -- writes: the row latched, n commands, the words as the controller asks -------------
        w_row = Signal(padded)
        w_addr = Signal.like(self.write.addr)
        w_cmds = Signal(range(n + 1))              # write commands still to issue
        w_words = Signal(range(n + 1))             # words still to hand over
        m.d.comb += [self.write_busy.eq(w_words != 0),
                     port.wdata.valid.eq(w_words != 0),
                     port.wdata.payload.data.eq(w_row[:wbits]),
                     port.wdata.payload.we.eq(-1)]
        with m.If(self.write.en & ~self.write_busy):
            m.d.sync += [w_row.eq(self.write.data), w_addr.eq(self.write.addr),
                         w_cmds.eq(n), w_words.eq(n)]
        with m.If(port.wdata.ready & (w_words != 0)):
            m.d.sync += [w_row.eq(w_row >> wbits), w_words.eq(w_words - 1)]

        with m.If(w_cmds != 0):
            m.d.comb += [port.cmd.valid.eq(1), port.cmd.payload.we.eq(1),
                         port.cmd.payload.addr.eq(word_addr(w_addr, n - w_cmds))]
            with m.If(port.cmd.ready):
                m.d.sync += w_cmds.eq(w_cmds - 1)
        with m.Elif(self.req.valid & (credits != 0)):
            m.d.comb += [port.cmd.valid.eq(1), port.cmd.payload.we.eq(0),
                         port.cmd.payload.addr.eq(word_addr(self.req.payload, issued)),
                         read_cmd.eq(port.cmd.ready)]
            with m.If(port.cmd.ready):
                m.d.sync += issued.eq(issued + 1)
                with m.If(issued == n - 1):
                    m.d.sync += issued.eq(0)
                    m.d.comb += self.req.ready.eq(1)

        # -- row assembly: n words from the queue, lowest first -------------------------------
        row = Signal(padded)
        got = Signal(range(n + 1))
        full = got == n
        pop = q.r_rdy & ~full
        m.d.comb += [q.r_en.eq(pop), self.rsp.valid.eq(full),
                     self.rsp.payload.eq(row[:self._row_bits])]
        with m.If(pop):
            m.d.sync += [row.eq(Cat(row[wbits:], q.r_data)), got.eq(got + 1)]
        with m.If(self.rsp.valid & self.rsp.ready):
            m.d.sync += got.eq(0)
        m.d.sync += credits.eq(credits - read_cmd + pop)
        return m


def connect_dram_weights(m, accel, weights, prefetch=None):
    """Wire an :class:`~sdtforge.hdl.accelerator.Accelerator` with ``external_weights`` to
    ``weights`` (a :class:`DRAMWeights`) in module ``m``: the weight stream, the loader's row
    writes and ``w_write_busy``, which holds the loader while a row is written. With
    ``prefetch`` (a :class:`~.weight_prefetch.WeightPrefetch`) the engine's requests go to it,
    and it streams the rows from ``weights`` through a register slice (a two-entry FIFO,
    ``m.submodules.w_slice``): the DRAM controller's command ``ready`` ends there, and the
    prefetch's row requests start from registers (the ``ready`` chain from LiteDRAM's bank
    machines into the prefetch's window count was the ECP5 critical path). The prefetch's
    requests in flight count the slice's."""
    if prefetch is None:
        wiring.connect(m, accel.w_req, weights.req)
        wiring.connect(m, weights.rsp, accel.w_rsp)
    else:
        wiring.connect(m, accel.w_req, prefetch.req)
        wiring.connect(m, prefetch.rsp, accel.w_rsp)
        m.submodules.w_slice = slice_ = fifo.SyncFIFO(width=len(weights.req.payload), depth=2)
        wiring.connect(m, prefetch.src.req, slice_.w_stream)
        wiring.connect(m, slice_.r_stream, weights.req)
        wiring.connect(m, weights.rsp, prefetch.src.rsp)
        m.d.comb += [prefetch.written.en.eq(accel.w_write.en),
                     prefetch.written.addr.eq(accel.w_write.addr),
                     prefetch.busy.eq(accel.busy)]
    wiring.connect(m, accel.w_write, weights.write)
    m.d.comb += accel.w_write_busy.eq(weights.write_busy)
