"""Weight memory in iCE40 UltraPlus SPRAM, with a behavioural model for simulation.

The UP5K's four ``SB_SPRAM256KA`` blocks (16K × 16 bits each) are the only memory large enough
for a model's weights; Yosys does not infer them, so they are instantiated explicitly. ``n``
blocks side by side give ``16·n``-bit rows: 8 int8 weights per cycle with all four, the PE
array's ceiling on this device. Narrow rows can use the blocks in depth instead: banks of
16K rows, selected by the top address bits (1 or 2 lanes of int8 weights: up to 64K rows).
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
        rows must be at most four.

    Members
    -------
    read : ``Out(memory.ReadPort.Signature(...))``
        Synchronous read: ``data`` shows row ``addr`` the cycle after ``en``; it holds while
        ``en`` is low.
    write : ``Out(memory.WritePort.Signature(...))``
        Row writes (model loading). A write cycle leaves ``read.data`` undefined, which is
        harmless: the accelerator loads weights only while idle.
    """

    def __init__(self, shape, depth):
        width = Shape.cast(shape).width
        if not 1 <= width <= 4 * SPRAM_BITS:
            raise ValueError(f"SPRAM weight row must be 1 to {4 * SPRAM_BITS} bits wide, "
                             f"not {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"SPRAM depth must be a positive integer, not {depth!r}")
        if spram_blocks(width) * spram_banks(depth) > 4:
            raise ValueError(f"{depth} rows of {width} bits need "
                             f"{spram_blocks(width) * spram_banks(depth)} SPRAM blocks; "
                             f"the UP5K has 4")
        self._shape = shape
        self._width = width
        self._depth = depth
        aw = max((depth - 1).bit_length(), 0)
        super().__init__({
            "read": Out(memory.ReadPort.Signature(addr_width=aw, shape=shape)),
            "write": Out(memory.WritePort.Signature(addr_width=aw, shape=shape)),
        })

    @property
    def blocks(self):
        """SPRAM blocks used."""
        return spram_blocks(self._width) * spram_banks(self._depth)

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
        if platform is None:
            m.submodules.mem = mem = memory.Memory(shape=self._shape, depth=self._depth, init=[])
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=())
            m.d.comb += [
                wr.addr.eq(self.write.addr), wr.data.eq(self.write.data),
                wr.en.eq(self.write.en),
                rd.addr.eq(self.read.addr), rd.en.eq(self.read.en),
                self.read.data.eq(rd.data),
            ]
            return m

        wide, banks = spram_blocks(self._width), spram_banks(self._depth)
        addr = Signal(max((self._depth - 1).bit_length(), 14))
        wdata = Signal(SPRAM_BITS * wide)
        # One address bus: a write (model loading) wins over a read.
        m.d.comb += [addr.eq(self.read.addr), wdata.eq(self.write.data)]
        with m.If(self.write.en):
            m.d.comb += addr.eq(self.write.addr)
        bank = addr[14:]
        # The bank of the last read selects the output; a deselected block holds its output,
        # so the data holds while the read enable is low.
        r_bank = Signal(range(banks))
        with m.If(self.read.en & ~self.write.en):
            m.d.sync += r_bank.eq(bank)
        rdata = [Signal(SPRAM_BITS * wide, name=f"rdata{b}") for b in range(banks)]
        for b in range(banks):
            selected = (bank == b) if banks > 1 else 1
            for i in range(wide):
                sl = slice(SPRAM_BITS * i, SPRAM_BITS * (i + 1))
                m.submodules[f"spram{b * wide + i}"] = self._block(
                    address=addr[:14], datain=wdata[sl], wren=self.write.en,
                    chipselect=(self.read.en | self.write.en) & selected, dataout=rdata[b][sl])
        out = rdata[0]
        for b in range(1, banks):
            out = Mux(r_bank == b, rdata[b], out)
        m.d.comb += self.read.data.eq(out[:self._width])
        return m

