"""cocotb bench for the generated Verilog of any ``sdtforge.hdl`` unit.

The vectors (packed stream payloads, memory preloads, expected outputs from
``sdtforge.sim.ops``) come as JSON from ``test_units_cocotb.py`` through the
``SDTFORGE_VECTORS`` variable, as a list of phases run one after another on one build. The
driver and monitor stall valid and ready at random; the scoreboard is an exact comparison.
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge


def port(dut, name, member):
    return getattr(dut, f"{name}__{member}")


async def handshake(dut, valid, ready):
    """Wait until a rising edge at which ``valid`` and ``ready`` were both high."""
    while True:
        await ReadOnly()
        fire = int(valid.value) and int(ready.value)
        await RisingEdge(dut.clk)
        if fire:
            return


async def put(dut, name, items, rng, stall):
    valid, payload, ready = (port(dut, name, m) for m in ("valid", "payload", "ready"))
    for bits in items:
        while rng.random() < stall:
            await RisingEdge(dut.clk)
        valid.value = 1
        payload.value = bits
        await handshake(dut, valid, ready)
        valid.value = 0


async def get(dut, name, count, rng, stall, got):
    valid, payload, ready = (port(dut, name, m) for m in ("valid", "payload", "ready"))
    for _ in range(count):
        while rng.random() < stall:
            await RisingEdge(dut.clk)
        ready.value = 1
        while True:
            await ReadOnly()
            fire = int(valid.value)
            if fire:
                got.append(int(payload.value))
            await RisingEdge(dut.clk)
            if fire:
                break
        ready.value = 0


async def mem_write(dut, name, items):
    for addr, bits in items:
        port(dut, name, "addr").value = addr
        port(dut, name, "data").value = bits
        port(dut, name, "en").value = 1
        await RisingEdge(dut.clk)
    port(dut, name, "en").value = 0


@cocotb.test()
async def run_vectors(dut):
    phases = json.loads(open(os.environ["SDTFORGE_VECTORS"]).read())
    rng = random.Random(int(os.environ.get("SDTFORGE_SEED", "1")))
    stall = float(os.environ.get("SDTFORGE_STALL", "0.3"))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in {n for ph in phases for n in ph["inputs"]}:
        port(dut, name, "valid").value = 0
    for name in {n for ph in phases for n in ph["expected"]}:
        port(dut, name, "ready").value = 0
    for name, _ in [w for ph in phases for w in ph["writes"]]:
        port(dut, name, "en").value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for index, phase in enumerate(phases):
        for name, value in phase["statics"].items():
            getattr(dut, name).value = value
        for name, items in phase["writes"]:
            await mem_write(dut, name, items)
        got = {name: [] for name in phase["expected"]}
        tasks = [cocotb.start_soon(put(dut, n, items, random.Random(rng.random()), stall))
                 for n, items in phase["inputs"].items()]
        tasks += [cocotb.start_soon(get(dut, n, len(items), random.Random(rng.random()), stall,
                                        got[n]))
                  for n, items in phase["expected"].items()]
        for task in tasks:
            await task
        for name, expected in phase["expected"].items():
            assert got[name] == expected, f"phase {index}, port {name}"
        await RisingEdge(dut.clk)
