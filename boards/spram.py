"""Weight memory in iCE40 UltraPlus SPRAM, with a behavioural model for simulation.

The UP5K's four ``SB_SPRAM256KA`` blocks (16K × 16 bits each) are the only memory large enough
for a model's weights; Yosys does not infer them, so they are instantiated explicitly. ``n``
blocks side by side give ``16·n``-bit rows: 8 int8 weights per cycle with all four, the PE
array's ceiling on this device. Narrow rows can use the blocks in depth instead: banks of
16K rows, selected by the top address bits (1 or 2 lanes of int8 weights: up to 64K rows), or
hold the rows twice, each copy on a port of its own: two rows per cycle (8 lanes of 4-bit
weights, for two events per PE command).
SPRAM has no bitstream initialization — the host loads the weights through the accelerator's
load stream after configuration.
"""

from amaranth import Module, Mux, Signal
from amaranth.hdl import ClockSignal, Instance, Shape
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import Out

__all__ = ["SPRAMWeights", "SPRAM_ROWS", "SPRAM_BITS", "spram_blocks", "spram_banks"]

SPRAM_ROWS = 16384   #: rows of one SB_SPRAM256KA
SPRAM_BITS = 16      #: bits per row of one SB_SPRAM256KA


def spram_blocks(row_bits):
    """How many SPRAM blocks side by side hold a ``row_bits``-wide weight row."""
    return -(-int(row_bits) // SPRAM_BITS)


def spram_banks(rows):
    """How many banks of SPRAM blocks (16K rows each) hold ``rows`` weight rows."""
    return max(-(-int(rows) // SPRAM_ROWS), 1)


class SPRAMWeights(wiring.Component):
    """A weight memory of SPRAM blocks: ``n`` side by side per bank, banks of 16K rows.

    On hardware (``platform`` is not ``None``) the blocks are explicit instances; in the
    Amaranth simulator (``platform is None``) a ``lib.memory.Memory`` with the same timing
    stands in, so that the whole board top can be simulated.

    Parameters
    ----------
    shape : ShapeLike
        One weight row (e.g. ``ArrayLayout(signed(8), 8)``); at most 64 bits (four blocks).
    depth : int
        Rows used; the address width follows from it. Blocks per row times banks of 16384
        rows times ``events`` must be at most four.
    events : int
        Read ports, 1 or 2. An SPRAM block has a single port, so two reads per cycle (two
        events per PE command, ``AccelConfig.events``) read two copies of the rows: every
        write goes to both, ``read`` reads the first and ``read1`` the second (8 lanes of
        4-bit weights: two blocks a copy).

    Members
    -------
    read : ``Out(memory.ReadPort.Signature(...))``
        Synchronous read: ``data`` shows row ``addr`` the cycle after ``en``; it holds while
        ``en`` is low.
    read1 : ``Out(memory.ReadPort.Signature(...))``
        With ``events = 2``: the second read, the same contract on the second copy.
    write : ``Out(memory.WritePort.Signature(...))``
        Row writes (model loading). A write cycle leaves the reads' data undefined, which is
        harmless: the accelerator loads weights only while idle.
    """

    def __init__(self, shape, depth, *, events=1):
        width = Shape.cast(shape).width
        if not 1 <= width <= 4 * SPRAM_BITS:
            raise ValueError(f"SPRAM weight row must be 1 to {4 * SPRAM_BITS} bits wide, "
                             f"not {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"SPRAM depth must be a positive integer, not {depth!r}")
        if events not in (1, 2):
            raise ValueError(f"SPRAM read ports must be 1 or 2, not {events!r}")
        self._shape = shape
        self._width = width
        self._depth = depth
        self._events = events
        if self.blocks > 4:
            copies = f" in {events} copies" if events > 1 else ""
            raise ValueError(f"{depth} rows of {width} bits{copies} need {self.blocks} SPRAM "
                             f"blocks; the UP5K has 4")
        aw = max((depth - 1).bit_length(), 0)
        port = Out(memory.ReadPort.Signature(addr_width=aw, shape=shape))
        super().__init__({
            "read": port, **({"read1": port} if events == 2 else {}),
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=shape)),
        })

    @property
    def blocks(self):
        """SPRAM blocks used."""
        return spram_blocks(self._width) * spram_banks(self._depth) * self._events

    def _block(self, *, address, datain, wren, chipselect, dataout):
        """One ``SB_SPRAM256KA`` (the tests substitute a behavioural block here)."""
        return Instance(
            "SB_SPRAM256KA",
            i_ADDRESS=address, i_DATAIN=datain, i_MASKWREN=0b1111, i_WREN=wren,
            # A deselected block holds its output: that implements the read enable.
            i_CHIPSELECT=chipselect,
            i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
            o_DATAOUT=dataout,
        )

    def elaborate(self, platform):
        m = Module()
        reads = [self.read] + ([self.read1] if self._events == 2 else [])
        if platform is None:
            # The copies hold the same rows: one memory with a read port per copy.
            m.submodules.mem = mem = memory.Memory(shape=self._shape, depth=self._depth, init=[])
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.write.addr), wr.data.eq(self.write.data),
                         wr.en.eq(self.write.en)]
            for read in reads:
                rd = mem.read_port(transparent_for=())
                m.d.comb += [rd.addr.eq(read.addr), rd.en.eq(read.en), read.data.eq(rd.data)]
            return m

        wide, banks = spram_blocks(self._width), spram_banks(self._depth)
        # The copies' names (none with one).
        copies = [f"_{c}" if self._events == 2 else "" for c in range(self._events)]
        addrs = [Signal(max((self._depth - 1).bit_length(), 14), name=f"addr{copy}")
                 for copy in copies]
        wdata = Signal(SPRAM_BITS * wide)
        m.d.comb += [*(addr.eq(read.addr) for addr, read in zip(addrs, reads, strict=True)),
                     wdata.eq(self.write.data)]
        for read, addr, copy in zip(reads, addrs, copies, strict=True):
            # One address bus per copy: a write (model loading) wins over the read.
            with m.If(self.write.en):
                m.d.comb += addr.eq(self.write.addr)
            bank = addr[14:]
            # The bank of the last read selects the output; a deselected block holds its
            # output, so the data holds while the read enable is low.
            r_bank = Signal(range(banks), name=f"r_bank{copy}")
            with m.If(read.en & ~self.write.en):
                m.d.sync += r_bank.eq(bank)
            rdata = [Signal(SPRAM_BITS * wide, name=f"rdata{copy}{b}") for b in range(banks)]
            for b in range(banks):
                selected = (bank == b) if banks > 1 else 1
                for i in range(wide):
                    sl = slice(SPRAM_BITS * i, SPRAM_BITS * (i + 1))
                    m.submodules[f"spram{copy}{b * wide + i}"] = self._block(
                        address=addr[:14], datain=wdata[sl], wren=self.write.en,
                        chipselect=(read.en | self.write.en) & selected, dataout=rdata[b][sl])
            out = rdata[0]
            for b in range(1, banks):
                out = Mux(r_bank == b, rdata[b], out)
            m.d.comb += read.data.eq(out[:self._width])
        return m
