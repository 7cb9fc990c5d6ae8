"""Random test cases for the ``sdtforge.hdl`` units, checked against ``sdtforge.sim.ops``.

Each builder takes its parameters and a NumPy generator and returns a :class:`Case`: the unit,
the packed input payloads / memory writes it needs, and the packed outputs the integer spec
predicts. The Amaranth-simulator tests and the cocotb tests (on the generated Verilog) run the
same cases.
"""

from dataclasses import dataclass, field

import numpy as np
from _stream import pack
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.lif import LIFUnit
from sdtforge.hdl.pe_array import PEArray, PEOp
from sdtforge.hdl.pool import IntMaxPool, SpikeMaxPool
from sdtforge.hdl.residual import AlignAdd
from sdtforge.hdl.sdsa import SDSAOp, SDSAUnit
from sdtforge.hdl.weights import WeightMemory
from sdtforge.sim import ops

FILLS = ("random", "zeros", "ones")


@dataclass
class Case:
    dut: object
    inputs: dict
    expected: dict
    writes: list = field(default_factory=list)
    statics: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def to_json(self):
        return {"inputs": self.inputs, "expected": self.expected, "writes": self.writes,
                "statics": self.statics}


def spikes(rng, shape, fill="random", density=0.3):
    if fill == "zeros":
        return np.zeros(shape, np.uint8)
    if fill == "ones":
        return np.ones(shape, np.uint8)
    return (rng.random(shape) < density).astype(np.uint8)


def ints(rng, shape, width, fill="random"):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if fill == "zeros":
        return rng.choice([lo, hi], size=shape).astype(np.int64)  # extremes
    if fill == "ones":
        return np.full(shape, hi if rng.random() < 0.5 else lo, np.int64)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(np.int64)


def words_of(bits, width):
    """Pack a 0/1 vector (length a multiple of ``width``) into ``width``-bit ints."""
    bits = np.asarray(bits).reshape(-1, width)
    return [int(sum(int(b) << i for i, b in enumerate(row))) for row in bits]


def encoder_case(rng, width=8, rows=4, words=3, fill="random", density=0.3, events=1,
                 isolate_ahead=False):
    dut = EventEncoder(width, max(words - 1, 1).bit_length(), events=events,
                       isolate_ahead=isolate_ahead)
    s = spikes(rng, (rows, words * width), fill, density)
    if fill == "random":
        s[rng.random(rows) < 0.3] = 0   # whole empty rows
    ins, exp = [], []
    for row in s:
        for j, wd in enumerate(words_of(row, width)):
            ins.append(pack(dut.in_layout, {"data": wd, "word": j, "last": j == words - 1}))
        # The naive model: each word's active channels in order, ``events`` to an item; the
        # row's final item is marked last, and a marker item closes a row whose last word is
        # empty. (A second event's field holds the word's base where there is none.)
        items = []
        for j in range(words):
            active = [j * width + int(c) for c in np.flatnonzero(row[j * width:(j + 1) * width])]
            for k in range(0, len(active), events):
                pair = active[k:k + events]
                item = {"addr": pair[0], "none": 0}
                if events == 2:
                    item.update(addr1=pair[1] if len(pair) == 2 else j * width,
                                two=len(pair) == 2)
                items.append(item)
        last_word_empty = not row[(words - 1) * width:].any()
        for n, item in enumerate(items):
            last = (n == len(items) - 1) and not last_word_empty
            exp.append(pack(dut.out_layout, {**item, "last": last}))
        if last_word_empty:
            base = (words - 1) * width
            exp.append(pack(dut.out_layout, {"addr": base, "last": 1, "none": 1,
                                             **({"addr1": base, "two": 0} if events == 2
                                                else {})}))
    cycles = sum(max(-(-bin(w).count("1") // events), 1)
                 for row in s for w in words_of(row, width))
    return Case(dut, {"i": ins}, {"o": exp}, info={"cycles": cycles})


class LateRows(wiring.Component):
    """A one-row buffer that refuses rows in pseudo-random cycles (a 16-bit LFSR, about one
    cycle in four): rows reach the consumer late and the source sees back-pressure."""

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        full = Signal()
        row = Signal.like(self.o.payload)
        m.d.comb += [self.i.ready.eq((~full | self.o.ready) & ~(lfsr[0] & lfsr[1])),
                     self.o.valid.eq(full), self.o.payload.eq(row)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [full.eq(1), row.eq(self.i.payload)]
        with m.Elif(self.o.ready):
            m.d.sync += full.eq(0)
        return m


class PEWithWeights(wiring.Component):
    """A PE array and its weight source (:class:`~sdtforge.hdl.weights.WeightMemory`), with
    :class:`LateRows` between them when ``late``: the ports of a PE array that owns its
    weights (``i``, ``o``, ``b_write``, ``w_write``)."""

    def __init__(self, pe, weight_depth, late=False, events=1):
        self._pe = pe
        self._late = late
        self._source = WeightMemory(pe.weight_shape, weight_depth, events=events)
        members = {name: member for name, member in pe.signature.members.items()
                   if not name.startswith("w_")}
        members["w_write"] = self._source.signature.members["write"]
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.pe = pe = self._pe
        m.submodules.source = source = self._source
        wiring.connect(m, pe.w_req, source.req)
        if self._late:
            m.submodules.late = late = LateRows(pe.w_rsp.payload.shape())
            wiring.connect(m, source.rsp, late.i)
            wiring.connect(m, late.o, pe.w_rsp)
        else:
            wiring.connect(m, source.rsp, pe.w_rsp)
        wiring.connect(m, wiring.flipped(self.i), pe.i)
        wiring.connect(m, pe.o, wiring.flipped(self.o))
        if "b_write" in pe.signature.members:
            wiring.connect(m, wiring.flipped(self.b_write), pe.b_write)
        wiring.connect(m, wiring.flipped(self.w_write), source.write)
        return m


def pe_case(rng, lanes=4, inputs=12, groups=3, weight_width=8, fill="random", density=0.3,
            late=False, acc_width=None, bias=True, events=1, weight_latency=1):
    """PE commands over ``groups`` rows; ``bias=False``: the array without a bias memory, whose
    ``BIAS`` and ``last`` clear the accumulators (its biases are added after it); ``events =
    2``: a row's events two to a command (the last one alone where their count is odd);
    ``weight_latency = 2``: the array takes each weight row into a register before adding it."""
    w = ints(rng, (inputs, lanes), weight_width, "zeros" if fill == "ones" else "random")
    bias_width = weight_width + 4
    b = ints(rng, (groups, lanes), bias_width)
    if not bias:
        b = np.zeros_like(b)
    s = spikes(rng, (groups, inputs), fill, density)
    need = int(np.abs(w).sum(axis=0).max() + np.abs(b).max()).bit_length() + 1
    acc_width = need if acc_width is None else acc_width
    assert acc_width >= need
    pe = PEArray(lanes, acc_width, weight_width=weight_width,
                 bias_width=bias_width if bias else None, weight_depth=inputs,
                 bias_depth=groups, bias=bias, events=events, weight_latency=weight_latency)
    dut = PEWithWeights(pe, inputs, late=late, events=events)
    writes = [("w_write", [(k, pack(pe.weight_shape, [int(v) for v in w[k]]))
                           for k in range(inputs)])]
    if bias:
        writes.append(("b_write", [(g, pack(pe.bias_shape, [int(v) for v in b[g]]))
                                   for g in range(groups)]))
    with_bias = {"bias"} if bias else set()
    # A row (group g, bias row g) ends either with a DRAIN, the next row then starting with its
    # own BIAS (even g) or CLEAR (odd g), or with its last command flagged ``last`` (the last
    # ACC, or a DRAIN for a row without events), which loads the next row's bias itself.
    cmds, exp = [], []
    start = None            # the accumulators' start value when the previous row reloaded them
    for g in range(groups):
        active = [int(k) for k in np.flatnonzero(s[g])]
        # The commands' events: one each, or two (``addr``, ``addr1``, ``two``).
        items = [{"addr": active[k], **({"addr1": active[k + 1], "two": 1}
                                         if events == 2 and k + 1 < len(active) else {})}
                 for k in range(0, len(active), events)]
        if start is None:
            use_bias = g % 2 == 0
            cmds.append(pack(pe.cmd_layout, {"op": PEOp.BIAS if use_bias else PEOp.CLEAR,
                                             "addr": g}))
            start = b[g] if use_bias else np.zeros(lanes, np.int64)
        chain = g + 1 < groups and rng.random() < 0.5
        for k in items[:-1] if chain and items else items:
            cmds.append(pack(pe.cmd_layout, {"op": PEOp.ACC, **k}))
        tag = g
        if chain and items:
            tag = items[-1]["addr"]
            cmds.append(pack(pe.cmd_layout, {"op": PEOp.ACC, **items[-1], "last": 1,
                                             **dict.fromkeys(with_bias, g + 1)}))
        else:
            cmds.append(pack(pe.cmd_layout, {"op": PEOp.DRAIN, "addr": g, "last": int(chain),
                                             **dict.fromkeys(with_bias,
                                                             g + 1 if chain else 0)}))
        ref = ops.accumulate_events(s[g], w, start)
        exp.append(pack(pe.out_layout, {"acc": [int(v) for v in ref], "tag": tag}))
        start = b[g + 1] if chain else None
    return Case(dut, {"i": cmds}, {"o": exp}, writes=writes,
                info={"weights": w, "cycles": len(cmds)})


class LIFAhead(wiring.Component):
    """A :class:`LIFUnit` that reads its threshold rows a cycle ahead (``theta_ahead``), behind
    a register stage whose next value gives ``trow_ahead``, as the write-back's registers give
    the engine's: the same ports and results as a plain LIF, a cycle later."""

    def __init__(self, lanes, depth, in_width, **kwargs):
        self.lif = LIFUnit(lanes, depth, in_width, theta_ahead=True, **kwargs)
        self.in_layout = LIFUnit(lanes, depth, in_width, **kwargs).in_layout
        self.out_layout, self.theta_shape = self.lif.out_layout, self.lif.theta_shape
        super().__init__({"i": In(stream.Signature(self.in_layout)),
                          "o": Out(stream.Signature(self.out_layout)),
                          "theta_write": Out(self.lif.theta_write.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.lif = lif = self.lif
        r_valid, r = Signal(), Signal(self.in_layout)
        take = ~r_valid | lif.i.ready
        with m.If(take):
            m.d.sync += [r_valid.eq(self.i.valid), r.eq(self.i.payload)]
        m.d.comb += [self.i.ready.eq(take), lif.i.valid.eq(r_valid),
                     lif.trow_ahead.eq(Mux(take & self.i.valid, self.i.payload.trow, r.trow)),
                     *(lif.i.payload[k].eq(r[k]) for k in ("x", "row", "first", "tag"))]
        wiring.connect(m, wiring.flipped(self.o), lif.o)
        wiring.connect(m, wiring.flipped(self.theta_write), lif.theta_write)
        return m


def lif_case(rng, lanes=4, depth=3, steps=4, in_width=8, theta_width=6, fill="random",
             chunks=1, theta_ahead=False):
    """LIF rows in random order per step; a row of ``chunks · lanes`` thresholds is ``chunks``
    threshold-memory rows and each membrane row reads chunk ``row mod chunks`` of its row.
    ``theta_ahead``: the LIF reads its thresholds a cycle ahead (:class:`LIFAhead`)."""
    theta_rows = 2
    unit = LIFAhead if theta_ahead else LIFUnit
    dut = unit(lanes, depth, in_width, theta_width=theta_width,
               theta_depth=theta_rows * chunks, chunks=chunks)
    x = ints(rng, (steps, depth, lanes), in_width, fill)
    # Thresholds mostly well inside the input range, so neurons both fire and integrate.
    theta = rng.integers(-3, 1 << (theta_width - 2), size=(theta_rows, chunks * lanes),
                         endpoint=True)
    writes = [("theta_write", [(r * chunks + k, pack(dut.theta_shape, [
        int(v) for v in theta[r, k * lanes:(k + 1) * lanes]]))
        for r in range(theta_rows) for k in range(chunks)])]
    th = np.stack([theta[r % theta_rows, (r % chunks) * lanes:(r % chunks + 1) * lanes]
                   for r in range(depth)])
    ref = ops.lif_run(x, th)
    ins, exp = [], []
    for t in range(steps):
        order = rng.permutation(depth)
        for r in order:
            r = int(r)
            tag = (t * depth + r) & 0xFFFF
            ins.append(pack(dut.in_layout, {"x": [int(v) for v in x[t, r]], "row": r,
                                            "trow": r % theta_rows, "chunk": r % chunks,
                                            "first": t == 0, "tag": tag}))
            bits = sum(int(b) << lane for lane, b in enumerate(ref[t, r]))
            exp.append(pack(dut.out_layout, {"spikes": bits, "row": r, "tag": tag}))
    return Case(dut, {"i": ins}, {"o": exp}, writes=writes)


def sdsa_case(rng, channels=16, width=8, tokens=5, steps=3, mode="lif", theta=None,
              fill="random", density=0.4, shift=1, theta_width=8, masks=1):
    """SDSA time steps: KV per token and word, ``masks`` MASK sweeps of the row, Q per token.

    ``masks > 1`` repeats the mask update on the same counts (the spec applied that many
    times), so MASK commands on one word can follow each other back to back.
    """
    theta = int(rng.integers(1, 12)) if theta is None else theta
    dut = SDSAUnit(channels, width, tokens, mode=mode, theta_width=theta_width, shift=shift)
    nw = channels // width
    q, k, v = (spikes(rng, (steps, tokens, channels), fill, density) for _ in range(3))
    vm = np.zeros(channels, np.int64)
    ins, exp = [], []
    for t in range(steps):
        for _ in range(masks):
            if mode == "or":
                out, mask, _ = ops.sdsa_step(q[t], k[t], v[t], vm, theta=1, shift=1)
                assert (mask == (k[t] & v[t]).any(axis=0)).all()
            else:
                out, mask, vm = ops.sdsa_step(q[t], k[t], v[t], vm, theta=theta, shift=shift)
        for n in range(tokens):
            kw, vw = words_of(k[t, n], width), words_of(v[t, n], width)
            for j in range(nw):
                ins.append(pack(dut.in_layout, {"op": SDSAOp.KV, "word": j, "a": kw[j],
                                                "b": vw[j], "first": n == 0, "last": 0}))
        for r in range(masks):
            for j in range(nw):
                ins.append(pack(dut.in_layout, {"op": SDSAOp.MASK, "word": j, "a": 0, "b": 0,
                                                "first": t == 0 and r == 0, "last": 0}))
        for n in range(tokens):
            qw, ow = words_of(q[t, n], width), words_of(out[n], width)
            for j in range(nw):
                ins.append(pack(dut.in_layout, {"op": SDSAOp.Q, "word": j, "a": qw[j], "b": 0,
                                                "first": 0, "last": j == nw - 1}))
                exp.append(pack(dut.out_layout, {"data": ow[j], "word": j,
                                                 "last": j == nw - 1}))
    statics = {"theta": theta} if mode == "lif" else {}
    # Back to back: KV and Q take a cycle per word; a MASK takes `width` cycles in "lif" mode
    # (one mask neuron per cycle), 1 in "or" mode.
    mask_cycles = width if mode == "lif" else 1
    return Case(dut, {"i": ins}, {"o": exp}, statics=statics,
                info={"cycles": steps * (2 * tokens + masks * mask_cycles) * nw})


def _windows(h, w):
    for oy in range((h - 1) // 2 + 1):
        for ox in range((w - 1) // 2 + 1):
            yield oy, ox, [(y, x) for y in range(2 * oy - 1, 2 * oy + 2)
                           for x in range(2 * ox - 1, 2 * ox + 2) if 0 <= y < h and 0 <= x < w]


def spike_pool_case(rng, width=8, h=5, w=6, fill="random", density=0.15):
    dut = SpikeMaxPool(width)
    s = spikes(rng, (width, h, w), fill, density)
    ref = ops.spike_maxpool(s)
    ins, exp = [], []
    for oy, ox, win in _windows(h, w):
        for n, (y, x) in enumerate(win):
            ins.append(pack(dut.in_layout, {"data": words_of(s[:, y, x], width)[0],
                                            "first": n == 0, "last": n == len(win) - 1}))
        exp.append(pack(dut.out_layout, {"data": words_of(ref[:, oy, ox], width)[0]}))
    return Case(dut, {"i": ins}, {"o": exp}, info={"cycles": len(ins)})


def int_pool_case(rng, lanes=4, value_width=10, h=5, w=6, fill="random"):
    dut = IntMaxPool(lanes, value_width)
    xv = ints(rng, (lanes, h, w), value_width, fill)
    ref = ops.int_maxpool(xv)
    ins, exp = [], []
    for oy, ox, win in _windows(h, w):
        for n, (y, x) in enumerate(win):
            ins.append(pack(dut.in_layout, {"data": [int(v) for v in xv[:, y, x]],
                                            "first": n == 0, "last": n == len(win) - 1}))
        exp.append(pack(dut.out_layout, {"data": [int(v) for v in ref[:, oy, ox]]}))
    return Case(dut, {"i": ins}, {"o": exp}, info={"cycles": len(ins)})


def residual_case(rng, lanes=4, stream_width=12, acc_width=8, max_shift=3, rows=6,
                  fill="random"):
    out_width = max(stream_width, acc_width + max_shift) + 1
    dut = AlignAdd(lanes, stream_width, acc_width, max_shift, out_width=out_width)
    st = ints(rng, (rows, lanes), stream_width, fill)
    ac = ints(rng, (rows, lanes), acc_width, fill)
    sh = rng.integers(0, max_shift, size=(rows, lanes), endpoint=True)
    ref = ops.align_add(st, ac, sh)
    ins = [pack(dut.in_layout, {"stream": [int(v) for v in st[r]], "acc": [int(v) for v in ac[r]],
                                "shift": [int(v) for v in sh[r]]}) for r in range(rows)]
    exp = [pack(dut.out_layout, {"sum": [int(v) for v in ref[r]]}) for r in range(rows)]
    return Case(dut, {"i": ins}, {"o": exp}, info={"cycles": rows})
