import random

import pytest
from amaranth import Module
from amaranth.sim import Simulator

from sdtforge.boards.uart import UARTRx, UARTTx

DIV = 6


def _loopback():
    m = Module()
    m.submodules.tx = tx = UARTTx(DIV)
    m.submodules.rx = rx = UARTRx(DIV)
    m.d.comb += rx.rx.eq(tx.tx)
    return m, tx, rx


def test_loopback_bytes():
    m, tx, rx = _loopback()
    rng = random.Random(1)
    sent = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(12)]
    got = []

    async def producer(ctx):
        for b in sent:
            ctx.set(tx.stream.payload, b)
            ctx.set(tx.stream.valid, 1)
            await ctx.tick().until(tx.stream.ready)
            ctx.set(tx.stream.valid, 0)
            for _ in range(rng.randrange(3)):
                await ctx.tick()

    async def consumer(ctx):
        ctx.set(rx.stream.ready, 1)
        while len(got) < len(sent):
            await ctx.tick().until(rx.stream.valid)
            got.append((ctx.get(rx.stream.payload.data), ctx.get(rx.stream.payload.error)))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-8 * DIV * 11 * (len(sent) + 4))
    assert got == [(b, 0) for b in sent]


def test_framing_error_flagged_and_recovers():
    rx = UARTRx(DIV)
    got = []

    async def line(ctx):
        async def bits(seq):
            for bit in seq:
                ctx.set(rx.rx, bit)
                await ctx.tick().repeat(DIV)
        await ctx.tick().repeat(5)
        await bits([0] + [1, 0, 1, 0, 1, 0, 1, 0] + [0])   # stop bit low: framing error
        await bits([1] * 3)
        await bits([0] + [0, 1, 1, 0, 0, 1, 1, 0] + [1])   # a good byte after idle
        await bits([1] * 3)

    async def consumer(ctx):
        ctx.set(rx.stream.ready, 1)
        while len(got) < 2:
            await ctx.tick().until(rx.stream.valid)
            got.append((ctx.get(rx.stream.payload.data), ctx.get(rx.stream.payload.error)))

    sim = Simulator(rx)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_testbench(consumer, background=True)
    sim.run()
    assert got == [(0x55, 1), (0x66, 0)]


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
def test_bad_divisor(cls):
    with pytest.raises(ValueError, match=r"UART divisor must be an integer of at least 4, not 2"):
        cls(2)
