"""Accumulate-only PE array: per input event, one weight-row read and P signed additions.

Every matrix product of the model has a binary spike operand, so ``acc = bias + Σ_{events} w``
needs adders only. The array holds P accumulators (P output channels computed together); the
controller sends one command per event and drains the P sums into the LIF unit.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .params import check_positive
from .ram import loader_filled

__all__ = ["PEArray", "PEOp", "weight_request_shape", "weight_response_shape"]


def weight_request_shape(addr_width, events=1):
    """A weight-row request: the row address, or with ``events = 2`` ``addr``, ``addr1`` and
    ``two`` (the second row is wanted)."""
    if events == 1:
        return unsigned(addr_width)
    return data.StructLayout({"addr": addr_width, "addr1": addr_width, "two": 1})


def weight_response_shape(row_shape, events=1):
    """A weight-row response: the row, or with ``events = 2`` ``row`` and ``row1``."""
    if events == 1:
        return row_shape
    return data.StructLayout({"row": row_shape, "row1": row_shape})


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

# A command's ``last`` flag ends a row without a command of its own: an ``ACC`` flagged ``last``
# emits ``acc + weight[addr]`` and a ``DRAIN`` flagged ``last`` emits ``acc``, and either then
# loads the accumulators with ``bias[bias]``, the next row's start.


class PEArray(wiring.Component):
    """P lanes of signed accumulators fed by a stream of weight rows.

    Pipeline: the cycle a command is accepted, an ``ACC`` asks its weight source for row
    ``addr`` on ``w_req`` and a ``BIAS`` reads the bias row (synchronous read port); the
    command then waits in a second stage until its row is on ``w_rsp`` (``ACC`` only), and the
    P additions (or the load / clear) land in the accumulators. A ``DRAIN`` presents
    ``o.valid`` with all earlier commands applied and holds the stage until ``o`` takes it.

    Rows back to back: an ``ACC`` or ``DRAIN`` with ``last`` set emits the row's sums in the
    cycle its second stage completes and reloads the accumulators with bias row ``bias`` (the
    next row's), so the next row's first event may follow in the next cycle: a row costs its
    events and nothing else.

    With ``events = 2`` a command carries up to two events (``addr1``, ``two``): its request
    asks for both rows and the lanes add both (the ECP5's block RAMs read two rows per cycle).

    With ``weight_latency = 2`` the second stage (``s``) only waits for the row and hands the
    command and its row (with two events, the two rows' sum) to a third stage (``x``) through
    registers; stage ``x`` adds, loads and emits as stage ``s`` does otherwise, and the bias
    row is read as the command enters it. Stage ``s`` takes a command whenever it is empty,
    so while stage ``x`` waits on ``o`` the array holds one command more.

    Cycle contract: with a source that answers each request in the next cycle
    (:class:`~sdtforge.hdl.weights.WeightMemory`) and a ready ``o``, a command is accepted
    every cycle and a stream of ``n`` commands takes ``n`` cycles plus the drain latency,
    ``weight_latency`` (1 or 2). Each cycle a row is late, or a drained result is not taken,
    delays the array by a cycle.

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
        Number of weight rows (sets the width of ``w_req``).
    bias_depth : :class:`int`
        Number of bias rows.
    bias : :class:`bool`
        The array has a bias memory (``BIAS``, and ``last`` loads bias row ``bias``). Without
        it (``AccelConfig.writeback_bias``: the write-back adds the biases) ``BIAS`` clears
        as ``CLEAR`` does, a row's ``last`` command clears the accumulators, and there is no
        ``b_write`` port and no ``bias`` command field: each accumulator is then loaded only
        from its adder or cleared.
    events : :class:`int`
        Events per command, 1 or 2 (``AccelConfig.events``).
    weight_latency : :class:`int`
        1, or 2: each row in a register before the adders (``AccelConfig.weight_latency``).

    Members
    -------
    i : ``In(stream.Signature(PEArray.CmdLayout))``
        Commands: ``op`` (:class:`PEOp`), ``addr`` (row address for ``ACC``/``BIAS``,
        passed through as ``o.payload.tag``), ``last`` (end of a row, for ``ACC`` and
        ``DRAIN``) and ``bias`` (with ``last``: the bias row loaded after it; only with a
        bias memory).
    o : ``Out(stream.Signature(PEArray.OutLayout))``
        Drained sums: ``acc`` (``ArrayLayout(signed(acc_width), P)``), ``tag``.
    w_req : ``Out(stream.Signature(weight_request_shape(...)))``
        Weight-row requests, one per ``ACC``, in command order.
    w_rsp : ``In(stream.Signature(weight_response_shape(...)))``
        The requested rows, in request order (with ``events = 2`` both rows; the second is
        added where the request's ``two`` was set).
    b_write : ``Out(memory.WritePort.Signature(...))``
        Bias memory write port; data is ``ArrayLayout(signed(bias_width), P)``.
    value : ``Out(ArrayLayout(signed(acc_width), P))``
        The accumulators (registers). While a ``DRAIN`` is offered on ``o`` they hold what it
        offers, so a consumer can take a drained row from registers rather than from the
        adders (the pixel layer's Horner sum, ``LaneValue``).
    row_end : ``Out(1)``
        A command flagged ``last`` moves into the stage that adds and emits this cycle (with
        ``weight_latency = 1``: is accepted); its sums are offered on ``o`` in the next cycle.
    """

    def __init__(self, lanes, acc_width, *, weight_width=8, bias_width=None, weight_depth=256,
                 bias_depth=16, bias=True, events=1, weight_latency=1):
        check_positive("Lane count", lanes)
        check_positive("Accumulator width", acc_width)
        check_positive("Weight width", weight_width)
        if bias_width is None:
            bias_width = acc_width
        check_positive("Bias width", bias_width)
        check_positive("Weight depth", weight_depth)
        check_positive("Bias depth", bias_depth)
        if weight_width > acc_width:
            raise ValueError(f"Weight width {weight_width!r} exceeds accumulator width "
                             f"{acc_width!r}")
        if bias_width > acc_width:
            raise ValueError(f"Bias width {bias_width!r} exceeds accumulator width {acc_width!r}")
        if events not in (1, 2):
            raise ValueError(f"Events per command must be 1 or 2, not {events!r}")
        if weight_latency not in (1, 2):
            raise ValueError(f"Weight latency must be 1 or 2, not {weight_latency!r}")
        self._events = events
        self._weight_latency = weight_latency
        self._lanes = lanes
        self._acc_width = acc_width
        self._bias_depth = bias_depth
        self._has_bias = bias
        self.weight_shape = data.ArrayLayout(signed(weight_width), lanes)
        self.bias_shape = data.ArrayLayout(signed(bias_width), lanes)
        addr_width = max((max(weight_depth, bias_depth) - 1).bit_length(), 1)
        self._addr_width = addr_width
        self._bias_width = max(ceil_log2(bias_depth), 1)
        self.cmd_layout = data.StructLayout({"op": PEOp, "addr": addr_width, "last": 1,
                                             **({"bias": self._bias_width} if bias else {}),
                                             **({"addr1": addr_width, "two": 1}
                                                if events == 2 else {})})
        self.out_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(acc_width), lanes),
            "tag": addr_width,
        })
        w_aw, b_aw = ceil_log2(weight_depth), ceil_log2(bias_depth)   # the memories' ports
        super().__init__({
            "i": In(stream.Signature(self.cmd_layout)),
            "o": Out(stream.Signature(self.out_layout)),
            "w_req": Out(stream.Signature(weight_request_shape(w_aw, events))),
            "w_rsp": In(stream.Signature(weight_response_shape(self.weight_shape, events))),
            **({"b_write": Out(memory.WritePort.Signature(addr_width=b_aw,
                                                          shape=self.bias_shape))}
               if bias else {}),
            "value": Out(self.out_layout["acc"].shape),
            "row_end": Out(1),
        })

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        p = self._lanes
        late = self._weight_latency == 2

        if self._has_bias:
            m.submodules.b_mem = b_mem = loader_filled(memory.Memory(shape=self.bias_shape,
                                                                     depth=self._bias_depth,
                                                                     init=[]))
            b_wr = b_mem.write_port()
            b_rd = b_mem.read_port()
            wiring.connect(m, wiring.flipped(self.b_write), b_wr)
            bias_row = b_rd.data
        else:
            bias_row = [0] * p

        acc = [Signal(signed(self._acc_width), name=f"acc{lane}") for lane in range(p)]
        # Stage s: the command the cycle after it is accepted, its row due on w_rsp.
        s_valid = Signal()
        s_op = Signal(PEOp)
        s_tag = Signal(self._addr_width)
        s_last = Signal()
        s_two = Signal()
        s_bias = Signal(self._bias_width) if late and self._has_bias else None
        s_acc = s_valid & (s_op == PEOp.ACC)
        s_has_row = ~(s_acc & ~self.w_rsp.valid)       # stage s is not waiting for its row
        # The row the lanes add: w_rsp's (the second row added where the request asked for it).
        w = self.weight_shape.elem_shape.width
        if self._events == 1:
            rows = [self.w_rsp.payload[lane] for lane in range(p)]
        else:
            rows = [self.w_rsp.payload.row[lane] + Mux(s_two, self.w_rsp.payload.row1[lane], 0)
                    for lane in range(p)]
        if late:
            # Stage x: the command with its row in a register (weight_latency = 2), so the
            # weight memory's read and the accumulators' adders are a clock cycle apart.
            x_valid = Signal()
            x_op = Signal(PEOp)
            x_tag = Signal(self._addr_width)
            x_last = Signal()
            x_rows = [Signal(signed(w + self._events - 1), name=f"row{lane}")
                      for lane in range(p)]
            row_ok = Const(1)
        else:
            x_valid, x_op, x_tag, x_last, x_rows = s_valid, s_op, s_tag, s_last, rows
            row_ok = self.w_rsp.valid
        # The adding stage completes this cycle unless its row is late or its sums wait on o.
        x_acc = x_valid & (x_op == PEOp.ACC)
        x_drain = x_valid & (x_op == PEOp.DRAIN)
        emit = Mux(x_acc, row_ok & x_last, x_drain)
        x_advance = ~((x_acc & ~row_ok) | (emit & ~self.o.ready))
        # Stage s takes the next command when it moves on (into stage x with its row) or is
        # empty; with one cycle of weight latency stage s is the adding stage, and moves on when
        # it completes.
        if late:
            advance = (x_advance | ~s_valid) & s_has_row
        else:
            advance = x_advance
        # acc + w: the ACC update and the sums a row-ending ACC emits (one adder per lane).
        total = [Signal(signed(self._acc_width), name=f"sum{lane}") for lane in range(p)]
        m.d.comb += [total[lane].eq(acc[lane] + Mux(x_acc, x_rows[lane], 0))
                     for lane in range(p)]
        # An ACC's request leaves as soon as the command is offered, held until the source
        # takes it (``sent``), so a request never waits on this array's own stall.
        is_acc = self.i.payload.op == PEOp.ACC
        sent = Signal()
        requested = ~is_acc | sent | self.w_req.ready
        if late:
            # Stage s's row moves into stage x's register with its command.
            rsp_ready = s_acc & x_advance
        else:
            # A row-ending ACC keeps its weight row until its sums are taken.
            rsp_ready = s_acc & ~(s_last & ~self.o.ready)
        if not self._has_bias:
            bias_read = []
        elif late:
            # The bias row is read as the command moves into stage x (its data held there).
            bias_read = [b_rd.addr.eq(Mux(s_last, s_bias, s_tag)), b_rd.en.eq(x_advance)]
        else:
            bias_read = [b_rd.addr.eq(Mux(self.i.payload.last, self.i.payload.bias,
                                          self.i.payload.addr)), b_rd.en.eq(advance)]
        m.d.comb += [
            self.w_req.valid.eq(self.i.valid & is_acc & ~sent),
            *([self.w_req.payload.eq(self.i.payload.addr)] if self._events == 1 else
              [self.w_req.payload.addr.eq(self.i.payload.addr),
               self.w_req.payload.addr1.eq(self.i.payload.addr1),
               self.w_req.payload.two.eq(self.i.payload.two)]),
            self.w_rsp.ready.eq(rsp_ready),
            self.i.ready.eq(advance & requested),
            *bias_read,
            self.o.valid.eq(emit),
            self.o.payload.tag.eq(x_tag),
        ]
        if late:
            m.d.comb += self.row_end.eq(s_valid & s_last & x_advance & s_has_row)
        else:
            m.d.comb += self.row_end.eq(self.i.valid & self.i.ready & self.i.payload.last)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += sent.eq(0)
        with m.Elif(self.w_req.valid & self.w_req.ready):
            m.d.sync += sent.eq(1)
        for lane in range(p):
            m.d.comb += [self.o.payload.acc[lane].eq(total[lane]),
                         self.value[lane].eq(acc[lane])]

        with m.If(advance):
            m.d.sync += [
                s_valid.eq(self.i.valid & requested),
                s_op.eq(self.i.payload.op),
                s_tag.eq(self.i.payload.addr),
                s_last.eq(self.i.payload.last),
                *([s_two.eq(self.i.payload.two)] if self._events == 2 else []),
                *([s_bias.eq(self.i.payload.bias)] if s_bias is not None else []),
            ]
        if late:
            with m.If(x_advance):
                # A command whose row is late leaves a bubble in stage x.
                m.d.sync += [
                    x_valid.eq(s_valid & s_has_row),
                    x_op.eq(s_op),
                    x_tag.eq(s_tag),
                    x_last.eq(s_last),
                    *[x_rows[lane].eq(rows[lane]) for lane in range(p)],
                ]
        with m.If(x_advance & x_valid):
            # If/Elif rather than a Switch: a case statement without the DRAIN arm makes
            # Verilator stop on CASEINCOMPLETE in the generated Verilog.
            with m.If(x_last & ((x_op == PEOp.ACC) | (x_op == PEOp.DRAIN))):
                m.d.sync += [acc[lane].eq(bias_row[lane]) for lane in range(p)]
            with m.Elif(x_op == PEOp.ACC):
                m.d.sync += [acc[lane].eq(total[lane]) for lane in range(p)]
            with m.Elif(x_op == PEOp.BIAS):
                m.d.sync += [acc[lane].eq(bias_row[lane]) for lane in range(p)]
            with m.Elif(x_op == PEOp.CLEAR):
                m.d.sync += [acc[lane].eq(0) for lane in range(p)]
        return m
