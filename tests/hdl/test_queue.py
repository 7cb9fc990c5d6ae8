"""``hdl.queue.RegisterQueue`` against ``amaranth.lib.fifo.SyncFIFO(depth=2)``, cycle by cycle."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import fifo
from amaranth.sim import Simulator

from sdtforge.hdl.queue import RegisterQueue

WIDTH = 6


@pytest.mark.parametrize("seed", range(4))
def test_register_queue_is_a_two_entry_sync_fifo(seed):
    """Both queues take the same random writes and reads (each side's enable raised at a
    random rate, regardless of its ready): ``w_rdy``, ``r_rdy``, the levels and, while an
    entry is held, ``r_data`` agree in every cycle, and the entries come out in order."""
    m = Module()
    m.submodules.dut = dut = RegisterQueue(width=WIDTH)
    m.submodules.ref = ref = fifo.SyncFIFO(width=WIDTH, depth=2)
    rng = random.Random(seed)
    w_rate, r_rate = rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.9)

    async def tb(ctx):
        written, read, levels = [], [], set()
        for _ in range(600):
            w_en, r_en = rng.random() < w_rate, rng.random() < r_rate
            data = rng.randrange(1 << WIDTH)
            for q in (dut, ref):
                ctx.set(q.w_en, w_en)
                ctx.set(q.w_data, data)
                ctx.set(q.r_en, r_en)
            await ctx.delay(1e-9)
            for name in ("w_rdy", "r_rdy", "w_level", "r_level", "level"):
                assert ctx.get(getattr(dut, name)) == ctx.get(getattr(ref, name)), name
            levels.add(ctx.get(dut.level))
            if ctx.get(ref.r_rdy):
                assert ctx.get(dut.r_data) == ctx.get(ref.r_data)
                if r_en:
                    read.append(ctx.get(dut.r_data))
            if w_en and ctx.get(ref.w_rdy):
                written.append(data)
            await ctx.tick()
        assert levels == {0, 1, 2}
        assert read == written[:len(read)] and len(read) > 100

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
