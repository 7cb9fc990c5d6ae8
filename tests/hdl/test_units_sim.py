"""Amaranth-simulator tests of every unit against ``sdtforge.sim.ops``, with random stalls."""

import random

import numpy as np
import pytest
from _stream import run_streams, unpack
from _vectors import (
    FILLS,
    encoder_case,
    int_pool_case,
    lif_case,
    pe_case,
    residual_case,
    sdsa_case,
    spike_pool_case,
)
from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from sdtforge.hdl.lif import LIFUnit
from sdtforge.hdl.sdsa import SDSAOp

EXAMPLES = settings(max_examples=25)


def accept_cycles(dut, items, statics):
    """Cycle numbers at which ``dut.i`` accepts ``items``, offered back to back, valid held."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    cycles = []

    async def tb(ctx):
        for name, value in statics.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.o.ready, 1)
        now = 0
        for bits in items:
            ctx.set(dut.i.valid, 1)
            ctx.set(Value.cast(dut.i.payload), bits)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                now += 1
                if ready:
                    break
            cycles.append(now)
        ctx.set(dut.i.valid, 0)

    sim.add_testbench(tb)
    sim.run()
    return cycles


def check(case, seed, stall=0.3):
    counts = {name: len(items) for name, items in case.expected.items()}
    got, cycles = run_streams(case.dut, case.inputs, counts, seed=seed, stall=stall,
                              writes=case.writes, statics=case.statics)
    for name, exp in case.expected.items():
        layout = getattr(case.dut, name).payload.shape()
        assert [unpack(layout, g) for g in got[name]] == [unpack(layout, e) for e in exp]
    return cycles


seeds = st.integers(0, 2**32 - 1)
fills = st.sampled_from(FILLS)


@EXAMPLES
@given(seed=seeds, fill=fills, width=st.sampled_from([1, 2, 8, 16]), words=st.integers(1, 3),
       events=st.sampled_from([1, 2]), isolate_ahead=st.booleans())
def test_event_encoder(seed, fill, width, words, events, isolate_ahead):
    # ``isolate_ahead``: each next value's events isolated from registers (the ECP5 builds).
    rng = np.random.default_rng(seed)
    check(encoder_case(rng, width=width, words=words, fill=fill, events=events,
                       isolate_ahead=isolate_ahead), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, lanes=st.sampled_from([1, 4, 8]), late=st.booleans(),
       bias=st.booleans(), events=st.sampled_from([1, 2]), weight_latency=st.sampled_from([1, 2]))
def test_pe_array(seed, fill, lanes, late, bias, events, weight_latency):
    # ``late``: the weight rows arrive late at random (the weight path's back-pressure);
    # ``bias=False``: no bias memory (AccelConfig.writeback_bias), BIAS and ``last`` clear;
    # ``events=2``: two rows per command, read on the weight memory's two ports;
    # ``weight_latency=2``: each row in a register before the adders (AccelConfig).
    rng = np.random.default_rng(seed)
    check(pe_case(rng, lanes=lanes, fill=fill, late=late, bias=bias, events=events,
                  weight_latency=weight_latency), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, lanes=st.sampled_from([1, 4]), depth=st.integers(1, 4),
       chunks=st.sampled_from([1, 2, 4]), theta_ahead=st.booleans())
def test_lif(seed, fill, lanes, depth, chunks, theta_ahead):
    # ``chunks > 1``: the lane-serial write-back's LIF (a chunk of each threshold row);
    # ``theta_ahead``: the threshold rows read a cycle ahead (one chunk).
    rng = np.random.default_rng(seed)
    check(lif_case(rng, lanes=lanes, depth=depth, fill=fill,
                   chunks=1 if theta_ahead else chunks, theta_ahead=theta_ahead), seed)


def test_lif_theta_ahead_needs_one_chunk():
    with pytest.raises(ValueError, match="one chunk"):
        LIFUnit(4, 2, 8, theta_depth=4, chunks=2, theta_ahead=True)


@EXAMPLES
@given(seed=seeds, fill=fills, mode=st.sampled_from(["lif", "or"]),
       shape=st.sampled_from([(8, 8), (16, 8), (32, 16)]), tokens=st.integers(1, 6))
def test_sdsa(seed, fill, mode, shape, tokens):
    rng = np.random.default_rng(seed)
    check(sdsa_case(rng, channels=shape[0], width=shape[1], tokens=tokens, mode=mode,
                    fill=fill), seed)


@st.composite
def _sdsa_lif_params(draw):
    theta_width = draw(st.sampled_from([2, 3, 8, 16]))
    lo, hi = -(1 << (theta_width - 1)), (1 << (theta_width - 1)) - 1
    # Mostly small thresholds (neurons that both fire and integrate), some extremes.
    theta = draw(st.one_of(st.integers(max(lo, -2), min(hi, 12)), st.sampled_from([lo, hi])))
    return theta_width, theta


@EXAMPLES
@given(seed=seeds, fill=fills,
       shape=st.sampled_from([(1, 1), (2, 1), (4, 1), (8, 2), (8, 8), (24, 8)]),
       tokens=st.integers(1, 9), shift=st.integers(0, 3), params=_sdsa_lif_params(),
       masks=st.integers(1, 3))
def test_sdsa_lif_serial_mask(seed, fill, shape, tokens, shift, params, masks):
    # The serial mask: one neuron per cycle, narrow membranes (small θ width and shift),
    # W = 1 (a MASK on one word right after another), non-power-of-two word counts, and
    # repeated MASK sweeps of one row back to back.
    theta_width, theta = params
    rng = np.random.default_rng(seed)
    check(sdsa_case(rng, channels=shape[0], width=shape[1], tokens=tokens, fill=fill,
                    shift=shift, theta_width=theta_width, theta=theta, masks=masks), seed)


@pytest.mark.parametrize("shape", [(1, 1), (2, 1), (8, 8), (16, 8)])
def test_sdsa_mask_back_to_back(shape):
    # No stalls, repeated MASK sweeps: a membrane read right after its update (with W = 1,
    # one word, the same row back to back) must see it.
    for seed in range(8):
        rng = np.random.default_rng(seed)
        check(sdsa_case(rng, channels=shape[0], width=shape[1], tokens=7, steps=8,
                        theta=int(rng.integers(2, 7)), masks=3, density=0.6), seed, stall=0.0)


@pytest.mark.parametrize("width", [1, 2, 8, 16])
@pytest.mark.parametrize("words", [1, 2, 3])
def test_sdsa_mask_schedule(width, words):
    # A controller holding valid high: the MASK commands of a row are accepted W cycles apart,
    # so (words - 1)·W + 1 cycles from the first offer to the last acceptance; the command
    # offered right after the last MASK (a Q here) is accepted W cycles after it.
    rng = np.random.default_rng(width * 10 + words)
    case = sdsa_case(rng, channels=width * words, width=width, tokens=2, steps=2, theta=1)
    ops_seen = [data.Const(case.dut.in_layout, bits).op for bits in case.inputs["i"]]
    accepted = accept_cycles(case.dut, case.inputs["i"], case.statics)
    for n in range(1, len(accepted)):
        gap = accepted[n] - accepted[n - 1]
        assert gap == (width if ops_seen[n - 1] == SDSAOp.MASK else 1), (n, ops_seen[n - 1])
    first = ops_seen.index(SDSAOp.MASK)
    assert accepted[first + words - 1] - accepted[first] + 1 == (words - 1) * width + 1


@EXAMPLES
@given(seed=seeds, fill=fills, hw=st.sampled_from([(1, 1), (3, 4), (5, 6), (8, 8)]))
def test_spike_maxpool(seed, fill, hw):
    rng = np.random.default_rng(seed)
    check(spike_pool_case(rng, h=hw[0], w=hw[1], fill=fill), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, hw=st.sampled_from([(1, 1), (3, 4), (4, 4)]))
def test_int_maxpool(seed, fill, hw):
    rng = np.random.default_rng(seed)
    check(int_pool_case(rng, h=hw[0], w=hw[1], fill=fill), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, max_shift=st.integers(0, 5))
def test_align_add(seed, fill, max_shift):
    rng = np.random.default_rng(seed)
    check(residual_case(rng, max_shift=max_shift, fill=fill), seed)


def test_lif_read_after_write():
    # One row visited at every step, back to back: each read must see the previous write.
    for seed in range(8):
        case = lif_case(np.random.default_rng(seed), depth=1, steps=8)
        check(case, seed, stall=0.0)


# Throughput: with no stalls the measured cycles match each unit's documented formula.
@pytest.mark.parametrize("isolate_ahead", [False, True])
@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("fill", FILLS)
def test_event_encoder_cycles(fill, events, isolate_ahead):
    case = encoder_case(np.random.default_rng(1), width=16, rows=6, words=3, fill=fill,
                        events=events, isolate_ahead=isolate_ahead)
    assert check(case, 0, stall=0.0) == case.info["cycles"] + 1


@pytest.mark.parametrize("name,build", [
    ("pe", lambda r: pe_case(r, groups=4)),
    ("pe2", lambda r: pe_case(r, groups=4, events=2)),
    ("pe-registered", lambda r: pe_case(r, groups=4, weight_latency=2)),
    ("pe2-registered", lambda r: pe_case(r, groups=4, events=2, weight_latency=2)),
    ("sdsa", lambda r: sdsa_case(r, tokens=4)),
    ("spike_pool", lambda r: spike_pool_case(r, h=8, w=8)),
    ("int_pool", lambda r: int_pool_case(r, h=8, w=8)),
    ("residual", lambda r: residual_case(r, rows=10)),
])
def test_cycles(name, build):
    # A stream of n commands takes n cycles and the drain latency: 1, and 2 for a PE array that
    # takes its weight rows into a register.
    case = build(np.random.default_rng(2))
    drain = 2 if name.endswith("-registered") else 1
    assert check(case, 0, stall=0.0) == case.info["cycles"] + drain


def test_late_weight_rows_cost_cycles_not_results():
    # The same commands with rows held back: the sums are checked equal by ``check``; the
    # array waits for each late row, so the stream takes longer than with on-time rows.
    on_time = pe_case(np.random.default_rng(3), groups=4, density=0.8)
    late = pe_case(np.random.default_rng(3), groups=4, density=0.8, late=True)
    assert late.inputs == on_time.inputs
    assert check(late, 0, stall=0.0) > check(on_time, 0, stall=0.0) == on_time.info["cycles"] + 1


@pytest.mark.parametrize("weight_latency", [1, 2])
def test_row_ending_acc_waits_for_its_sums_to_be_taken(weight_latency):
    """An ACC flagged ``last`` whose sums wait on ``o`` keeps its weight row, while the next
    command's request goes ahead: the sums are that row's, and nothing hangs."""
    from _stream import mem_write, pack, stream_put
    from _vectors import PEWithWeights

    from sdtforge.hdl.pe_array import PEArray, PEOp

    pe = PEArray(2, 12, weight_width=4, bias_width=8, weight_depth=4, bias_depth=2,
                 weight_latency=weight_latency)
    dut = PEWithWeights(pe, 4)
    cmds = [{"op": PEOp.BIAS, "addr": 0}, {"op": PEOp.ACC, "addr": 1},
            {"op": PEOp.ACC, "addr": 2, "last": 1, "bias": 1},
            {"op": PEOp.ACC, "addr": 3, "last": 1, "bias": 0}]
    got, started = [], []

    async def commands(ctx):
        await mem_write(ctx, dut.w_write, [(k, pack(pe.weight_shape, [k, -k])) for k in range(4)])
        await mem_write(ctx, dut.b_write, [(0, pack(pe.bias_shape, [10, 20])),
                                           (1, pack(pe.bias_shape, [100, 120]))])
        started.append(True)
        for cmd in cmds:        # back to back: the stall comes from o alone
            await stream_put(ctx, dut.i, pack(pe.cmd_layout, cmd), random.Random(0), stall=0)

    async def sums(ctx):
        while not started:
            await ctx.tick()
        for cycle in range(16):
            ctx.set(dut.o.ready, cycle >= 6)        # the first row's sums wait 3 cycles
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and cycle >= 6:
                got.append([int(v) for v in payload.acc])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(commands)
    sim.add_testbench(sums)
    sim.run_until(1e-8 * 200)
    assert got == [[10 + 1 + 2, 20 - 1 - 2], [100 + 3, 120 - 3]]
