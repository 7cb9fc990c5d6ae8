"""Board tops: PLL settings, SPRAM model, ``do_build=False`` smoke builds, the fit check and its
refusals, the ASIC estimate; real tool runs are ``slow``."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.hdl import signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from sdtforge.boards.pll import ecp5_phase, ecp5_pll, ice40_pll
from sdtforge.boards.spram import SPRAMWeights
from sdtforge.boards.targets import BOARDS, plan_board
from sdtforge.cli import main
from sdtforge.errors import UserError
from sdtforge.hdl.compile import AccelConfig, compile_model
from sdtforge.hdl.result import RESULT_LAYOUT
from sdtforge.hdl.weights import dual_port_column
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import random_model, tiny_config
from sdtforge.sim.toolchain import setup_yowasp

SMALL = tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3)


def test_ecp5_lagging_output():
    """CLKOS: CLKOP's divider, the lag in eighths of a VCO cycle above CLKOP's phase."""
    p = ecp5_pll(25e6, 46.875e6)                       # CLKOP_DIV 9, CPHASE 4
    assert ecp5_phase(p, 0) == {"CLKOS_DIV": 9, "CLKOS_CPHASE": 4, "CLKOS_FPHASE": 0}
    assert ecp5_phase(p, 90) == {"CLKOS_DIV": 9, "CLKOS_CPHASE": 6, "CLKOS_FPHASE": 2}
    q = ecp5_pll(25e6, 50e6)                           # CLKOP_DIV 8
    assert ecp5_phase(q, 180)["CLKOS_CPHASE"] == q.params["CLKOP_CPHASE"] + 4


def test_pll_settings():
    p = ice40_pll(12e6, 30e6)
    assert p.f_out == 30e6 and p.params == {"DIVR": 0, "DIVF": 79, "DIVQ": 5, "FILTER_RANGE": 1}
    p = ecp5_pll(25e6, 80e6)
    assert p.f_out == 80e6
    assert 400e6 <= p.f_out * p.params["CLKOP_DIV"] <= 800e6
    assert ice40_pll(12e6, 31e6).f_out <= 31e6   # never faster than requested
    with pytest.raises(ValueError, match="no iCE40 PLL setting reaches 1 MHz"):
        ice40_pll(12e6, 1e6)


def test_spram_model_timing():
    dut = SPRAMWeights(data.ArrayLayout(signed(8), 8), 64)

    async def tb(ctx):
        for addr in range(4):
            ctx.set(dut.write.addr, addr)
            ctx.set(dut.write.data, [addr - 2] * 8)
            ctx.set(dut.write.en, 1)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.read.addr, 3)
        ctx.set(dut.read.en, 1)
        await ctx.tick()
        assert list(ctx.get(dut.read.data)) == [1] * 8
        ctx.set(dut.read.addr, 0)
        ctx.set(dut.read.en, 0)   # data holds while en is low
        await ctx.tick()
        assert list(ctx.get(dut.read.data)) == [1] * 8

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    with pytest.raises(ValueError, match="SPRAM weight row must be 1 to 64 bits wide, not 72"):
        SPRAMWeights(72, 16)


class _BehaviouralBlock(Elaboratable):
    """An ``SB_SPRAM256KA`` stand-in on the given signals: 16K × 16, registered read, output
    held while deselected."""

    def __init__(self, *, address, datain, wren, chipselect, dataout):
        self.ports = address, datain, wren, chipselect, dataout

    def elaborate(self, platform):
        address, datain, wren, chipselect, dataout = self.ports
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=16, depth=16384, init=[])
        wr, rd = mem.write_port(), mem.read_port(transparent_for=())
        m.d.comb += [wr.addr.eq(address), wr.data.eq(datain), wr.en.eq(chipselect & wren),
                     rd.addr.eq(address), rd.en.eq(chipselect & ~wren), dataout.eq(rd.data)]
        return m


class _BankedWeights(SPRAMWeights):
    """The hardware path of ``SPRAMWeights`` (banks, selects) with behavioural blocks."""

    def _block(self, **ports):
        return _BehaviouralBlock(**ports)

    def elaborate(self, platform):
        return super().elaborate("hardware")


async def _write_rows(ctx, dut, values):
    """Write ``values`` (address → row) through ``dut.write``, a row per cycle."""
    for a, value in values.items():
        ctx.set(dut.write.addr, a)
        ctx.set(dut.write.data, value)
        ctx.set(dut.write.en, 1)
        await ctx.tick()
    ctx.set(dut.write.en, 0)


def _simulate(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("rows, shape", [(3 * 16384 - 5, 8), (2 * 16384, 32), (100, 64)])
def test_spram_banks_hardware_path(rows, shape):
    """Banks of 16K rows and blocks side by side: each row reads back, data holds while the
    read enable is low, whichever bank the held row is in."""
    dut = _BankedWeights(shape, rows)
    assert dut.blocks == -(-shape // 16) * -(-rows // 16384)
    rng = np.random.default_rng(rows)
    addrs = sorted({0, rows - 1, 16383 % rows, 16384 % rows,
                    *(int(a) for a in rng.integers(0, rows, 12))})
    values = {a: int.from_bytes(rng.bytes(8), "little") % (1 << shape) for a in addrs}

    async def tb(ctx):
        await _write_rows(ctx, dut, values)
        for a in list(reversed(addrs)) + addrs:
            ctx.set(dut.read.addr, a)
            ctx.set(dut.read.en, 1)
            await ctx.tick()
            assert ctx.get(dut.read.data) == values[a]
            other = addrs[(addrs.index(a) + 1) % len(addrs)]
            ctx.set(dut.read.addr, other)
            ctx.set(dut.read.en, 0)
            await ctx.tick()
            assert ctx.get(dut.read.data) == values[a]

    _simulate(dut, tb)
    with pytest.raises(ValueError, match="need 5 SPRAM blocks; the UP5K has 4"):
        SPRAMWeights(8, 5 * 16384)


@pytest.mark.parametrize("rows, shape", [(100, 32), (16384 + 7, 16)])
def test_spram_copies_hardware_path(rows, shape):
    """Two read ports over two copies of the rows: a write goes to both, each port reads its
    own address (in any bank) and holds its data while its enable is low."""
    dut = _BankedWeights(shape, rows, events=2)
    assert dut.blocks == 4
    rng = np.random.default_rng(shape)
    addrs = sorted({0, rows - 1, *(int(a) for a in rng.integers(0, rows, 10))})
    values = {a: int(rng.integers(0, 1 << shape)) for a in addrs}

    async def tb(ctx):
        await _write_rows(ctx, dut, values)
        for a, b in zip(addrs, reversed(addrs), strict=True):
            ctx.set(dut.read.addr, a)
            ctx.set(dut.read1.addr, b)
            ctx.set(dut.read.en, 1)
            ctx.set(dut.read1.en, 1)
            await ctx.tick()
            assert (ctx.get(dut.read.data), ctx.get(dut.read1.data)) == (values[a], values[b])
            # The second port reads on while the first holds.
            ctx.set(dut.read.en, 0)
            ctx.set(dut.read.addr, b)
            ctx.set(dut.read1.addr, a)
            await ctx.tick()
            assert (ctx.get(dut.read.data), ctx.get(dut.read1.data)) == (values[a], values[a])

    _simulate(dut, tb)
    with pytest.raises(ValueError, match="16385 rows of 32 bits in 2 copies need 8 SPRAM"):
        SPRAMWeights(32, 16385, events=2)


def _top(board, lanes, width, accelerator=None, events=1):
    compiled = compile_model(random_model(SMALL, seed=1), lanes=lanes, width=width,
                             events=events)
    cfg = compiled.config
    if board.spram_weights:
        cfg = dataclasses.replace(cfg, external_weights=True, weights_depth=16384)
    return board.top(cfg, image_bytes=16, num_classes=3, accelerator=accelerator)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_board_smoke_do_build_false(name, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFPGALOADER", "true")
    setup_yowasp(dict(os.environ))
    board = BOARDS[name]
    plan = board.platform().build(_top(board, 2, 8), name="top", build_dir=str(tmp_path),
                                  do_build=False)
    files = plan.files
    text = files["top.il"]
    assert "SB_PLL40_PAD" in text if name == "icebreaker" else "EHXPLLL" in text
    assert ("SB_SPRAM256KA" in text) == (name == "icebreaker")
    assert "nextpnr" in files["build_top.sh"]


def test_icebreaker_top_with_two_spram_copies(tmp_path, monkeypatch):
    """Two events per command on the iCEBreaker: the platform's top instantiates the SPRAM
    blocks of both copies (2 lanes of 8-bit weights: one block a copy)."""
    monkeypatch.setenv("OPENFPGALOADER", "true")
    setup_yowasp(dict(os.environ))
    board = BOARDS["icebreaker"]
    plan = board.platform().build(_top(board, 2, 8, events=2), name="top",
                                  build_dir=str(tmp_path), do_build=False)
    text = plan.files["top.il"]
    assert text.count("SB_SPRAM256KA") == 2 and "spram_1" in text


def test_the_sdram_engine_takes_two_events_only_through_the_prefetch():
    from sdtforge.boards.sdram_engine import SDRAMEngine

    with pytest.raises(ValueError, match="two events per command need the tile prefetch "
                                         r"\(tile_rows\): the plain path reads one row per "
                                         "request, events must be 1, not 2"):
        SDRAMEngine(AccelConfig(events=2, external_weights=True))
    engine = SDRAMEngine(AccelConfig(events=2, external_weights=True, weight_tile_rows=64),
                         tile_rows=64)
    assert engine.prefetch is not None


def test_ulx3s_sdram_top_do_build_false(tmp_path, monkeypatch):
    """``--sdram``: the engine with the tile prefetch, the weight source and a LiteDRAM
    controller generated for the PLL's clock, on the board's SDRAM pins, the SDRAM clock from
    the PLL's second output."""
    monkeypatch.setenv("OPENFPGALOADER", "true")
    setup_yowasp(dict(os.environ))
    board = BOARDS["ulx3s-85f"]
    plan = plan_board(random_model(SMALL, seed=1), board, lanes=2, width=8, sdram=True)
    top = board.top(plan.config, image_bytes=16, num_classes=3)
    files = board.platform().build(top, name="top", build_dir=str(tmp_path),
                                   do_build=False).files
    text = files["top.il"]
    assert "CLKOS_ENABLE" in text and "sdram_ps" in text and "prefetch" in text
    # The controller was generated for the built clock (its refresh interval follows it).
    assert f"--sys-clk-freq {round(top.f_sync)} " in files["sdram_ulx3s.v"].splitlines()[0]
    for pin in ("clk", "clk_en", "cs", "we", "ras", "cas", "dq"):
        assert f'LOCATE COMP "sdram_0__{pin}__io' in files["top.lpf"]


def test_refusals_before_synthesis(tmp_path, capsys):
    # D = 16: 8 lanes fit the iCEBreaker (its default), 16 do not (weight rows).
    model = random_model(tiny_config(embed_dims=16), seed=2)
    with pytest.raises(UserError, match=r"16 lanes of 8-bit weights need 128-bit weight rows, "
                                        r"8 SPRAM blocks side by side, but the icebreaker has 4"):
        plan_board(model, BOARDS["icebreaker"], lanes=16, width=16)
    # Its block RAM fits at 8 lanes (one-chunk bias and threshold rows), and its logic.
    plan = plan_board(model, BOARDS["icebreaker"])
    assert (plan.config.lanes, plan.config.writeback_cycles) == (8, 8)
    assert plan.luts_estimate <= 5280
    # The block RAM refusal says when no lane count helps (the parameter rows are a chunk wide,
    # so a model's block RAM hardly depends on the lanes; the ULX3S's "it fits at --lanes …
    # with --sdram" is below): D = 48's stream alone takes 19 blocks.
    wide = random_model(tiny_config(embed_dims=48), seed=2)
    with pytest.raises(UserError, match=r"needs 41 SB_RAM40_4K block RAMs but the icebreaker "
                                        r"has 30 \(largest: stream.*\); no lane count at W = 16 "
                                        r"fits \(the stream alone take 19 blocks\)"):
        plan_board(wide, BOARDS["icebreaker"], lanes=4)
    # With the serial mask neuron (a mask membrane) the logic estimate is 459 LC more: 8 lanes
    # are refused for logic.
    neuron = random_model(tiny_config(embed_dims=16), seed=2, mask_theta=2)
    with pytest.raises(UserError, match=r"the accelerator at 8 lanes needs about \d+ logic cells "
                                        r"but the icebreaker has 5280; use fewer lanes"):
        plan_board(neuron, BOARDS["icebreaker"], lanes=8)
    assert plan_board(neuron, BOARDS["icebreaker"], lanes=2).config.lanes == 2
    with pytest.raises(UserError, match="must not exceed the word width"):
        plan_board(model, BOARDS["ulx3s-85f"], lanes=32, width=16)
    path = tmp_path / "m.sfm"
    ir.save(neuron, path)
    assert main(["build", str(path), "--board", "icebreaker", "--lanes", "8",
                 "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sdtforge build: error: the accelerator at 8 lanes needs about")
    assert "\n" not in err
    assert not (tmp_path / "b").exists()   # refused before anything was built


def test_block_ram_refusal_names_the_sdram():
    """A model whose weights alone are over the board's block RAM at every lane count is not
    told to use fewer lanes: on the ULX3S it is told to put them in the SDRAM (where the tile
    prefetch's window is all that stays on chip), and a model over even that is told to be
    smaller."""
    model = random_model(tiny_config(embed_dims=256, depths=1), seed=1)
    with pytest.raises(UserError, match=r"needs \d+ DP16KD block RAMs but the ulx3s-85f has 208 "
                                        r"\(largest: weights, .*\); it fits with the weights in "
                                        r"the board's SDRAM \(--sdram\)$"):
        plan_board(model, BOARDS["ulx3s-85f"])
    plan = plan_board(model, BOARDS["ulx3s-85f"], sdram=True)
    assert plan.config.external_weights and plan.usage["weights"][2] == 0
    # The prefetch is built for the model's largest tile; a model with larger tiles is refused
    # for that configuration (it would be served wrong rows).
    assert plan.config.weight_tile_rows == plan.sdram_tiles > 0
    with pytest.raises(UserError, match=r"the model's largest weight tile has \d+ rows but the "
                                        r"hardware's tile prefetch holds tiles of up to 1;"):
        compile_model(model, dataclasses.replace(plan.config, weight_tile_rows=1))
    rows, bits, blocks = plan.usage["weight window"]
    assert rows >= 2 * plan.sdram_tiles and rows & (rows - 1) == 0 and blocks > 0
    assert plan.brams <= 208
    big = random_model(tiny_config(embed_dims=512, depths=2, img_size=[16, 16]), seed=1)
    with pytest.raises(UserError, match=r"no lane count at W = 32 fits even with --sdram "
                                        r"\(the .* alone take \d+ blocks\); use a smaller model "
                                        r"or a board with more block RAM$"):
        plan_board(big, BOARDS["ulx3s-85f"], sdram=True)
    with pytest.raises(UserError, match="the icebreaker has no SDRAM for the weights; drop "
                                        "--sdram"):
        plan_board(model, BOARDS["icebreaker"], sdram=True)


def test_sdram_window_shrinks_to_one_tile_where_block_ram_is_short():
    """The prefetch's window is the double buffer where the board has the block RAM for it,
    else the smallest power of two holding one tile (the configuration's ``weight_window``,
    which the engine, the co-simulation and the cycle model then use)."""
    from sdtforge.hdl.weight_tiles import prefetch_window, single_window, window_rows

    model = random_model(tiny_config(embed_dims=256, depths=1), seed=1)
    board = BOARDS["ulx3s-85f"]
    double = plan_board(model, board, sdram=True, _compile=False)
    tiles = double.sdram_tiles
    assert double.config.weight_window == 0
    assert (double.usage["weight window"][0] == prefetch_window(tiles)
            == window_rows(tiles, double.config))
    assert tiles <= single_window(tiles) < prefetch_window(tiles)
    short = dataclasses.replace(board, brams=double.brams - 1)
    plan = plan_board(model, short, sdram=True, _compile=False)
    assert plan.config.weight_window == single_window(tiles) == plan.usage["weight window"][0]
    assert window_rows(tiles, plan.config) == single_window(tiles) and plan.brams <= short.brams
    with pytest.raises(UserError, match=r"needs \d+ DP16KD block RAMs but the ulx3s-85f has 1 "):
        plan_board(model, dataclasses.replace(board, brams=1), sdram=True, _advise=False)
    # The configuration refuses a window that cannot hold a tile or is not a power of two.
    for bad in (tiles // 2, single_window(tiles) + 1):
        with pytest.raises(UserError, match="weight_window must be 0 or a power of two"):
            dataclasses.replace(plan.config, weight_window=bad)
    with pytest.raises(UserError, match="weight_window must be 0 or a power of two"):
        dataclasses.replace(plan.config, weight_tile_rows=0)


def test_spram_refusal_does_not_advise_fewer_lanes():
    """The weights' bits are the same at any lane count, so a model over the SPRAM is told
    to be smaller, at one lane as at more."""
    model = random_model(tiny_config(embed_dims=128, depths=2), seed=1)
    for lanes in (1, 4):
        with pytest.raises(UserError, match=r"weight rows of \d+ bits, \d+ SPRAM blocks, but "
                                            r"the icebreaker has 4 \(\d+ rows of \d+ bits\); "
                                            r"use a smaller model or a board with more memory$"):
            plan_board(model, BOARDS["icebreaker"], lanes=lanes)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_the_logic_estimate_counts_the_sdsa_unit_the_model_needs(board):
    """An OR-mask model plans the OR unit (``sdsa_or``), one with a mask membrane the serial
    neuron, whose logic the estimate adds."""
    config = tiny_config(embed_dims=16)
    plans = [plan_board(random_model(config, seed=2, mask_theta=theta), BOARDS[board], lanes=1,
                        width=16) for theta in (1, 2)]
    assert [p.config.sdsa_or for p in plans] == [1, 0]
    assert plans[1].luts_estimate > plans[0].luts_estimate


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_the_logic_estimate_counts_the_pool_stage_the_model_needs(board):
    """A model with a pooled spiking conv plans the POOL_OR stage (``pool_or``), whose logic
    the estimate adds; one without, as every shipped model, does not."""
    plans = [plan_board(random_model(tiny_config(embed_dims=16, pooling_stat=pooling), seed=2),
                        BOARDS[board], lanes=1, width=16) for pooling in ("0001", "1001")]
    assert [p.config.pool_or for p in plans] == [0, 1]
    assert plans[1].luts_estimate > plans[0].luts_estimate


def test_ulx3s_plan_digits_small_fits():
    model = random_model(tiny_config(embed_dims=64, depths=2), seed=1)
    plan = plan_board(model, BOARDS["ulx3s-85f"])
    assert plan.brams <= 208 and (plan.config.lanes, plan.config.width) == (32, 32)
    assert plan.config.weights_depth >= plan.compiled.needed["weights"]
    # Two events per command: the weights in columns one DP16KD deep, read on both ports.
    assert plan.config.events == 2
    rows, bits, blocks = plan.usage["weights"]
    assert blocks == -(-bits // dual_port_column(rows)[0]) * dual_port_column(rows)[1]


@pytest.mark.parametrize("board,sdram,bits,events,sprams", [
    ("ulx3s-85f", False, 8, 2, 0), ("ulx3s-85f", True, 8, 2, 0), ("icebreaker", False, 8, 1, 4),
    ("icebreaker", False, 4, 2, 4), ("icebreaker", False, 5, 1, 3)])
def test_two_events_only_where_two_rows_are_read(board, sdram, bits, events, sprams):
    """The ECP5 builds read two weight rows per cycle from block RAM; the iCEBreaker where two
    copies of the rows fit its SPRAM (8 lanes of 4-bit weights: 2 blocks a copy; 8-bit and
    5-bit rows need 4 and 3); the SDRAM prefetch's window reads two on its two ports."""
    model = random_model(tiny_config(embed_dims=16, weight_bits=bits), seed=1)
    plan = plan_board(model, BOARDS[board], lanes=8, width=16, sdram=sdram)
    assert (plan.config.events, plan.sprams) == (events, sprams)
    # Where SPRAM leaves one event per command, the plan says what would give two.
    if board == "icebreaker" and events == 1:
        assert plan.events_note == (
            f"one event per PE command: two copies of the {8 * bits}-bit weight rows would "
            f"need {2 * sprams} SPRAM blocks; with 4-bit weights (sdtforge quantize "
            f"--weight-bits 4, with --qat-epochs to keep the accuracy) two fit and the engine "
            f"takes two")
    else:
        assert plan.events_note == ""


@pytest.mark.parametrize("rows,events,blocks", [(512, 1, 8), (512, 2, 15), (4096, 1, 58),
                                                (4096, 2, 58)])
def test_a_window_read_twice_counts_true_dual_port_blocks(rows, events, blocks):
    """The SDRAM prefetch's window of 256-bit rows (32 lanes of 8-bit weights): with two
    events per command both ports read, so the ECP5's 36-bit pseudo dual-port aspect is out
    (512 rows: 15 blocks of 18 bits, not 8 of 36); deeper windows come out the same."""
    from sdtforge.boards.targets import block_ram_usage

    cfg = AccelConfig(lanes=32, width=32, events=events, external_weights=True)
    usage = block_ram_usage(cfg, BOARDS["ulx3s-85f"], window=rows)
    assert usage["weight window"] == (rows, 256, blocks)


@pytest.mark.parametrize("depth,column", [(1024, (18, 1)), (1025, (9, 1)), (5120, (2, 1)),
                                          (16384, (1, 1)), (20000, (1, 2))])
def test_dual_port_column(depth, column):
    assert dual_port_column(depth) == column


def test_asic_estimate_keeps_memories_as_macros():
    from sdtforge.boards.asic import asic_estimate
    from sdtforge.hdl.pe_array import PEArray
    from sdtforge.hdl.weights import WeightMemory

    r = asic_estimate(PEArray(2, 12, weight_width=4, weight_depth=32, bias_depth=4))
    assert {(m["rows"], m["bits"]) for m in r["macros"]} == {(4, 24)}
    assert r["sram_bits"] == 4 * 24
    assert r["nand2"] > 0 and r["flops"] >= 24
    assert not any(c.startswith("$mem") for c in r["cells"])
    r = asic_estimate(WeightMemory(data.ArrayLayout(signed(4), 2), 32))
    assert {(m["rows"], m["bits"]) for m in r["macros"]} == {(32, 8)}
    assert not any(c.startswith("$mem") for c in r["cells"])


class _StandIn(wiring.Component):
    """The accelerator's ports around a trivial datapath that reads the SPRAM (board-only
    builds: the accelerator itself does not fit the UP5K yet, see docs/boards.md)."""

    def __init__(self, aw):
        shape = data.ArrayLayout(signed(8), 8)
        super().__init__({
            "load": In(stream.Signature(8)), "pixels": In(stream.Signature(8)),
            "result": Out(stream.Signature(RESULT_LAYOUT)), "busy": Out(1),
            "load_idle": Out(1), "load_error": Out(1),
            "w_req": Out(stream.Signature(aw)), "w_rsp": In(stream.Signature(shape)),
            "w_write": In(memory.WritePort.Signature(addr_width=aw, shape=shape)),
        })

    def elaborate(self, platform):
        m = Module()
        addr, acc = Signal(14), Signal(32)
        m.d.comb += [self.load.ready.eq(1), self.pixels.ready.eq(1), self.load_idle.eq(1),
                     self.w_req.payload.eq(addr), self.w_req.valid.eq(1),
                     self.w_rsp.ready.eq(1),
                     self.w_write.addr.eq(addr),
                     self.w_write.data.eq(self.load.payload.replicate(8)),
                     self.w_write.en.eq(self.load.valid)]
        with m.If(self.load.valid | self.pixels.valid):
            m.d.sync += addr.eq(addr + 1)
        with m.If(self.pixels.valid):
            w = self.w_rsp.payload.as_value()   # all 64 bits, so all four SPRAMs stay
            m.d.sync += acc.eq(acc + (w[:16] ^ w[16:32] ^ w[32:48] ^ w[48:]) + self.pixels.payload)
        m.d.comb += [self.result.valid.eq(1), self.result.payload.data.eq(acc),
                     self.result.payload.last.eq(1), self.busy.eq(acc[0])]
        return m


@pytest.mark.slow
def test_icebreaker_real_build_board_plumbing(tmp_path):
    from sdtforge.boards.build import build_bitstream

    board = BOARDS["icebreaker"]
    top = _top(board, 8, 16, accelerator=_StandIn(14))
    figures = build_bitstream(board, top, tmp_path, seed=1, f_sync=top.f_sync)
    assert (tmp_path / "sdtforge.bin").exists()
    assert figures["spram"] == 4 and figures["dsp"] == 0
    # The plumbing (UART link, SPRAM weights, PLL) must not be what limits the board's clock:
    # 20 % above it at seed 1. (It reached 30 MHz with Yosys 0.70, 28.8 MHz with 0.69; the
    # engine's own clock targets are bench/engine.py's.)
    assert figures["fmax_mhz"] >= 1.2 * board.f_sync / 1e6 and figures["timing_met"]
    assert figures["lc"] <= 5280
    # Same design and seed → the same bitstream.
    again = build_bitstream(board, top, tmp_path / "again", seed=1, f_sync=top.f_sync)
    assert again == figures
    assert (tmp_path / "again" / "sdtforge.bin").read_bytes() == \
        (tmp_path / "sdtforge.bin").read_bytes()


@pytest.mark.slow
def test_ulx3s_real_build_weights_in_sdram(tmp_path):
    """The shipped digits-tiny on the ULX3S with its weights in the SDRAM (``--sdram``, 8
    lanes): the bitstream builds, timing is met, the weights take no block RAM (the prefetch
    window does: 4 DP16KD of the 22), no DSP."""
    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.quantize.quantizer import quantize_checkpoint

    path = tmp_path / "digits-tiny.sfm"
    ir.save(quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"]), path)
    out = tmp_path / "build"
    assert main(["build", str(path), "--board", "ulx3s-85f", "--sdram", "--lanes", "8",
                 "--width", "16", "--out", str(out), "--json"]) == 0
    figures = json.loads((out / "report.json").read_text())
    assert (out / "sdtforge.bit").stat().st_size > 0 and figures["sdram"]
    assert figures["dsp"] == 0 and figures["timing_met"]
    on_chip = plan_board(ir.load(path), BOARDS["ulx3s-85f"], lanes=8, width=16)
    assert figures["bram"] < on_chip.brams        # the weights' blocks are gone
    # The controller and the SDRAM clock are in the netlist.
    text = (out / "sdtforge.il").read_text()
    assert "sdram_ulx3s" in text and "CLKOS_ENABLE" in text


def test_run_without_a_port_is_one_sentence(capsys):
    assert main(["run", "--board", "ulx3s-85f", "--port", "/dev/no-such-tty-sdtforge"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sdtforge run: error: cannot open serial port /dev/no-such-tty")
    assert "\n" not in err


@pytest.mark.slow
def test_run_command_end_to_end(tmp_path, monkeypatch, capsys):
    """``sdtforge run`` against the simulated ULX3S top behind a fake serial port."""
    import numpy as np
    import serial

    from sdtforge.boards.image import model_image
    from sdtforge.boards.simport import SimulatedPort
    from sdtforge.boards.top import BoardTop
    from sdtforge.sim import golden

    model = random_model(SMALL, seed=3, theta_max=4)
    path = tmp_path / "m.sfm"
    ir.save(model, path)
    plan = plan_board(model, BOARDS["ulx3s-85f"], lanes=4, width=8)
    img = model_image(plan.compiled)
    top = BoardTop(plan.config, image_bytes=img.image_bytes, num_classes=img.num_classes,
                   divisor=4, timeout=2000, watchdog=100_000, heartbeat_bit=4)
    port = SimulatedPort(top, top.uart_rx, top.uart_tx, 4, timeout_cycles=500_000)
    monkeypatch.setattr(serial, "Serial", lambda *a, **k: port)
    image = np.random.default_rng(0).integers(0, 256, (4, 4)).astype(np.uint8)
    np.save(tmp_path / "x.npy", image)
    assert main(["run", "--board", "ulx3s-85f", "--port", "sim", "--model", str(path),
                 "--lanes", "4", "--width", "8", "--json", str(tmp_path / "x.npy")]) == 0
    out = capsys.readouterr().out
    results = json.loads(out)
    ref = golden.run(model, image[None, None])
    assert results[0]["logits"] == ref.logits[0].tolist()
    assert results[0]["class"] == int(ref.classes[0])


def test_run_reads_npy_and_png(tmp_path):
    import numpy as np
    from matplotlib import image as mpimg

    from sdtforge.commands.run import read_image

    a = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    np.save(tmp_path / "a.npy", a)
    mpimg.imsave(tmp_path / "a.png", np.stack([a, a, a], axis=-1))   # exact 8-bit RGB
    assert (read_image(tmp_path / "a.npy") == a).all()
    assert (read_image(tmp_path / "a.png") == a).all()
    with pytest.raises(UserError, match="unknown image format; use .npy or .png"):
        read_image(tmp_path / "a.jpg")


def test_build_progress_follows_the_tool_logs(tmp_path):
    """The build's stage comes from the logs Yosys and nextpnr write: a line when it changes,
    and one every ``every`` seconds while it lasts; nothing before the first tool starts."""
    from sdtforge.boards.build import BuildProgress

    now = [100.0]
    progress = BuildProgress(tmp_path, "top", clock=lambda: now[0], every=60)
    assert progress.current() is None and progress.poll() is None
    (tmp_path / "top.rpt").write_text("-- Parsing `top.il' using frontend `rtlil' --\n")
    now[0] = 103
    assert progress.poll() == "synthesis (0 min 03 s)"
    now[0] = 150
    assert progress.poll() is None                      # the same stage, within a minute
    now[0] = 163
    assert progress.poll() == "synthesis (1 min 03 s)"  # still synthesis, a minute on
    tim = tmp_path / "top.tim"
    tim.write_text("Info: Packing IOs..\n")
    now[0] = 170
    assert progress.poll() == "reading the netlist (1 min 10 s)"
    log = "Info: Packing IOs..\n"
    for marker, stage in (("Info: Running main analytical placer, max placement attempts",
                           "placing"),
                          ("Info: Routing globals...", "routing"),
                          ("Info: Program finished normally.", "writing the bitstream")):
        log += marker + "\n"
        tim.write_text(log)
        now[0] += 1
        assert progress.poll().startswith(f"{stage} (")
        assert progress.current() == stage


_ECP5_REPORTS = ("=== design ===\n   1200 LUT4\n    199 DP16KD\n", {
    "utilization": {"TRELLIS_COMB": {"used": 1500}, "TRELLIS_FF": {"used": 900},
                    "DP16KD": {"used": 199}, "MULT18X18D": {"used": 0}},
    "fmax": {"clk": {"achieved": 50.5}}})
_ICE40_REPORTS = ("=== design ===\n   4100 SB_LUT4\n   1800 SB_DFFE\n", {
    "utilization": {"ICESTORM_LC": {"used": 5200}, "ICESTORM_RAM": {"used": 28},
                    "ICESTORM_SPRAM": {"used": 1}, "ICESTORM_DSP": {"used": 0}},
    "fmax": {"clk": {"achieved": 27.5}}})


class _FaultyPlatform:
    """A platform whose first ``faults`` Yosys runs stop with ``message``, then writes the
    reports a real run would (``reports``: Yosys' ``stat`` text and nextpnr's report)."""

    def __init__(self, faults, message, reports=_ECP5_REPORTS):
        self.faults, self.message, self.opts = faults, message, []
        self.reports = reports

    def build(self, top, *, name, build_dir, synth_opts="", script_after_synth="", **kwargs):
        out = Path(build_dir)
        self.opts.append(synth_opts)
        assert script_after_synth.splitlines()[-1] == "check -assert"
        if len(self.opts) <= self.faults:
            (out / f"{name}.rpt").write_text(
                f"5.44.24.7. Executing ABC_OPS_REINTEGRATE pass\nERROR: {self.message}\n")
            raise subprocess.CalledProcessError(1, ["sh", f"build_{name}.sh"])
        stat, report = self.reports
        (out / f"{name}.stat").write_text(stat)
        (out / f"{name}.report.json").write_text(json.dumps(report))


_ABC9 = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed in rtlil.cc:3097."
_ABC9_NAME = "Assert `count_id(wire->name) == 0' failed in rtlil.cc:2872."
_TWO_DRIVERS = ("Warning: multiple conflicting drivers for sdtforge.\\core.accel.s [14]:\n"
                "ERROR: Found 2 problems in 'check -assert'.")
_NO_DRIVER = ("Warning: Wire sdtforge.\\core.accel.wb.s_acc_TRELLIS_FF_Q_M is used but has no "
              "driver.\nERROR: Found 1 problems in 'check -assert'.")


@pytest.mark.parametrize("faults, message, opts", [
    (1, _ABC9, ["-nodsp", "-nodsp -noflatten"]),
    (1, _ABC9_NAME, ["-nodsp", "-nodsp -noflatten"]),
    (1, _TWO_DRIVERS, ["-nodsp", "-nodsp -noflatten"]),
    (2, _TWO_DRIVERS, ["-nodsp", "-nodsp -noflatten", "-nodsp -nolutram"]),
    (1, _NO_DRIVER, ["-nodsp", "-nodsp -noflatten"]),
    (3, _ABC9, None),
    (1, "Design does not fit", None),
])
def test_ecp5_build_tries_other_netlists_after_the_abc9_fault(monkeypatch, tmp_path, faults,
                                                               message, opts):
    """Yosys' ABC9 fault (docs/boards.md §4), its assertion, a net with two drivers or an
    undriven one, makes an ECP5 build synthesize again with each fallback option in turn and
    say so; any other failure, or the fault on every try, is the build's one-line error."""
    from sdtforge.boards import build

    board = BOARDS["ulx3s-85f"]
    platform = _FaultyPlatform(faults, message)
    monkeypatch.setattr(type(board), "platform", lambda self: platform)
    lines = []
    if opts is not None:
        figures = build.build_bitstream(board, None, tmp_path, f_sync=46.875e6,
                                        progress=lines.append)
        assert platform.opts == opts
        assert figures["synth_opts"] == opts[-1] and figures["fmax_mhz"] == 50.5
        assert figures["lut4"] == 1200 and figures["bram"] == 199
        said = [ln for ln in lines if "ABC9 fault" in ln]
        assert [ln.rsplit(" ", 1)[-1] for ln in said] == [o.split()[-1] for o in opts[1:]]
        assert json.loads((tmp_path / "report.json").read_text()) == figures
    else:
        with pytest.raises(UserError, match=r"^the ulx3s-85f build failed \(sh\): "):
            build.build_bitstream(board, None, tmp_path, f_sync=46.875e6)
        assert len(platform.opts) == (1 if "fit" in message else 3)


@pytest.mark.parametrize("faults, message, opts", [
    (0, _ABC9, ["-dff"]),
    (1, _ABC9, ["-dff", ""]),
    (1, _NO_DRIVER, ["-dff", ""]),
    (2, _ABC9, None),
])
def test_ice40_build_maps_with_flip_flops_and_without_them_after_the_abc9_fault(
        monkeypatch, tmp_path, faults, message, opts):
    """An iCE40 build synthesizes with ``-dff`` (ABC9 sees the flip-flops); after Yosys' ABC9
    fault it synthesizes once more without options, and says so; a second fault is the
    build's one-line error."""
    from sdtforge.boards import build

    board = BOARDS["icebreaker"]
    platform = _FaultyPlatform(faults, message, _ICE40_REPORTS)
    monkeypatch.setattr(type(board), "platform", lambda self: platform)
    lines = []
    if opts is None:
        with pytest.raises(UserError, match=r"^the icebreaker build failed \(sh\): "):
            build.build_bitstream(board, None, tmp_path, f_sync=24e6)
        assert platform.opts == ["-dff", ""]
        return
    figures = build.build_bitstream(board, None, tmp_path, f_sync=24e6, progress=lines.append)
    assert platform.opts == opts
    assert figures["lc"] == 5200 and figures["ff"] == 1800 and figures["fmax_mhz"] == 27.5
    said = [ln for ln in lines if "ABC9 fault" in ln]
    if faults:
        assert figures["synth_opts"] == "" and said[-1].endswith("again with no options")
    else:
        assert "synth_opts" not in figures and not said


def test_the_config_digest_of_older_configurations_is_kept():
    """A field added to ``AccelConfig`` at its default leaves the digest a built board reports
    unchanged (``sdtforge run`` compares them), so boards built before it keep working."""
    from sdtforge.boards.image import config_digest
    from sdtforge.hdl.accel_config import AccelConfig

    base = AccelConfig()
    assert config_digest(base).hex() == "b5ac141e"  # the digest before event_frames existed
    for changed in (dict(weight_tile_rows=4, weight_window=4), dict(event_frames=1),
                    dict(sdsa_or=1), dict(pool_or=0)):
        assert config_digest(dataclasses.replace(base, **changed)) != config_digest(base)
    # Two events per command read the same images: a model image loads on either engine; so
    # does a stream memory read through registers.
    assert config_digest(dataclasses.replace(base, events=2)) == config_digest(base)
    assert config_digest(dataclasses.replace(base, stream_latency=3)) == config_digest(base)
    assert config_digest(dataclasses.replace(base, weight_latency=2)) == config_digest(base)
    # A lane-serial write-back's bias and threshold rows changed from P lanes to one chunk:
    # its boards built before (digest 5227e3cb here) must not take the new images.
    serial = config_digest(dataclasses.replace(base, writeback_cycles=4)).hex()
    assert serial == "642e571a" != "5227e3cb"


def test_an_input_larger_than_a_link_frame_is_refused_in_one_line():
    from sdtforge.boards.image import model_image
    from sdtforge.quantize.synthetic import random_model, tiny_config

    config = tiny_config(img_size=[128, 128], in_channels=2, mean=[0, 0], std=[1, 1], T=4,
                         embed_dims=8, pooling_stat="1111", encoding="events")
    compiled = compile_model(random_model(config, seed=0), lanes=8, width=16)
    with pytest.raises(UserError, match=r"input is 131072 bytes per sample \(4 frame\(s\) of "
                                        r"2×128×128\); one board-link frame carries at most "
                                        r"65535$"):
        model_image(compiled)
