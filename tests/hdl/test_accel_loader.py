"""The load-stream parser (``hdl/accel_loader.py``) on its own: records written row by row, and
records that do not fit their memory refused with nothing written."""

import random

import pytest
from _stream import stream_put
from amaranth.sim import Simulator

from sdtforge.hdl.accel_isa import Target
from sdtforge.hdl.accel_loader import Loader
from sdtforge.hdl.compile import AccelConfig

CFG = AccelConfig(lanes=2, width=8, weight_bits=8, acc_bits=12, theta_bits=10, shift_bits=3,
                  program_depth=64, weights_depth=32, biases_depth=8, thresholds_depth=8,
                  shifts_depth=8, pixels_depth=16)
PORTS = ("program", "weights", "biases", "thresholds", "shifts", "pixels")


def _record(target, address, rows, count=None):
    """Header + rows of ``target`` (rows as ints, little-endian, whole bytes)."""
    name = PORTS[target]
    nbytes = (CFG.row_bits(name) + 7) // 8 if target < len(PORTS) else 1
    count = len(rows) if count is None else count
    out = bytes([target]) + address.to_bytes(4, "little") + count.to_bytes(4, "little")
    return out + b"".join(r.to_bytes(nbytes, "little") for r in rows)


def _run(stream, seed=0):
    """Feed ``stream``; return the writes ``[(memory, addr, data)]`` and the final idle/error."""
    dut = Loader(CFG)
    rng = random.Random(seed)
    writes, state = [], {}

    async def feed(ctx):
        ctx.set(dut.enable, 1)
        for byte in stream:
            await stream_put(ctx, dut.i, byte, rng)
        await ctx.tick().repeat(4)
        state["idle"], state["error"] = ctx.get(dut.idle), ctx.get(dut.error)

    async def watch(ctx):
        ports = [getattr(dut, n) for n in PORTS]
        signals = [x for p in ports for x in (p.en, p.addr, p.data)]
        async for _, _, *values in ctx.tick().sample(*signals):
            for k, name in enumerate(PORTS):
                en, addr, data = values[3 * k:3 * k + 3]
                if en:
                    writes.append((name, addr, data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(watch, background=True)
    sim.run()
    return writes, state


def test_records_are_written_row_by_row():
    weights = [0x1234, 0xBEEF, 0x0102]
    stream = (_record(Target.WEIGHTS.value, 29, weights)          # ends at the last row
              + _record(Target.BIASES.value, 0, [])                # an empty record is skipped
              + _record(Target.PIXELS.value, 15, [0xA5]))
    writes, state = _run(stream)
    assert writes == [("weights", 29 + i, w) for i, w in enumerate(weights)] + [
        ("pixels", 15, 0xA5)]
    assert state == {"idle": 1, "error": 0}


@pytest.mark.parametrize("header", [
    (Target.WEIGHTS.value, 30, 3),            # rows 30..32 of 32
    (Target.BIASES.value, 0, 9),              # 9 rows of 8
    (Target.PIXELS.value, 16, 1),             # the address is the depth
    (Target.WEIGHTS.value, 0, 2**32 - 1),     # the count the hang came from
    (Target.PROGRAM.value, 2**31, 1),         # an address far past the memory
    (Target.SHIFTS.value, 2**32 - 1, 2),      # address + count wraps at 32 bits
    (0x37, 0, 1),                             # no such memory
], ids=["past-end", "too-many", "address-at-depth", "huge-count", "huge-address", "wraps",
        "unknown-target"])
def test_a_record_that_does_not_fit_is_refused_whole(header):
    target, address, count = header
    good = _record(Target.WEIGHTS.value, 0, [7])
    bad = bytes([target]) + address.to_bytes(4, "little") + count.to_bytes(4, "little")
    # Whatever follows the refused header (rows, or a valid record) is taken and dropped.
    writes, state = _run(good + bad + bytes(range(12)) + good, seed=count & 0xFF)
    assert writes == [("weights", 0, 7)]
    assert state == {"idle": 0, "error": 1}
