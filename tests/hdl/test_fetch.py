"""The fetch stage (``hdl.fetch``) against a naive enumeration of each row's neighbourhood."""

import random

import pytest
from _stream import last_word_mask, set_fields, unpack
from amaranth.hdl import Elaboratable, Module, Mux, Value
from amaranth.lib import memory
from amaranth.sim import Simulator

from sdtforge.hdl.accel_isa import address_bits
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.fetch import NeighbourhoodFetch

CFG = AccelConfig(lanes=4, width=8, coord_bits=3, step_bits=2, group_bits=2, word_bits=2,
                  weights_depth=512)
PAD = 1 << 9          # the harness memory's pad rows (the pixel layer's zero points)


class _Harness(Elaboratable):
    """The fetch and a map memory addressed as ``((t·H + y)·W + x)·words + word``."""

    def __init__(self, shape, init):
        self.fetch = NeighbourhoodFetch(CFG)
        self._shape, self._init = shape, init

    def elaborate(self, platform):
        m = Module()
        m.submodules.fetch = f = self.fetch
        m.submodules.mem = mem = memory.Memory(shape=CFG.width, depth=len(self._init),
                                               init=self._init)
        rd = mem.read_port()
        _, h, w, words = self._shape
        r = f.read
        m.d.comb += [
            rd.en.eq(r.en),
            rd.addr.eq(Mux(r.oob, PAD + r.word, ((r.t * h + r.y) * w + r.x) * words + r.word)),
            f.data.eq(rd.data),
        ]
        return m


def expected(layer, at, maps, pad):
    """The words the fetch streams from row ``at`` on, as ``(data, word, last)``."""
    steps, h, w, words = layer["steps"], layer["in_h"], layer["in_w"], layer["words"]
    nest = [(g, y, x, t) for g in range(layer["groups"]) for y in range(layer["out_h"])
            for x in range(layer["out_w"]) for t in range(steps)]
    rows = nest[nest.index(at):] if layer["chain"] else [at]
    lastmask = layer["lastmask"]
    out = []
    for _, y, x, t in rows:
        taps = [(dy, dx) for dy in range(3) for dx in range(3)] if layer["k3"] else [(1, 1)]
        row = []
        for dy, dx in taps:
            iy, ix = y + dy - 1, x + dx - 1
            oob = not (0 <= iy < h and 0 <= ix < w)
            if oob and not layer["pixel"]:
                continue                    # a spike map's neighbourhood is clipped
            off = (3 * dy + dx) * layer["cin"] if layer["k3"] else 0
            for k in range(words):
                value = pad[k] if oob else maps[t][iy][ix][k]
                if k == words - 1:
                    value &= lastmask
                row.append([value, k | (off % (1 << address_bits(CFG.weights_depth)))
                            << CFG.word_bits, 0])
        row[-1][2] = 1
        out += [tuple(item) for item in row]
    return out


def run(layer, at, seed, stall):
    rng = random.Random(seed)
    h, w, words, steps = layer["in_h"], layer["in_w"], layer["words"], layer["steps"]
    maps = [[[[rng.getrandbits(CFG.width) for _ in range(words)] for _ in range(w)]
             for _ in range(h)] for _ in range(steps)]
    pad = [rng.getrandbits(CFG.width) for _ in range(words)]
    init = [0] * (PAD + words)
    for t in range(steps):
        for y in range(h):
            for x in range(w):
                for k in range(words):
                    init[((t * h + y) * w + x) * words + k] = maps[t][y][x][k]
    init[PAD:] = pad
    want = expected(layer, at, maps, pad)
    dut = _Harness((steps, h, w, words), init)
    f = dut.fetch
    got, cycles = [], {}

    async def tb(ctx):
        set_fields(ctx, f.layer, layer)
        set_fields(ctx, f.at, dict(zip("gyxt", at, strict=True)))
        await ctx.tick()
        ctx.set(f.start, 1)
        await ctx.tick()
        ctx.set(f.start, 0)
        n = 0
        while len(got) < len(want):
            ready = rng.random() >= stall
            ctx.set(f.o.ready, ready)
            valid, payload = ctx.get(f.o.valid), ctx.get(Value.cast(f.o.payload))
            await ctx.tick()
            n += 1
            if valid and ready:
                item = unpack(f.word_layout, payload)
                got.append((item["data"], item["word"], item["last"]))
        cycles["n"] = n
        ctx.set(f.o.ready, 1)
        for _ in range(4):          # nothing after the last word, and the fetch is idle
            assert not ctx.get(f.o.valid)
            await ctx.tick()
        assert not ctx.get(f.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return got, want, cycles["n"]


def _layer(rng, *, k3, pixel, chain):
    words = rng.randint(1, 3)
    cin = rng.randint((words - 1) * CFG.width + 1, words * CFG.width)
    in_h, in_w = rng.randint(1, 5), rng.randint(1, 5)
    return {"chain": chain, "pixel": pixel, "k3": k3, "cin": cin, "words": words,
            "in_h": in_h, "in_w": in_w, "out_h": in_h, "out_w": in_w,
            "steps": rng.randint(1, 2), "groups": rng.randint(1, 2),
            "lastmask": last_word_mask(cin, CFG.width)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k3,pixel,chain", [(1, 0, 1), (0, 0, 1), (1, 1, 0), (1, 0, 0)])
def test_fetch_matches_naive_neighbourhoods(k3, pixel, chain, seed):
    """Words, tap offsets, masks and row ends equal the naive enumeration, under back-pressure
    (chained CONV rows from the layer's start; single rows from a random position)."""
    rng = random.Random(seed * 7 + k3 * 2 + pixel)
    layer = _layer(rng, k3=k3, pixel=pixel, chain=chain)
    if chain:
        at = (0, 0, 0, 0)
    else:
        at = (rng.randrange(layer["groups"]), rng.randrange(layer["out_h"]),
              rng.randrange(layer["out_w"]), rng.randrange(layer["steps"]))
    got, want, _ = run(layer, at, seed, stall=0.3)
    assert got == want


@pytest.mark.parametrize("k3", [0, 1])
def test_fetch_streams_a_word_per_cycle(k3):
    """With a ready consumer, chained rows stream one word per cycle without gaps."""
    layer = _layer(random.Random(k3), k3=k3, pixel=0, chain=1)
    got, want, cycles = run(layer, (0, 0, 0, 0), 0, stall=0.0)
    assert got == want
    assert cycles == len(want) + 1      # the first word a cycle after its read
