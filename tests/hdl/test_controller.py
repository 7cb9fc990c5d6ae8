"""The layer controller (``hdl.controller.LayerController``) against a naive model of a program.

The controller runs a real :class:`~sdtforge.hdl.program.ProgramSequencer`; the stages around
it are modelled cycle by cycle in the testbench (an encoder that plays given events, a PE array
that takes every command and answers a ``DRAIN`` with given sums, a write-back stage, the
queue between controller and PE array as one cycle of latency). The naive model is the loop
order the compiler and golden model assume: per layer, rows ``(g, y, x, t)`` with ``t``
innermost; a ``CONV`` event of tap offset ``o`` and channel ``c`` reads weight row
``w_base + g·w_gstride + o + c``; the pixel layer's value is ``Σ_b 2^b · sums_b``.
"""

import numpy as np
import pytest
from _stream import mem_write
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from sdtforge.hdl.accel_isa import Op, descriptor_words, op_view, program_words
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.controller import LayerController
from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.pe_array import PEArray, PEOp
from sdtforge.hdl.program import ProgramSequencer

W, P = 8, 4
CFG = AccelConfig(lanes=P, width=W, weights_depth=256, coord_bits=2, step_bits=2,
                  word_bits=2, group_bits=2)
LW, WB = 3, CFG.word_bits                       # log2 W; the word index bits


class _Harness(Elaboratable):
    def __init__(self):
        enc = EventEncoder(W, WB + 8)
        pe = PEArray(P, CFG.acc_bits, weight_width=CFG.weight_bits, bias_width=CFG.acc_bits,
                     weight_depth=CFG.weights_depth, bias_depth=CFG.biases_depth)
        self.prog = ProgramSequencer(CFG)
        self.ctrl = LayerController(CFG, event_layout=enc.out_layout, cmd_layout=pe.cmd_layout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.prog, m.submodules.ctrl = prog, ctrl = self.prog, self.ctrl
        m.d.comb += [ctrl.descriptor.eq(prog.descriptor), ctrl.program.loaded.eq(prog.loaded),
                     ctrl.program.first.eq(prog.first), prog.load.eq(ctrl.program.load),
                     prog.step.eq(ctrl.program.step), prog.rewind.eq(ctrl.program.rewind)]
        return m


def _program(layers):
    words = []
    for op, fields in layers:
        view = op_view(CFG, op)
        value = view.const({"op": op, **fields}).as_value().value
        words += program_words(value, descriptor_words(CFG))
    return words


def _event(tapoff, channel, *, last=False, none=False):
    return {"addr": (tapoff << (LW + WB)) | channel, "last": int(last), "none": int(none)}


def test_layer_sequence_matches_the_naive_model():
    rng = np.random.default_rng(1)
    pix = {"steps": 2, "groups": 1, "pos_h": 1, "pos_w": 1, "channels": 1, "words": 1,
           "height": 1, "width": 3, "prow": 2}
    conv = {"steps": 2, "groups": 2, "pos_h": 1, "pos_w": 2, "cin": 13, "words": 2,
            "w_base": 7, "w_gstride": 120, "prow": 3}
    lif = {"steps": 2, "groups": 2, "pos_h": 2, "pos_w": 1}
    prog_words = _program([(Op.PIXEL, pix), (Op.CONV, conv), (Op.STREAM_LIF, lif),
                           (Op.END, {"classes": 3})])
    pixels = [11, 22, 33]
    planes = [[int(v) for v in rng.integers(-50, 50, P)] for _ in range(8)]  # sums, bit 7 … 0
    conv_rows = [(g, 0, x, t) for g in range(2) for x in range(2) for t in range(2)]
    row_events = []                                       # per CONV row: (tapoff, channel)
    for _ in conv_rows:
        n = int(rng.integers(0, 4))
        # Channels past the first word (W = 8) too: the row adds word · W + bit.
        row_events.append([(int(rng.integers(0, 9)) * 13, int(rng.integers(0, 13)))
                           for _ in range(n)])

    dut = _Harness()
    c = dut.ctrl
    seen = {"pixel_writes": [], "cmds": [], "latched": [], "lif": [], "stream_rows": [],
            "emit": 0, "lif_groups_ahead": []}

    async def tb(ctx):
        await mem_write(ctx, dut.prog.write, enumerate(prog_words))
        ctx.set(c.loader_idle, 1)
        ctx.set(c.cmd.ready, 1)
        ctx.set(c.lif.ready, 1)
        pix_queue = list(pixels)
        events = []                      # the encoder's queue of events to offer
        conv_fed = False
        sums_queue, sums_delay = [], []  # planes to answer DRAINs with
        plane_iter = iter(planes)
        pending_last = False             # a last command taken last cycle (the queue)
        wb_rows, taken_at = 0, None
        written_next = False
        group_ahead = None               # next_group in the cycle before
        for _cycle in range(3000):
            # -- drive the stage models' outputs for this cycle --------------------------
            ctx.set(c.pixels.valid, bool(pix_queue))
            ctx.set(c.pixels.payload, pix_queue[0] if pix_queue else 0)
            ctx.set(c.events.valid, bool(events))
            if events:
                for k, v in events[0].items():
                    ctx.set(c.events.payload[k], v)
            ctx.set(c.cmd_taken_last, pending_last)
            ready_sums = bool(sums_delay) and sums_delay[0] <= 0
            ctx.set(c.sums.valid, ready_sums)
            if ready_sums:
                ctx.set(c.sums.payload, sums_queue[0])
            ctx.set(c.wb.taken, taken_at == 0)
            ctx.set(c.row_free, taken_at == 0)       # as the accelerator wires it here
            ctx.set(c.wb.done, wb_rows == 0)
            ctx.set(c.wb.written, written_next)
            ctx.set(c.emit.done, seen["emit"] > 0)
            stream_row = [int(v) for v in rng.integers(-300, 300, P)]
            for lane, v in enumerate(stream_row):
                ctx.set(c.stream_row[lane], v)
            # -- read the controller ---------------------------------------------------------
            if ctx.get(c.pixels.valid) and ctx.get(c.pixels.ready):
                pw = c.pixel_write
                assert ctx.get(pw.en) and ctx.get(pw.active)
                seen["pixel_writes"].append((ctx.get(pw.y), ctx.get(pw.x), ctx.get(pw.c),
                                             ctx.get(pw.data)))
                pix_queue.pop(0)
            taken_ev = ctx.get(c.events.valid) and ctx.get(c.events.ready)
            pending_last = False
            if ctx.get(c.cmd.valid) and ctx.get(c.cmd.ready):
                cmd = {k: ctx.get(c.cmd.payload[k]) for k in ("op", "addr", "last", "bias")}
                seen["cmds"].append(cmd)
                pending_last = bool(cmd["last"])
                if cmd["op"] == PEOp.DRAIN and not cmd["last"]:       # a pixel plane
                    sums_queue.append(next(plane_iter))
                    sums_delay.append(2)
            if ctx.get(c.wb.latch):
                seen["latched"].append(tuple(ctx.get(c.row[k]) for k in "gyxt"))
                wb_rows += 1
                taken_at = 1
            if ctx.get(c.lif.valid) and ctx.get(c.lif.ready):
                seen["lif"].append((tuple(ctx.get(c.row[k]) for k in "gyxt"),
                                    [ctx.get(c.lif.payload[i]) for i in range(P)], stream_row))
                seen["lif_groups_ahead"].append(group_ahead)
            group_ahead = ctx.get(c.next_group)
            written_next = False
            if ctx.get(c.lif.valid) and ctx.get(c.lif.ready):
                written_next = True
            if ctx.get(c.read_next):
                seen["stream_rows"].append(tuple(ctx.get(c.row_next[k]) for k in "gyxt"))
            if ctx.get(c.fetch_start):
                if ctx.get(c.descriptor.op) == Op.CONV and not conv_fed:
                    conv_fed = True
                    for evs in row_events:
                        events += [_event(o, ch) for o, ch in evs]
                        events.append(_event(0, 0, last=True, none=True))
                elif ctx.get(c.descriptor.op) == Op.PIXEL:
                    events.append(_event(0, 0, last=True, none=True))
            if ctx.get(c.emit.start):
                seen["emit"] += 1
            if ctx.get(c.sums.valid) and ctx.get(c.sums.ready):
                sums_queue.pop(0)
                sums_delay.pop(0)
            await ctx.tick()
            # -- the stage models' state --------------------------------------------------
            if taken_ev:
                events.pop(0)
            sums_delay = [d - 1 for d in sums_delay]
            if taken_at is not None:
                taken_at -= 1
                if taken_at < 0:
                    taken_at = None
                    wb_rows -= 1
            if seen["emit"] and not ctx.get(c.busy):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()

    # Pixels land in raster order (channels fastest).
    assert seen["pixel_writes"] == [(0, x, 0, v) for x, v in enumerate(pixels)]
    # PIXEL: eight planes (bit 7 first) of CLEAR, then DRAIN; the last plane (bit 0) starts
    # from the bias row, so the bias counts once. The value Σ 2^b·sums_b goes to the LIF at
    # t = 0, and again (the value kept) at t = 1.
    cmds = seen["cmds"]
    pixel_cmds = cmds[:16]
    assert [cm["op"] for cm in pixel_cmds] == ([PEOp.CLEAR, PEOp.DRAIN] * 7
                                               + [PEOp.BIAS, PEOp.DRAIN])
    assert pixel_cmds[14]["addr"] == pix["prow"]
    value = [sum(planes[7 - b][lane] << b for b in range(8)) for lane in range(P)]
    assert [(r, v) for r, v, _ in seen["lif"][:2]] == [((0, 0, 0, 0), value),
                                                       ((0, 0, 0, 1), value)]
    # CONV: the group's bias row, then each row's events (weight row w_base + g·w_gstride +
    # tap offset + channel), the row's last command flagged with the next row's bias row.
    want = [{"op": PEOp.BIAS, "addr": conv["prow"], "last": 0, "bias": 0}]
    for (g, _, _, _), evs in zip(conv_rows, row_events, strict=True):
        want += [{"op": PEOp.ACC, "addr": conv["w_base"] + g * conv["w_gstride"] + o + ch,
                  "last": 0, "bias": 0} for o, ch in evs]
    conv_cmds = [dict(cm, bias=0) if not cm["last"] else cm for cm in cmds[16:]]
    lasts = [cm for cm in conv_cmds if cm["last"]]
    assert [cm for cm in conv_cmds if not cm["last"]] == want
    assert len(lasts) == len(conv_rows)
    assert all(cm["op"] == PEOp.DRAIN for cm in lasts)
    next_groups = [conv_rows[i + 1][0] if i + 1 < len(conv_rows) else 2
                   for i in range(len(conv_rows))]
    assert [cm["bias"] for cm in lasts] == [conv["prow"] + g for g in next_groups]
    # The write-back latches the rows in nest order.
    assert seen["latched"] == conv_rows
    # STREAM_LIF: one LIF row per nest row, the stream read a row ahead.
    lif_rows = [(g, y, 0, t) for g in range(2) for y in range(2) for t in range(2)]
    assert [r for r, _, _ in seen["lif"][2:]] == lif_rows
    # STREAM_LIF's values are the stream memory's row of that cycle, lane by lane.
    assert all(v == x for _, v, x in seen["lif"][2:])
    assert seen["stream_rows"][:-1] == lif_rows[1:]
    assert seen["emit"] == 1
    # Each LIF row's group was given a cycle ahead (the write-back reads its thresholds then).
    assert seen["lif_groups_ahead"] == [r[0] for r, _, _ in seen["lif"]]


@pytest.mark.parametrize("op", [Op.SDSA, Op.POOL_OR])
def test_stage_layers_start_their_stage_and_wait(op):
    """``SDSA`` starts its stage once per layer, ``POOL_OR`` once per row; the layer ends
    only on the stage's ``done``."""
    fields = {"steps": 2, "pos_h": 1, "pos_w": 1, "words": 1}
    if op == Op.SDSA:
        fields = {"steps": 2, "words": 1}
    prog_words = _program([(Op.PIXEL, {"steps": 1, "groups": 1, "pos_h": 1, "pos_w": 1,
                                       "channels": 1, "words": 1, "height": 1, "width": 1}),
                           (op, fields), (Op.END, {"classes": 1})])
    dut = _Harness()
    c = dut.ctrl
    port = c.sdsa if op == Op.SDSA else c.pool
    starts, waits = [], []

    async def tb(ctx):
        await mem_write(ctx, dut.prog.write, enumerate(prog_words))
        for sig in (c.loader_idle, c.cmd.ready, c.lif.ready, c.wb.done):
            ctx.set(sig, 1)
        pixel_left, emitted = 1, False
        busy_since = None
        for cycle in range(600):
            ctx.set(c.pixels.valid, pixel_left)
            ctx.set(c.events.valid, 1)
            ctx.set(c.events.payload.last, 1)
            ctx.set(c.events.payload.none, 1)
            ctx.set(c.sums.valid, 1)
            ctx.set(c.wb.written, 1)
            ctx.set(port.done, busy_since is not None and cycle - busy_since >= 5)
            if ctx.get(c.pixels.valid) and ctx.get(c.pixels.ready):
                pixel_left = 0
            if ctx.get(port.start):
                starts.append(cycle)
                busy_since = cycle
            if ctx.get(port.done):
                waits.append(cycle - busy_since)
                busy_since = None
            ctx.set(c.emit.done, emitted)
            emitted = emitted or bool(ctx.get(c.emit.start))
            await ctx.tick()
            if starts and not ctx.get(c.busy):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert len(starts) == (1 if op == Op.SDSA else 2)
    assert waits == [5] * len(starts)
