"""``bench/memory_ports.py``: the registered-ports lowering of the timing what-if."""

import dataclasses

from _bench import load_bench
from amaranth.lib import memory
from amaranth.sim import Simulator


def _tool():
    return load_bench("memory_ports")


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_a_registered_read_answers_two_cycles_after_the_plain_one():
    mem = memory.Memory(shape=8, depth=16, init=[100 + i for i in range(16)])
    rd = mem.read_port()
    seen = []

    async def bench(ctx):
        ctx.set(rd.addr, 5)
        for _ in range(4):
            await ctx.tick()
            seen.append(ctx.get(rd.data))

    _run(_tool().RegisteredPorts(mem), bench)
    # The plain port has row 5 after one edge; here the address register takes it at the first,
    # the memory reads it at the second and the data register holds it from the third.
    assert seen[2:] == [105, 105]
    assert 105 not in seen[:2]


def test_a_registered_write_lands_a_cycle_later():
    mem = memory.Memory(shape=8, depth=16, init=[])
    wr, rd = mem.write_port(), mem.read_port()
    seen = []

    async def bench(ctx):
        ctx.set(wr.addr, 3)
        ctx.set(wr.data, 77)
        ctx.set(wr.en, 1)
        ctx.set(rd.addr, 3)
        await ctx.tick()
        ctx.set(wr.en, 0)
        seen.append(ctx.get(mem.data[3]))       # the plain port has written the row by now
        for _ in range(4):
            await ctx.tick()
            seen.append(ctx.get(mem.data[3]))
        seen.append(ctx.get(rd.data))

    _run(_tool().RegisteredPorts(mem), bench)
    assert seen[0] == 0 and seen[1:5] == [77] * 4
    assert seen[-1] == 77


def test_the_what_if_board_keeps_the_platform_and_lowers_memories_registered():
    from sdtforge.boards.targets import _import, get_board

    tool = _tool()
    board = get_board("ulx3s-85f")
    other = tool.registered_platform(board)
    base, platform = _import(board.platform_class), other.platform()
    assert isinstance(platform, base) and type(platform) is not base
    mem = memory.Memory(shape=8, depth=4, init=[])
    assert isinstance(platform.get_memory(mem), tool.RegisteredPorts)
    assert dataclasses.asdict(other) == dataclasses.asdict(board)


def test_a_placed_cell_is_named_by_what_it_implements():
    where = _tool().where
    assert where("core.accel.accel.ctrl.layer_state_TRELLIS_FF_Q_1") == \
        "core.accel.accel.ctrl.layer_state"
    assert where("core.accel.accel.xs.0.31") == "core.accel.accel.xs"
    assert where("core.accel.accel.cq.r_data_TRELLIS_FF_Q_43") == "core.accel.accel.cq.r_data"
    assert where("core.accel.accel.xs_r__addr_CCU2C_S1_4$CCU2_COMB0") == \
        "core.accel.accel.xs_r__addr"
