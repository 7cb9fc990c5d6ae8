"""The SDRAM weight-stream model (``sim/sdram.py``), the tile plan (``hdl/weight_tiles.py``) and
the cycle model's per-group split (``sim/cycles.predict_groups``), on hand-computed cases."""

from fractions import Fraction

import pytest

from sdtforge.boards.targets import memory_blocks
from sdtforge.hdl import weight_tiles
from sdtforge.hdl.compile import derive_config, plan_memories
from sdtforge.quantize import synthetic
from sdtforge.sim import cycles, golden, sdram

# At 100 MHz (10 ns) the AS4C32M16SB-7 is tRCD = tRP = 3, tRAS = 5, tRFC = 7 cycles, CL 2,
# tREFI = 780 cycles; a refresh costs tRP + tRFC + tRCD = 13 cycles of a stream.
MHZ = 100


def test_timing_in_cycles():
    t = sdram.AS4C32M16SB_7.timing(MHZ)
    assert (t.rcd, t.rp, t.ras, t.rfc, t.refi, t.cl) == (3, 3, 5, 7, 780, 2)
    assert t.refresh_cost == 13
    # 46.875 MHz: 21.33 ns, every access time one cycle, tRFC 3, tREFI 365.
    s = sdram.AS4C32M16SB_7.timing(46.875)
    assert (s.rcd, s.rp, s.ras, s.rfc, s.refi, s.cl) == (1, 1, 2, 3, 365, 2)
    # Above 100 MHz CL 2 is out of the -7 grade's range; above 1 / 7 ns the chip is.
    assert sdram.AS4C32M16SB_7.timing(140).cl == 3
    for clock in (143, 0, -5):
        with pytest.raises(ValueError, match="at most 142.9 MHz"):
            sdram.AS4C32M16SB_7.timing(clock)
    assert sdram.AS4C32M16SB_7.capacity == 64 << 20


def test_run_inside_one_row():
    # 64 bytes = 32 words at column 0: precharge + activate (6), CL 2, 32 words.
    run = sdram.read_run(0, 64, MHZ, refresh=False)
    assert (run.words, run.rows, run.cycles) == (32, 1, 40)
    # The worst refresh phase puts one refresh into it.
    run = sdram.read_run(0, 64, MHZ)
    assert (run.refreshes, run.cycles) == (1, 53)
    # An odd byte count reads the whole last word.
    assert sdram.read_run(0, 63, MHZ, refresh=False).words == 32


def test_run_crossing_a_row():
    # Words 1020..1027: four in one row, four in the next (another bank): a second
    # precharge + activate of 6 cycles.
    run = sdram.read_run(2040, 16, MHZ, refresh=False)
    assert (run.words, run.rows, run.row_cycles, run.cycles) == (8, 2, 12, 22)
    # Opening the next bank's row ahead hides the boundary.
    assert sdram.read_run(2040, 16, MHZ, refresh=False, interleave=True).cycles == 16
    # At 140 MHz (tRCD 3, tRAS 6) a row read for one word must stay open 2 more cycles.
    run = sdram.read_run(2046, 8, 140, refresh=False)
    assert (run.words, run.row_cycles, run.cas, run.cycles) == (4, 3 + 3 + 2 + 3 + 3, 3, 21)


def test_refresh_over_a_long_run():
    # 2048 words from column 0 cross one row: 6 + 2 + 2048 + 6 = 2062 cycles of transfer;
    # the refresh clock (780) can fire 3 times in 2062 + 3 · 13.
    run = sdram.read_run(0, 4096, MHZ)
    assert (run.words, run.rows, run.refreshes) == (2048, 2, 3)
    assert run.cycles == 2062 + 3 * 13
    assert sdram.read_run(0, 0, MHZ).cycles == 0


def test_burst_rounding():
    # Bytes 2..5 are words 1..2: BL 8 reads the aligned words 0..7, a page burst only 1..2.
    assert sdram.read_run(2, 4, MHZ, burst=8, refresh=False).words == 8
    assert sdram.read_run(2, 4, MHZ, burst="page", refresh=False).words == 2
    with pytest.raises(ValueError, match="burst"):
        sdram.read_run(0, 4, MHZ, burst=3)


def test_bandwidth():
    assert sdram.peak_bandwidth(MHZ) == 200e6
    want = Fraction(200_000_000) * Fraction(1024, 1030) * (1 - Fraction(13, 780))
    assert sdram.sustained_bandwidth(MHZ) == pytest.approx(float(want), rel=1e-12)
    assert sdram.sustained_bandwidth(MHZ) < sdram.sustained_bandwidth(MHZ, interleave=True)


def _segs(*cycles_, name="L"):
    return [(name, g, c) for g, c in enumerate(cycles_)]


def test_schedule_loads_longer_than_compute():
    # Loads of 100, groups of 10: load 0 ends at 100 (wait 100), load 1 at 200 (wait 90),
    # load 2 starts when the bus is free at 200 (its half was freed at 110), ends at 300.
    out = sdram.schedule(_segs(10, 10, 10), [100, 100, 100])
    assert out == {"compute_cycles": 30, "load_cycles": 300, "stall_cycles": 280,
                   "first_stall": 100, "total_cycles": 310, "waits": [100, 90, 90]}


def test_schedule_compute_dominates():
    # Only tile 0's load is waited for: the others load while a group computes.
    out = sdram.schedule(_segs(100, 100, 100, 100), [10, 10, 10, 10])
    assert (out["stall_cycles"], out["first_stall"], out["total_cycles"]) == (10, 10, 410)


def test_schedule_double_buffer_holds_two_tiles():
    # Tile 2 cannot load before group 0 is done (its half holds tile 0): group 0 runs
    # 10..60, so tile 2 loads 60..80 although the bus is free at 20; group 1 runs 60..65 and
    # group 2 waits 15.
    out = sdram.schedule(_segs(50, 5, 5), [10, 10, 20])
    assert (out["stall_cycles"], out["total_cycles"]) == (10 + 15, 85)


def test_schedule_weightless_segments_hide_the_next_load():
    segs = _segs(10, name="a") + [("lif", None, 200)] + _segs(10, name="b")
    out = sdram.schedule(segs, [5, 150])
    assert out["stall_cycles"] == 5
    with pytest.raises(ValueError, match="2 tile loads for 3"):
        sdram.schedule(segs + _segs(1, name="c"), [5, 150])


def test_schedule_prefetch_window():
    """The tile prefetch's ring (rows 4, 4, 4; L = 4; window 8): tiles 0 and 1 fit from the
    start; tile 2 (rows 8..12) wholly only once the engine asks for the first tile k with
    start_k − L + 1 + 8 ≥ 12, tile 2 itself, at 25. Tile 1's ask (row 4, at 15) frees the
    rows below 1, so row 8 (a quarter of the tile, 1 of its 5 cycles) loads at 15..16 and the
    other three at 25..29: group 2 waits 4, where the double buffer loads it at 15..20 and
    nobody waits."""
    segs, loads = _segs(10, 10, 10), [5, 5, 5]
    ring = sdram.schedule(segs, loads, rows=[4, 4, 4], window=8)
    assert ring["waits"] == [5, 0, 4] and ring["total_cycles"] == 39
    assert sdram.schedule(segs, loads)["waits"] == [5, 0, 0]
    # A window of 12 holds all three; warm: they were fetched before the image, unpriced.
    assert sdram.schedule(segs, loads, rows=[4, 4, 4], window=12)["waits"] == [5, 0, 0]
    warm = sdram.schedule(segs, loads, rows=[4, 4, 4], window=12, warm=True)
    assert warm["waits"] == [0, 0, 0] and warm["load_cycles"] == 0
    # Warm, window 8: tiles 0 and 1 are in the ring; tile 2 as above, asked at 20 (its
    # first row at 10..11).
    warm = sdram.schedule(segs, loads, rows=[4, 4, 4], window=8, warm=True)
    assert warm["waits"] == [0, 0, 4] and warm["load_cycles"] == 5
    # Rows 4, 8, 4 in a window of 8 (L = 8): tile 1's own ask is the first to free it all;
    # tile 0's ask (row 0) frees nothing below row 0, so rows 4..8 of it (half, 2 of its 4
    # cycles) load at 5..7 after tile 0, and the rest at 15..17: group 1 waits 2.
    ring = sdram.schedule(segs, [5, 4, 5], rows=[4, 8, 4], window=8)
    assert ring["waits"][:2] == [5, 2]
    with pytest.raises(ValueError, match="each tile's rows"):
        sdram.schedule(segs, loads, window=8)
    with pytest.raises(ValueError, match="cannot hold a tile of 9"):
        sdram.schedule(segs, loads, rows=[4, 9, 4], window=8)


def test_weight_stream_with_the_prefetch_window_matches_the_rtl(tiny):
    """The shipped digits-tiny's RTL through SDRAM with the prefetch waits for no row on its
    first three test images (docs/boards.md §5e), and the model with the RTL's window, warm,
    says the same of them; so it does of this tiny model at P = 8. The double buffer, cold,
    waits for the first tile."""
    model, result = tiny
    warm = sdram.weight_stream(model, result.spikes, 8, 16, 50, window="rtl", warm=True)
    assert warm["stall_cycles"] == 0 and warm["total_cycles"] == warm["compute_cycles"]
    cold = sdram.weight_stream(model, result.spikes, 8, 16, 50)
    assert cold["stall_cycles"] == cold["first_stall"] > 0


@pytest.fixture(scope="module")
def tiny():
    model = synthetic.random_model(synthetic.tiny_config(), seed=1, theta_max=16)
    x = synthetic.synthetic_images(model.config, 2, 0)
    return model, golden.run(model, x, spikes=True)


@pytest.fixture(scope="module")
def cifar():
    model = synthetic.synth_model("cifar10-2-256", 0.1, seed=0)
    x = synthetic.synthetic_images(model.config, 1, 0)
    return model, golden.run(model, x, spikes=True)


def _check_groups(model, result, lanes, width, image=0, config=None):
    segs = cycles.predict_groups(model, result.spikes, lanes, width, image, config=config)
    want = cycles.predict(model, result.spikes, lanes, width, image, config=config)["total"]
    assert sum(c for _, _, c in segs) == want
    assert all(c > 0 for _, _, c in segs)
    cfg = config or derive_config(model, lanes=lanes, width=width)
    tiles = weight_tiles.tile_plan(plan_memories(model, cfg, rows=False))
    assert [(n, g) for n, g, _ in segs if g is not None] == [(t.name, t.group) for t in tiles]
    return segs


@pytest.mark.parametrize("lanes, width", [(8, 16), (4, 8), (16, 16)])
def test_groups_sum_to_predict(tiny, lanes, width):
    model, result = tiny
    for image in (0, 1):
        _check_groups(model, result, lanes, width, image)


def test_groups_sum_to_predict_with_a_serial_writeback(tiny):
    # writeback > 1 runs the row recurrence (cycles._rows) for every conv.
    model, result = tiny
    cfg = derive_config(model, lanes=8, width=16, writeback_lanes=2)
    segs = _check_groups(model, result, 8, 16, config=cfg)
    assert len({c for n, g, c in segs if n == "block0.mlp.fc1"}) > 1   # fill in group 0


def test_groups_sum_to_predict_on_a_synthetic_paper_shape(cifar):
    model, result = cifar
    segs = _check_groups(model, result, 32, 32)
    assert sum(1 for _, g, _ in segs if g is not None) == 168


def test_tile_plan_bytes_and_addresses(tiny):
    model, _ = tiny
    cfg = derive_config(model, lanes=8, width=16)
    planned = plan_memories(model, cfg, rows=False)
    tiles = weight_tiles.tile_plan(planned, bus_bytes=2, base=64)
    row_bits = cfg.row_bits("weights")
    assert row_bits == 64
    assert sum(t.nbytes for t in tiles) == planned.needed["weights"] * row_bits // 8
    assert sum(t.rows for t in tiles) == planned.needed["weights"]
    # Back to back from the base, in program order; a 1x1 conv's tile is cin rows.
    assert tiles[0].address == 64
    ends = [t.address + t.nbytes for t in tiles]
    assert [t.address for t in tiles[1:]] == ends[:-1]
    fc2 = [t for t in tiles if t.name == "block0.mlp.fc2"]
    assert len(fc2) == 4 and fc2[0].rows == 128 and fc2[0].nbytes == 128 * 8
    # A 32-byte bus rounds the 9-row PIXEL tile (one input channel: 72 bytes) up to 96.
    wide = weight_tiles.tile_plan(planned, bus_bytes=32)
    assert (wide[0].rows, wide[0].nbytes) == (9, 96)
    buf = weight_tiles.double_buffer(tiles)
    largest = max(t.rows for t in tiles)
    assert buf["rows"] == 2 * largest and buf["bits"] == 2 * largest * 64
    # 64-bit rows: two 36-bit-wide columns of blocks, 512 rows each.
    assert memory_blocks(buf["rows"], buf["row_bits"], "ecp5") == 2 * -(-2 * largest // 512)


def test_weight_stream_counts(tiny):
    model, result = tiny
    out = sdram.weight_stream(model, result.spikes, 8, 16, 50)
    assert out["compute_cycles"] == cycles.predict(model, result.spikes, 8, 16)["total"]
    assert out["total_cycles"] == out["compute_cycles"] + out["stall_cycles"]
    assert out["stall_cycles"] >= out["first_stall"] > 0
    assert sum(out["stalls_by_descriptor"].values()) == out["stall_cycles"]
    assert out["stalls_by_descriptor"]["sps.conv0"] >= out["first_stall"]
    assert out["load_cycles"] == out["sdram_busy_cycles"]          # same clock
    assert out["latency_ms"] == pytest.approx(out["total_cycles"] / 50e3)
    # The SDRAM at half the engine's clock: every load takes twice the engine cycles.
    slow = sdram.weight_stream(model, result.spikes, 8, 16, 50, sdram_mhz=25)
    assert slow["load_cycles"] == 2 * slow["sdram_busy_cycles"]
    assert slow["stall_cycles"] > out["stall_cycles"]
