"""The controller's lane value (``hdl.lane_value.LaneValue``) against a naive model: Horner
steps of taken plane sums, token sums of stream rows, clears, under random offers."""

import random

import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from sdtforge.hdl.lane_value import LaneValue

ACC_BITS = 12


def _wrap(v):
    """``v`` as a signed ACC_BITS-bit value (the lanes' adders wrap)."""
    v &= (1 << ACC_BITS) - 1
    return v - (1 << ACC_BITS) if v >> (ACC_BITS - 1) else v


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_lane_value_matches_horner_and_token_sums(lanes, seed):
    layout = data.ArrayLayout(signed(ACC_BITS), lanes)
    dut = LaneValue(layout)
    rng = random.Random(seed)

    def rand_row():
        return [rng.randrange(-300, 300) for _ in range(lanes)]

    async def tb(ctx):
        value = [0] * lanes         # the naive model
        checked = 0
        for _ in range(400):
            pixel = rng.random() < 0.5
            gather = rng.random() < 0.6
            offer = rng.random() < 0.5
            take = gather and offer
            clear = rng.random() < 0.1
            # The controller never adds while it takes a plane.
            add = not take and not clear and not pixel and rng.random() < 0.5
            sums, row = rand_row(), rand_row()
            ctx.set(dut.pixel, pixel)
            ctx.set(dut.clear, clear)
            ctx.set(dut.add, add)
            ctx.set(dut.gather, gather)
            ctx.set(dut.sums.valid, offer)
            ctx.set(dut.sums.payload, sums)
            ctx.set(dut.row, row)
            await ctx.delay(1e-9)
            assert ctx.get(dut.sums.ready) == gather
            assert list(ctx.get(dut.value)) == value
            # The next cycle's value: a clear wins over a take.
            if clear:
                value = [0] * lanes
            elif add:
                value = [_wrap(v + x) for v, x in zip(value, row, strict=True)]
            elif take:
                # The step takes the adders' mode of its own cycle (PIXEL all along in the
                # engine; low, the adders add the stream row).
                value = ([_wrap(2 * v + s) for v, s in zip(value, sums, strict=True)] if pixel
                         else [_wrap(v + x) for v, x in zip(value, row, strict=True)])
            checked += 1
            await ctx.tick()
        assert checked == 400

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_a_taken_plane_is_in_the_value_a_cycle_later():
    """Take 5 then 3 (one plane each) after a clear: 2·5 + 3 = 13, as the pixel layer sees it,
    in the cycle after the second take."""
    layout = data.ArrayLayout(signed(ACC_BITS), 1)
    dut = LaneValue(layout)

    async def tb(ctx):
        ctx.set(dut.pixel, 1)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.gather, 1)
        for plane, then in ((5, 5), (3, 13)):
            ctx.set(dut.sums.valid, 1)
            ctx.set(dut.sums.payload, [plane])
            await ctx.tick()
            ctx.set(dut.sums.valid, 0)
            assert list(ctx.get(dut.value)) == [then]
            await ctx.tick()
        assert list(ctx.get(dut.value)) == [13]
        # A plane offered while not gathering is not taken.
        ctx.set(dut.gather, 0)
        ctx.set(dut.sums.valid, 1)
        ctx.set(dut.sums.payload, [100])
        await ctx.tick()
        await ctx.tick()
        assert list(ctx.get(dut.value)) == [13]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
