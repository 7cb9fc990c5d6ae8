"""Accumulate-only PE array: per input event, one weight-row read and P signed additions.

Every matrix product of the model has a binary spike operand, so ``acc = bias + Σ_{events} w``
needs adders only. The array holds P accumulators (P output channels computed together); the
controller sends one command per event and drains the P sums into the LIF unit.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .event_encoder import _check_positive

__all__ = ["PEArray", "PEOp"]


class PEOp(enum.Enum, shape=2):
    """PE array command codes."""
    #: ``acc[l] += weight[addr][l]``
    ACC = 0
    #: ``acc[l] = bias[addr][l]`` (start of an output group)
    BIAS = 1
    #: ``acc[l] = 0``
    CLEAR = 2
    #: emit ``acc`` on ``o`` (tagged with ``addr``); the accumulators keep their values
    DRAIN = 3


class PEArray(wiring.Component):
    """P lanes of signed accumulators fed by weight rows.

    A command is accepted every cycle (``i.ready`` is high unless a drained result waits on
    ``o``). Pipeline: the cycle a command is accepted, the weight/bias row at ``addr`` is
    read (synchronous read port); one cycle later the P additions (or the load / clear) land
    in the accumulators, and a ``DRAIN`` presents ``o.valid`` with all earlier commands applied.
    Drain latency is therefore 1 cycle; a command stream of ``n`` commands takes ``n`` cycles
    plus 1 when ``o`` is ready.

    Parameters
    ----------
    lanes : :class:`int`
        Number of lanes ``P``.
    acc_width : :class:`int`
        Accumulator width (the IR's derived width; overflow is impossible by construction).
    weight_width : :class:`int`
        Width of one signed weight.
    bias_width : :class:`int`
        Width of one signed bias (at most ``acc_width``).
    weight_depth : :class:`int`
        Number of weight rows.
    bias_depth : :class:`int`
        Number of bias rows.
    external_weights : :class:`bool`
        If true, the weight rows come from an external memory (e.g. SPRAM) through the
        ``w_read`` read-port interface, which must have one cycle of read latency and honour
        ``en`` (hold ``data`` while ``en`` is low); otherwise they sit in an internal
        ``lib.memory.Memory`` loaded through ``w_write``.

    Members
    -------
    i : ``In(stream.Signature(PEArray.CmdLayout))``
        Commands: ``op`` (:class:`PEOp`), ``addr`` (row address for ``ACC``/``BIAS``,
        passed through as ``o.payload.tag`` for ``DRAIN``).
    o : ``Out(stream.Signature(PEArray.OutLayout))``
        Drained sums: ``acc`` (``ArrayLayout(signed(acc_width), P)``), ``tag``.
    w_write : ``Out(memory.WritePort.Signature(...))``
        Internal weight memory write port (absent with ``external_weights``); data is
        ``ArrayLayout(signed(weight_width), P)``.
    w_read : ``In(memory.ReadPort.Signature(...))``
        External weight read port (only with ``external_weights``).
    b_write : ``Out(memory.WritePort.Signature(...))``
        Bias memory write port; data is ``ArrayLayout(signed(bias_width), P)``.
    """

    def __init__(self, lanes, acc_width, *, weight_width=8, bias_width=None, weight_depth=256,
                 bias_depth=16, external_weights=False):
        _check_positive("Lane count", lanes)
        _check_positive("Accumulator width", acc_width)
        _check_positive("Weight width", weight_width)
        if bias_width is None:
            bias_width = acc_width
        _check_positive("Bias width", bias_width)
        _check_positive("Weight depth", weight_depth)
        _check_positive("Bias depth", bias_depth)
        if weight_width > acc_width:
            raise ValueError(f"Weight width {weight_width!r} exceeds accumulator width "
                             f"{acc_width!r}")
        if bias_width > acc_width:
            raise ValueError(f"Bias width {bias_width!r} exceeds accumulator width {acc_width!r}")
        if not isinstance(external_weights, bool):
            raise TypeError(f"external_weights must be a bool, not {external_weights!r}")
        self._lanes = lanes
        self._acc_width = acc_width
        self._weight_depth = weight_depth
        self._bias_depth = bias_depth
        self._external = external_weights
        self.weight_shape = data.ArrayLayout(signed(weight_width), lanes)
        self.bias_shape = data.ArrayLayout(signed(bias_width), lanes)
        addr_width = max((max(weight_depth, bias_depth) - 1).bit_length(), 1)
        self._addr_width = addr_width
        self.cmd_layout = data.StructLayout({"op": PEOp, "addr": addr_width})
        self.out_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(acc_width), lanes),
            "tag": addr_width,
        })
        w_aw = max((weight_depth - 1).bit_length(), 0)
        b_aw = max((bias_depth - 1).bit_length(), 0)
        members = {
            "i": In(stream.Signature(self.cmd_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "b_write": Out(memory.WritePort.Signature(addr_width=b_aw, shape=self.bias_shape)),
        }
        if external_weights:
            members["w_read"] = In(memory.ReadPort.Signature(addr_width=w_aw,
                                                             shape=self.weight_shape))
        else:
            members["w_write"] = Out(memory.WritePort.Signature(addr_width=w_aw,
                                                                shape=self.weight_shape))
        super().__init__(members)

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        p = self._lanes

        m.submodules.b_mem = b_mem = memory.Memory(shape=self.bias_shape,
                                                   depth=self._bias_depth, init=[])
        b_wr = b_mem.write_port()
        b_rd = b_mem.read_port()
        wiring.connect(m, wiring.flipped(self.b_write), b_wr)
        if self._external:
            w_rd = self.w_read
        else:
            m.submodules.w_mem = w_mem = memory.Memory(shape=self.weight_shape,
                                                       depth=self._weight_depth, init=[])
            w_wr = w_mem.write_port()
            w_rd = w_mem.read_port()
            wiring.connect(m, wiring.flipped(self.w_write), w_wr)

        acc = [Signal(signed(self._acc_width), name=f"acc{lane}") for lane in range(p)]
        s_valid = Signal()
        s_op = Signal(PEOp)
        s_tag = Signal(self._addr_width)

        # The only back-pressure is a drained result not yet taken; everything else completes
        # in one cycle, so the pipeline advances as a whole.
        stall = s_valid & (s_op == PEOp.DRAIN) & ~self.o.ready
        advance = ~stall
        m.d.comb += [
            self.i.ready.eq(advance),
            w_rd.addr.eq(self.i.payload.addr),
            w_rd.en.eq(advance),
            b_rd.addr.eq(self.i.payload.addr),
            b_rd.en.eq(advance),
            self.o.valid.eq(s_valid & (s_op == PEOp.DRAIN)),
            self.o.payload.tag.eq(s_tag),
        ]
        for lane in range(p):
            m.d.comb += self.o.payload.acc[lane].eq(acc[lane])

        with m.If(advance):
            m.d.sync += [
                s_valid.eq(self.i.valid),
                s_op.eq(self.i.payload.op),
                s_tag.eq(self.i.payload.addr),
            ]
            with m.If(s_valid):
                # If/Elif rather than a Switch: a case statement without the DRAIN arm makes
                # Verilator stop on CASEINCOMPLETE in the generated Verilog.
                with m.If(s_op == PEOp.ACC):
                    m.d.sync += [acc[lane].eq(acc[lane] + w_rd.data[lane]) for lane in range(p)]
                with m.Elif(s_op == PEOp.BIAS):
                    m.d.sync += [acc[lane].eq(b_rd.data[lane]) for lane in range(p)]
                with m.Elif(s_op == PEOp.CLEAR):
                    m.d.sync += [acc[lane].eq(0) for lane in range(p)]
        return m
