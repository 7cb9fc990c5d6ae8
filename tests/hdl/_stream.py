"""Stream test helpers shared by the Amaranth-simulator and cocotb tests of ``sdtforge.hdl``.

Payloads travel as packed integers (the bit image of a ``lib.data`` layout) so that the same
vectors drive the Amaranth simulator and the generated Verilog under cocotb. Every put and get
stalls at random, so each stream port sees bubbles on valid and back-pressure on ready.
"""

import random

from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.sim import Simulator


def pack(layout, value):
    """Bit image of ``value`` (nested dicts / lists of ints) in ``layout``, as an ``int``."""
    return layout.const(value).as_value().value


def unpack(layout, bits):
    """Inverse of :func:`pack`: nested dicts / lists of Python ints."""
    return _to_py(data.Const(layout, bits))


def _to_py(c):
    layout = c.shape()
    if isinstance(layout, data.ArrayLayout):
        return [_to_py(c[i]) if isinstance(c[i], data.Const) else int(c[i])
                for i in range(layout.length)]
    out = {}
    for name, _ in layout:
        field = c[name]
        out[name] = _to_py(field) if isinstance(field, data.Const) else int(field)
    return out


async def stream_put(ctx, port, bits, rng, stall=0.3):
    """Offer ``bits`` on stream ``port`` after a random number of idle cycles; wait for ready."""
    while rng.random() < stall:
        await ctx.tick()
    ctx.set(port.valid, 1)
    ctx.set(Value.cast(port.payload), bits)
    await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def stream_get(ctx, port, rng, stall=0.3):
    """Take one payload from stream ``port`` (as an ``int``), holding ready low at random."""
    while rng.random() < stall:
        await ctx.tick()
    ctx.set(port.ready, 1)
    (bits,) = await ctx.tick().sample(Value.cast(port.payload)).until(port.valid)
    ctx.set(port.ready, 0)
    return bits


async def mem_write(ctx, port, items):
    """Write ``(addr, bits)`` pairs through a ``lib.memory`` write-port interface."""
    for addr, bits in items:
        ctx.set(port.addr, addr)
        ctx.set(Value.cast(port.data), bits)
        ctx.set(port.en, 1)
        await ctx.tick()
    ctx.set(port.en, 0)


def run_streams(dut, inputs, outputs, *, seed=0, stall=0.3, writes=(), statics=None):
    """Drive ``dut`` in the Amaranth simulator and collect its outputs.

    Parameters
    ----------
    inputs : dict of str to list of int
        Packed payloads per input stream member name, sent in order.
    outputs : dict of str to int
        Number of payloads to collect per output stream member name.
    writes : sequence of (str, list of (int, int))
        Memory-write interfaces and their ``(addr, bits)`` items, written before the streams
        start.
    statics : dict of str to int
        Plain input members set once before anything else.

    Returns
    -------
    (dict of str to list of int, int)
        Collected payloads per output, and the number of clock cycles from the first input
        offer to the last output handshake.
    """
    rng = random.Random(seed)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = {name: [] for name in outputs}
    clock = {"now": 0, "start": None, "end": 0}
    ready = {"go": False}

    async def counter(ctx):
        async for _ in ctx.tick():
            clock["now"] += 1

    async def setup(ctx):
        for name, value in (statics or {}).items():
            ctx.set(getattr(dut, name), value)
        for name, items in writes:
            await mem_write(ctx, getattr(dut, name), items)
        clock["start"] = clock["now"]
        ready["go"] = True

    def producer(name, items, prng):
        async def tb(ctx):
            while not ready["go"]:
                await ctx.tick()
            for bits in items:
                await stream_put(ctx, getattr(dut, name), bits, prng, stall)
        return tb

    def consumer(name, count, prng):
        async def tb(ctx):
            while not ready["go"]:
                await ctx.tick()
            for _ in range(count):
                got[name].append(await stream_get(ctx, getattr(dut, name), prng, stall))
                clock["end"] = clock["now"]
        return tb

    sim.add_process(counter)
    sim.add_testbench(setup)
    for name, items in inputs.items():
        sim.add_testbench(producer(name, items, random.Random(rng.random())))
    for name, count in outputs.items():
        sim.add_testbench(consumer(name, count, random.Random(rng.random())))
    limit = 1000 + 50 * (sum(map(len, inputs.values())) + sum(outputs.values()))
    while sim.advance():
        if clock["now"] > limit:
            raise AssertionError(f"simulation hung: outputs so far {got!r}")
    return got, clock["end"] - clock["start"]


def set_fields(ctx, view, values):
    """Set the fields of a struct-typed input member ``view`` from the dict ``values``."""
    for name, value in values.items():
        ctx.set(view[name], value)


def last_word_mask(channels, width):
    """Mask of the channels of a ``channels``-wide row in its last ``width``-bit word."""
    rem = channels % width
    return (1 << rem) - 1 if rem else (1 << width) - 1
