"""The SDSA stage (``hdl.sdsa_sequencer``) against the golden ``ops.sdsa_step`` over a memory."""

import dataclasses

import numpy as np
import pytest
from _stream import last_word_mask, set_fields
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.sdsa_sequencer import SDSASequencer
from sdtforge.sim import ops

W = 8
CFG = AccelConfig(lanes=4, width=W, sdsa_channels=24, max_tokens=16, coord_bits=2,
                  step_bits=2, word_bits=2, sdsa_shift=1)
MAP = 128             # rows per map in the harness memory: K, V, Q, then the output


class _Harness(Elaboratable):
    """The sequencer on a spike memory addressed ``base + ((t·H + y)·W + x)·words + word``."""

    def __init__(self, shape, init, config=CFG):
        self.seq = SDSASequencer(config)
        self._shape, self._init = shape, init
        self.mem = memory.Memory(shape=config.width, depth=4 * MAP, init=init)

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = s = self.seq
        m.submodules.mem = mem = self.mem
        _, h, w, words = self._shape
        rd, wr = mem.read_port(), mem.write_port()
        r, o = s.read, s.write
        m.d.comb += [
            rd.en.eq(r.en), rd.addr.eq(r.base + ((r.t * h + r.y) * w + r.x) * words + r.word),
            s.data.eq(rd.data),
            wr.en.eq(o.en), wr.addr.eq(3 * MAP + ((o.t * h + o.y) * w + o.x) * words + o.word),
            wr.data.eq(o.data),
        ]
        return m


def _words(bits, width=W):
    """A row of channel bits → its ``width``-bit words (channel c is bit c % width of word
    c // width)."""
    padded = np.zeros(-(-len(bits) // width) * width, np.int64)
    padded[:len(bits)] = bits
    return [int(sum(int(b) << i for i, b in enumerate(padded[j:j + width])))
            for j in range(0, len(padded), width)]


def _run(dut, layer, steps, n, words):
    """Run one layer on the harness: the output words ``[t][token][word]`` and the cycles
    from the start cycle (the controller's DECODE, counted with the decode) to ``done``."""
    s = dut.seq
    got, info = [], {}

    async def tb(ctx):
        set_fields(ctx, s.layer, layer)
        await ctx.tick()
        ctx.set(s.start, 1)
        cycles, dones = 0, 0
        while True:
            done = ctx.get(s.done)
            await ctx.tick()
            ctx.set(s.start, 0)
            cycles += 1
            dones += done
            if done:
                break
            assert cycles < 100_000
        for _ in range(5):          # done once; nothing written after it
            assert not ctx.get(s.done) and not ctx.get(s.write.en)
            await ctx.tick()
        info["cycles"] = cycles
        for t in range(steps):
            got.append([[ctx.get(dut.mem.data[3 * MAP + (t * n + tok) * words + j])
                         for j in range(words)] for tok in range(n)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got, info["cycles"]


@pytest.mark.parametrize("sdsa_or", [0, 1])
@pytest.mark.parametrize("seed", range(6))
def test_sdsa_sequencer_matches_golden(seed, sdsa_or):
    """Q ∧ mask in every output word (channels beyond ``cin`` zero although K, V and Q hold
    random bits there), the mask state kept across steps, and ``done`` after exactly the
    cycles the cycle model counts for the layer: with the mask neuron (``sdsa_or = 0``, any
    θ) ``W`` cycles per mask word, one of them under the first ``Q``; with the OR unit (θ = 1,
    the stateless OR at shift 1) one."""
    rng = np.random.default_rng(seed)
    steps, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    words = int(rng.integers(1, CFG.sdsa_channels // W + 1))
    cin = int(rng.integers((words - 1) * W + 1, words * W + 1))
    theta = 1 if sdsa_or else int(rng.integers(1, 6))
    n = h * w
    # Maps with random bits in every channel of the stored words (beyond cin too).
    raw = rng.integers(0, 2, size=(3, steps, n, words * W))
    init = [0] * (4 * MAP)
    for m_, base in enumerate((0, MAP, 2 * MAP)):
        for t in range(steps):
            for tok in range(n):
                for j, word in enumerate(_words(raw[m_, t, tok])):
                    init[base + (t * n + tok) * words + j] = word
    k, v, q = (raw[i][..., :cin] for i in range(3))
    want, vm = [], np.zeros(cin, np.int64)
    for t in range(steps):
        out, _, vm = ops.sdsa_step(q[t], k[t], v[t], vm, theta, CFG.sdsa_shift)
        want.append([_words(out[tok]) for tok in range(n)])
    layer = {"steps": steps, "words": words, "tokens_h": h, "tokens_w": w, "q_base": 2 * MAP,
             "k_base": 0, "v_base": MAP, "theta": theta,
             "lastmask": last_word_mask(cin, W)}
    dut = _Harness((steps, h, w, words), init, dataclasses.replace(CFG, sdsa_or=sdsa_or))
    got, cycles = _run(dut, layer, steps, n, words)
    assert got == want
    # From the start cycle (the controller's DECODE, counted with the decode) to done.
    mask = words if sdsa_or else words * W - 1
    assert cycles == 1 + steps * (6 * n * words + mask)


@pytest.mark.parametrize("width, head_channels, heads", [
    (8, 4, 3), (8, 8, 2), (8, 16, 2), (8, 24, 1), (16, 4, 2), (16, 16, 2), (16, 48, 1)])
@pytest.mark.parametrize("grid", [(1, 1), (1, 3), (3, 1), (3, 3), (2, 2)])
def test_dvs_erosions_match_golden(width, head_channels, heads, grid):
    """DVS mode (``erode``): ``K ∧ V`` and ``Q ∧ mask`` eroded over (token, channel within a
    head) as ``ops.sdsa_step(..., heads)``: heads inside a word, a word, two and three words;
    token grids of one row, one column, one token; channels beyond ``cin`` hold random bits
    and stay out; ``done`` after the cycles the cycle model counts (``sim.cycles``'
    ``sdsa_dvs`` handler)."""
    from sdtforge.sim.cycles import erode_positions

    W = width  # noqa: N806 (the module's word width, here per case)
    cfg = AccelConfig(lanes=4, width=W, sdsa_channels=48, max_tokens=16, coord_bits=2,
                      step_bits=2, word_bits=3, sdsa_shift=1, dvs_head_channels=head_channels)
    h, w = grid
    seed = h * 1000 + w * 100 + head_channels * W + heads
    cin = heads * head_channels
    words = -(-cin // W)
    rng = np.random.default_rng(seed)
    steps = 2
    theta = int(rng.integers(1, 4))
    n = h * w
    raw = (rng.random((3, steps, n, words * W)) < 0.2).astype(np.int64)
    init = [0] * (4 * MAP)
    for m_, base in enumerate((0, MAP, 2 * MAP)):
        for t in range(steps):
            for tok in range(n):
                for j, word in enumerate(_words(raw[m_, t, tok], W)):
                    init[base + (t * n + tok) * words + j] = word
    k, v, q = (raw[i][..., :cin] for i in range(3))
    want, vm = [], np.zeros(cin, np.int64)
    for t in range(steps):
        out, _, vm = ops.sdsa_step(q[t], k[t], v[t], vm, theta, 1, heads)
        want.append([_words(out[tok], W) for tok in range(n)])
    layer = {"steps": steps, "words": words, "tokens_h": h, "tokens_w": w, "q_base": 2 * MAP,
             "k_base": 0, "v_base": MAP, "theta": theta, "erode": 1,
             "lastmask": last_word_mask(cin, W)}
    dut = _Harness((steps, h, w, words), init, cfg)
    got, cycles = _run(dut, layer, steps, n, words)
    assert got == want
    pos = erode_positions(n, cin, heads, W)
    assert cycles == 1 + steps * (4 * n * words + 6 * pos + words * W - 2)
