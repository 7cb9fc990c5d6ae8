"""The POOL_OR stage (``hdl.pool.SpikePoolStage``) against the golden ``ops.spike_maxpool``."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from sdtforge.hdl.pool import SpikePoolStage
from sdtforge.sim import ops

W, CB = 8, 3


class _Harness(Elaboratable):
    """The stage on a one-word-per-position spike map addressed ``y·in_w + x``."""

    def __init__(self, in_w, init, stride1=False):
        self.stage = SpikePoolStage(W, CB, stride1=stride1)
        self._in_w, self._init = in_w, init

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = s = self.stage
        m.submodules.mem = mem = memory.Memory(shape=W, depth=len(self._init), init=self._init)
        rd = mem.read_port()
        m.d.comb += [rd.en.eq(s.read.en), rd.addr.eq(s.read.y * self._in_w + s.read.x),
                     s.data.eq(rd.data)]
        return m


@pytest.mark.parametrize("stride", [2, 1, "2 of a stride-1 build"])
@pytest.mark.parametrize("hw", [(1, 1), (1, 4), (3, 4), (5, 6), (8, 8), (7, 2)])
def test_pool_stage_matches_golden(hw, stride):
    """Each output word is the OR of its window's in-bounds words; ``done`` after two cycles
    per window position plus the start and write cycles (the cycle model's ``POOL_OR``).
    Stride 1 is a DVS model's erosion (``ops.erode_map``)."""
    h, w = hw
    built = stride != 2
    stride = 2 if isinstance(stride, str) else stride
    rng = np.random.default_rng(h * 10 + w)
    bits = rng.integers(0, 2, size=(W, h, w)) & (rng.random((W, h, w)) < 0.3)
    if stride == 2:
        want = ops.spike_maxpool(bits)                  # (W, ho, wo)
    else:
        tokens = bits.reshape(W, h * w).T               # (N, C)
        want = ops.erode_map(tokens, h, w).T.reshape(W, h, w)
    words = [int(sum(int(bits[c, y, x]) << c for c in range(W)))
             for y in range(h) for x in range(w)]
    dut = _Harness(w, words, stride1=built)
    s = dut.stage
    got, costs = {}, {}

    async def tb(ctx):
        if built:
            ctx.set(s.stride1, stride == 1)
        ctx.set(s.in_h, h)
        ctx.set(s.in_w, w)
        for oy in range(want.shape[1]):
            for ox in range(want.shape[2]):
                ctx.set(s.at.y, oy)
                ctx.set(s.at.x, ox)
                ctx.set(s.start, 1)
                cycles = 0
                while True:
                    done, en, value = (ctx.get(s.done), ctx.get(s.write.en),
                                       ctx.get(s.write.data))
                    await ctx.tick()
                    ctx.set(s.start, 0)
                    cycles += 1
                    if en:
                        assert (oy, ox) not in got
                        got[oy, ox] = value
                    if done:
                        break
                costs[oy, ox] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    for oy in range(want.shape[1]):
        for ox in range(want.shape[2]):
            assert got[oy, ox] == int(sum(int(want[c, oy, ox]) << c for c in range(W)))
            ys = [y for y in range(stride * oy - 1, stride * oy + 2) if 0 <= y < h]
            xs = [x for x in range(stride * ox - 1, stride * ox + 2) if 0 <= x < w]
            assert costs[oy, ox] == 2 * len(ys) * len(xs) + 2
