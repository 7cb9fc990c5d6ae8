"""Amaranth-simulator tests of every unit against ``spikeforge.sim.ops``, with random stalls."""

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
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = settings(max_examples=25)


class _ExternalWeights(wiring.Component):
    """A PE array whose ``w_read`` port is served by a separate ``lib.memory.Memory``."""

    def __init__(self, pe, weights):
        self._pe = pe
        self._init = [[int(v) for v in row] for row in weights]
        super().__init__({name: member for name, member in pe.signature.members.items()
                          if name != "w_read"})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self._pe
        m.submodules.mem = mem = memory.Memory(shape=pe.weight_shape, depth=len(self._init),
                                               init=self._init)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(pe.w_read.addr), rd.en.eq(pe.w_read.en),
                     pe.w_read.data.eq(rd.data)]
        wiring.connect(m, wiring.flipped(self.i), pe.i)
        wiring.connect(m, pe.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.b_write), pe.b_write)
        return m


def _with_external_memory(pe, weights):
    return _ExternalWeights(pe, weights)


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
@given(seed=seeds, fill=fills, width=st.sampled_from([1, 8, 16]), words=st.integers(1, 3))
def test_event_encoder(seed, fill, width, words):
    rng = np.random.default_rng(seed)
    check(encoder_case(rng, width=width, words=words, fill=fill), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, lanes=st.sampled_from([1, 4, 8]), external=st.booleans())
def test_pe_array(seed, fill, lanes, external):
    rng = np.random.default_rng(seed)
    case = pe_case(rng, lanes=lanes, fill=fill, external=external)
    if external:
        case.dut = _with_external_memory(case.dut, case.info["weights"])
    check(case, seed)


@EXAMPLES
@given(seed=seeds, fill=fills, lanes=st.sampled_from([1, 4]), depth=st.integers(1, 4))
def test_lif(seed, fill, lanes, depth):
    rng = np.random.default_rng(seed)
    check(lif_case(rng, lanes=lanes, depth=depth, fill=fill), seed)


@EXAMPLES
@given(seed=seeds, fill=fills, mode=st.sampled_from(["lif", "or"]),
       shape=st.sampled_from([(8, 8), (16, 8), (32, 16)]), tokens=st.integers(1, 6))
def test_sdsa(seed, fill, mode, shape, tokens):
    rng = np.random.default_rng(seed)
    check(sdsa_case(rng, channels=shape[0], width=shape[1], tokens=tokens, mode=mode,
                    fill=fill), seed)


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
@pytest.mark.parametrize("fill", FILLS)
def test_event_encoder_cycles(fill):
    case = encoder_case(np.random.default_rng(1), width=16, rows=6, words=3, fill=fill)
    assert check(case, 0, stall=0.0) == case.info["cycles"] + 1


@pytest.mark.parametrize("name,build", [
    ("pe", lambda r: pe_case(r, groups=4)),
    ("sdsa", lambda r: sdsa_case(r, tokens=4)),
    ("spike_pool", lambda r: spike_pool_case(r, h=8, w=8)),
    ("int_pool", lambda r: int_pool_case(r, h=8, w=8)),
    ("residual", lambda r: residual_case(r, rows=10)),
])
def test_cycles(name, build):
    case = build(np.random.default_rng(2))
    assert check(case, 0, stall=0.0) == case.info["cycles"] + 1
