"""The engine's shallow memories in ECP5 LUT RAM and iCE40 block RAM: the fit check's count and
Yosys' mapping."""

import dataclasses

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.boards.build import build_bitstream
from sdtforge.boards.targets import (
    BLOCK_COMMANDS,
    BOARDS,
    DISTRIBUTED_COMMANDS,
    DISTRIBUTED_ROWS,
    block_ram_usage,
    distributed_luts,
    plan_board,
)
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.ram import loader_filled
from sdtforge.hdl.synth import ecp5_stats, yosys_stats
from sdtforge.hdl.writeback import RowWriteBack, lif_membranes
from sdtforge.quantize.synthetic import random_model, tiny_config

#: Row bits of the test memory: a threshold row of 32 lanes of 18 bits, 16 DP16KD wide.
BITS = 576


class _Marked(wiring.Component):
    """A loader-filled ``rows`` × ``bits`` memory (one write, one read port), as the engine
    has."""

    def __init__(self, rows, bits=BITS):
        self._rows, self._bits = rows, bits
        super().__init__({"ra": In(range(rows)), "re": In(1), "wa": In(range(rows)),
                          "wd": In(bits), "we": In(1), "rd": Out(bits)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = loader_filled(memory.Memory(shape=self._bits, depth=self._rows,
                                                             init=[]))
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.addr.eq(self.wa), wr.data.eq(self.wd), wr.en.eq(self.we),
                     rd.addr.eq(self.ra), rd.en.eq(self.re), self.rd.eq(rd.data)]
        return m


@pytest.mark.parametrize("rows,lut_ram", [(32, True), (33, False), (56, False)])
def test_yosys_maps_the_marked_memories_as_the_fit_check_counts(rows, lut_ram):
    cells = ecp5_stats(_Marked(rows), DISTRIBUTED_COMMANDS["ecp5"])
    if lut_ram:
        # 16 rows x 4 bits per cell, no block RAM.
        assert cells.get("TRELLIS_DPR16X4") == -(-rows // 16) * BITS // 4
        assert "DP16KD" not in cells
    else:
        assert cells.get("DP16KD") == BITS // 36 and "TRELLIS_DPR16X4" not in cells
    # Without the commands Yosys chooses alike here (30 rows in LUT RAM, 56 in block RAM);
    # the commands make the bound the fit check's.
    if rows == 56:
        assert ecp5_stats(_Marked(rows)).get("DP16KD") == BITS // 36


def test_fit_check_counts_shallow_memories_in_lut_ram():
    cfg = AccelConfig(lanes=64, width=64, weights_depth=2048, biases_depth=30,
                      thresholds_depth=30, shifts_depth=30, stream_depth=64)
    usage = block_ram_usage(cfg, BOARDS["ulx3s-85f"])
    for name in ("biases", "thresholds", "shifts"):
        assert usage[name][2] == 0, name
    assert usage["weights"][2] > 0 and usage["stream"][2] > 0      # 64 rows: block RAM
    # The iCE40 has no LUT RAM: the same memories take block RAM there.
    ice = block_ram_usage(cfg, BOARDS["icebreaker"])
    assert all(ice[name][2] > 0 for name in ("biases", "thresholds", "stream"))
    # Their LUTs join the logic estimate: 3 per 16 x 4 cell and a 2:1 multiplexer per bit.
    rows_bits = [(cfg.depth(n), cfg.row_bits(n)) for n in ("biases", "thresholds", "shifts")]
    expected = sum(3 * -(-r // 16) * -(-b // 4) + (-(-r // 16) - 1) * b for r, b in rows_bits)
    assert distributed_luts(cfg, BOARDS["ulx3s-85f"]) == expected
    assert distributed_luts(cfg, BOARDS["icebreaker"]) == 0
    # One row more than the bound: block RAM again.
    deeper = dataclasses.replace(cfg, biases_depth=DISTRIBUTED_ROWS["ecp5"] + 1)
    assert block_ram_usage(deeper, BOARDS["ulx3s-85f"])["biases"][2] > 0


def test_plan_keeps_lut_ram_depths_exact():
    model = random_model(tiny_config(), seed=0)
    # 34 threshold rows at 16 lanes (block RAM), 19 at 32 (LUT RAM).
    deep = plan_board(model, BOARDS["ulx3s-85f"], lanes=16, width=16)
    assert deep.config.thresholds_depth == 512 and deep.usage["thresholds"][2] > 0
    # A block RAM memory is rounded up to whole blocks; one in LUT RAM keeps its depth (a
    # rounded one would be block RAM again).
    plan = plan_board(model, BOARDS["ulx3s-85f"], lanes=32, width=32)
    assert plan.config.thresholds_depth == 19 and plan.usage["thresholds"][2] == 0


def test_ice40_puts_the_marked_memories_in_block_ram():
    """Yosys maps a shallow memory to flip-flops on the iCE40 (5 rows x 26 bits: digits-tiny's
    logits at two lanes, where each bit took a logic cell); with the build's commands a marked
    one takes block RAM, the blocks the fit check counts."""
    def ffs(cells):
        return sum(n for c, n in cells.items() if c.startswith("SB_DFF"))

    plain = yosys_stats(_Marked(5, 26))["ice40"]
    assert "SB_RAM40_4K" not in plain and ffs(plain) >= 5 * 26
    blocked = yosys_stats(_Marked(5, 26), commands=BLOCK_COMMANDS["ice40"])["ice40"]
    assert blocked.get("SB_RAM40_4K") == 2 and ffs(blocked) < 26
    cfg = AccelConfig(lanes=2, width=16, weights_depth=64, logit_bits=13, logits_depth=5)
    assert block_ram_usage(cfg, BOARDS["icebreaker"])["logits"] == (5, 26, 2)
    assert block_ram_usage(cfg, BOARDS["ulx3s-85f"])["logits"][2] == 0      # LUT RAM there


def test_build_script_maps_them(tmp_path, monkeypatch):
    """The ECP5 build's Yosys script carries the LUT RAM commands, the iCE40's the block RAM
    ones."""
    seen = {}

    def fake_run(board, top, name, out_dir, overrides):
        seen[board.family] = overrides["script_after_read"]
        raise RuntimeError("stop")

    monkeypatch.setattr("sdtforge.boards.build._run_tools", fake_run)
    for board in ("ulx3s-85f", "icebreaker"):
        with pytest.raises(RuntimeError, match="stop"):
            build_bitstream(BOARDS[board], None, tmp_path / board, f_sync=25e6)
    assert DISTRIBUTED_COMMANDS["ecp5"][0] in seen["ecp5"]
    assert BLOCK_COMMANDS["ice40"][0] in seen["ice40"]
    assert '"distributed"' not in seen["ice40"] and '"block"' not in seen["ecp5"]


def test_lane_serial_write_back_memories_take_the_blocks_the_fit_check_counts():
    """The iCEBreaker's eight lanes with a one-lane write-back: the write-back's memories (the
    biases, the LIF's thresholds and its membrane rows, one per chunk) take the block RAMs the
    fit check counts for them. The membranes (8 rows of 21 bits) are an unmarked memory that
    Yosys puts in two blocks; the fit check once left them out (27 blocks estimated, 29 built)."""
    # (the fit check's limits lifted: the random model's maps are larger than digits-tiny's)
    roomy = dataclasses.replace(BOARDS["icebreaker"], brams=10**6, luts=10**9)
    cfg = plan_board(random_model(tiny_config(), seed=0), roomy, lanes=8).config
    assert cfg.writeback_cycles == 8 and cfg.writeback_bias
    rows, bits = lif_membranes(cfg)
    assert rows == 8 and bits == max(cfg.acc_bits, cfg.theta_bits)
    usage = block_ram_usage(cfg, roomy)
    counted = sum(usage[name][2] for name in ("biases", "thresholds", "lif membranes"))
    assert usage["lif membranes"][2] > 0
    cells = yosys_stats(RowWriteBack(cfg), commands=BLOCK_COMMANDS["ice40"])["ice40"]
    assert cells.get("SB_RAM40_4K") == counted
    # All lanes at once: the membranes are a register, no memory.
    assert lif_membranes(dataclasses.replace(cfg, writeback_cycles=1)) is None
