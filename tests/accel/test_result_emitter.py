"""The result emitter (``hdl/result.py``) against a naive model: logits, argmax, cycle count."""

import random

import numpy as np
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.result import Result, ResultEmitter, encode_result


def _emit(config, images, stall):
    """Write each image's logits, start the emitter, collect its words (``(data, last)``) and
    the cycle of ``done``; ready held low at random."""
    dut = ResultEmitter(config)
    p = config.chunk_lanes          # classes per row
    rng = random.Random(0)
    out = []

    async def tb(ctx):
        if config.writeback_cycles > 1:
            ctx.set(dut.read.en, 0)         # the head's read port (a read port's en starts at 1)
        for logits, cycles in images:
            rows = [logits[i:i + p] + [0] * (p - len(logits[i:i + p]))
                    for i in range(0, len(logits), p)]
            for r, row in enumerate(rows):
                ctx.set(dut.write.addr, r)
                ctx.set(dut.write.data, row)
                ctx.set(dut.write.en, 1)
                await ctx.tick()
            ctx.set(dut.write.en, 0)
            ctx.set(dut.classes, len(logits))
            ctx.set(dut.cycles, cycles)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            words, first, n = [], None, 0
            while True:
                ready = rng.random() >= stall
                ctx.set(dut.result.ready, ready)
                _, _, valid, payload, done = await ctx.tick().sample(
                    dut.result.valid, dut.result.payload, dut.done)
                n += 1
                if valid and first is None:
                    first = n
                if valid and ready:
                    words.append((payload.data, payload.last))
                assert done == (valid and ready and payload.last)
                if done:
                    break
            ctx.set(dut.result.ready, 0)
            out.append((words, first, n))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lanes=st.sampled_from([1, 2, 4, 8]),
       classes=st.integers(1, 13), bits=st.sampled_from([3, 8, 32]), serial=st.booleans())
def test_result_words(seed, lanes, classes, bits, serial):
    # ``serial``: a lane-serial write-back's configuration (one class per logits row).
    rng = np.random.default_rng(seed)
    wb = lanes if serial else 1
    config = AccelConfig(lanes=lanes, width=max(8, lanes), logit_bits=bits,
                         logits_depth=max(-(-classes // lanes) * wb, 2), channel_bits=4,
                         writeback_cycles=wb)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    images = []
    for _ in range(2):
        logits = [int(v) for v in rng.integers(lo, hi, classes, endpoint=True)]
        if classes > 2 and rng.random() < 0.5:
            logits[-1] = max(logits)          # a tie: the lowest index wins
        images.append((logits, int(rng.integers(0, 2**32))))
    for (words, _, _), (logits, cycles) in zip(_emit(config, images, stall=0.3), images,
                                              strict=True):
        label = int(np.argmax(logits))
        assert words == encode_result(Result(tuple(logits), label, cycles))


def test_cycle_contract():
    # No stall: the first logit three cycles after start, three cycles per logit (the read,
    # the lane register, the word), one each for the class and the cycle count.
    config = AccelConfig(lanes=4, width=8, logits_depth=3, channel_bits=4)
    ((words, first, n),) = _emit(config, [([5, -3, 7, 7, 0, 1, -9, 2, 4, 4], 1234)], stall=0.0)
    assert first == 3
    assert n == 3 * 10 + 2
    assert words[10:] == [(2, 0), (1234, 1)]
