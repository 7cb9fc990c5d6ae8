"""``hdl.dram_weights.DRAMWeights`` against a model of LiteDRAM's native port.

The port model takes commands at random, pulses ``wdata.ready`` one to three cycles after each
write command (in order) and stores the word it sees then, and answers each read command with
its word ``latency`` or more cycles later (in order), without back-pressure, as the LiteDRAM
core does. The source must write every row where the reads find it, return the requested rows
in order whatever the stalls, and never have more reads in flight than its queue holds (a
word the queue could not take would be lost and shift every later row).
"""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from sdtforge.hdl.dram_weights import DRAMWeights

WORD = 16


def _run(lanes, depth, *, latency, queue, stall, seed, base=0):
    rng = np.random.default_rng(seed)
    shape = data.ArrayLayout(signed(8), lanes)
    dut = DRAMWeights(shape, depth, word_bits=WORD, addr_bits=12, base=base, queue=queue)
    rows = {r: [int(v) for v in rng.integers(-128, 128, lanes)] for r in range(depth)}
    requests = [int(r) for r in rng.integers(0, depth, 40)]
    mem, got, issued_words = {}, [], []
    port = dut.port

    async def tb(ctx):
        to_write = list(rows)
        wqueue, rqueue = [], []          # (due cycle, address) of writes / reads in flight
        pending = list(requests)
        for cycle in range(20000):
            # -- inputs of this cycle ---------------------------------------------------------
            ctx.set(port.cmd.ready, bool(rng.random() >= stall))
            w_due = bool(wqueue) and wqueue[0][0] <= cycle
            ctx.set(port.wdata.ready, w_due)
            r_due = bool(rqueue) and rqueue[0][0] <= cycle
            ctx.set(port.rdata.valid, r_due)
            ctx.set(port.rdata.payload, mem.get(rqueue[0][1], 0) if r_due else 0)
            ctx.set(dut.rsp.ready, bool(rng.random() >= stall))
            writing = bool(to_write) and not ctx.get(dut.write_busy)
            ctx.set(dut.write.en, writing)
            if writing:
                ctx.set(dut.write.addr, to_write[0])
                ctx.set(dut.write.data, rows[to_write[0]])
            loading = bool(to_write) or ctx.get(dut.write_busy) or wqueue
            ctx.set(dut.req.valid, bool(pending) and not loading)
            ctx.set(dut.req.payload, pending[0] if pending else 0)
            # -- the port's and the consumer's view ----------------------------------------
            if w_due:
                assert ctx.get(port.wdata.payload.we) == (1 << WORD // 8) - 1
                mem[wqueue.pop(0)[1]] = ctx.get(port.wdata.payload.data)
            if r_due:
                rqueue.pop(0)
            if ctx.get(port.cmd.valid) and ctx.get(port.cmd.ready):
                addr = ctx.get(port.cmd.payload.addr)
                if ctx.get(port.cmd.payload.we):
                    last = wqueue[-1][0] if wqueue else cycle
                    wqueue.append((max(last + 1, cycle + int(rng.integers(1, 4))), addr))
                else:
                    last = rqueue[-1][0] if rqueue else cycle
                    rqueue.append((max(last + 1, cycle + latency + int(rng.integers(0, 3))),
                                   addr))
                    issued_words.append(addr)
            if writing:
                to_write.pop(0)
            if ctx.get(dut.req.valid) and ctx.get(dut.req.ready):
                pending.pop(0)
            if ctx.get(dut.rsp.valid) and ctx.get(dut.rsp.ready):
                got.append([ctx.get(dut.rsp.payload[i]) for i in range(lanes)])
            await ctx.tick()
            if len(got) == len(requests):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return dut, rows, requests, got, mem, issued_words


@pytest.mark.parametrize(("lanes", "latency", "queue", "stall", "base"), [
    (4, 3, 16, 0.0, 0),        # 2 words a row, no stalls
    (3, 6, 8, 0.3, 64),        # 24-bit rows padded to 2 words, from word 64
    (5, 20, 4, 0.5, 0),        # 3 words a row (stride 4), a long latency, a small queue
    (1, 9, 2, 0.2, 8),         # one word a row
])
def test_rows_come_back_in_order(lanes, latency, queue, stall, base):
    dut, rows, requests, got, mem, issued = _run(lanes, 24, latency=latency, queue=queue,
                                                stall=stall, seed=lanes * 7 + queue, base=base)
    assert got == [rows[r] for r in requests]
    n, stride = dut.words_per_row
    assert n == -(-8 * lanes // WORD) and stride >= n and stride & (stride - 1) == 0
    # Each row was written to its n words at base + row·stride, lowest word first.
    for r, values in rows.items():
        packed = sum((v & 0xFF) << (8 * i) for i, v in enumerate(values))
        words = [mem[base + r * stride + j] for j in range(n)]
        assert sum(w << (WORD * j) for j, w in enumerate(words)) == packed
    # Every request read exactly its row's words, in order.
    assert issued == [base + r * stride + j for r in requests for j in range(n)]


def test_rows_that_do_not_fit_the_address_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        DRAMWeights(data.ArrayLayout(signed(8), 4), 4096, word_bits=16, addr_bits=12)
    with pytest.raises(ValueError, match="multiple of 8"):
        DRAMWeights(data.ArrayLayout(signed(8), 4), 16, word_bits=12)
