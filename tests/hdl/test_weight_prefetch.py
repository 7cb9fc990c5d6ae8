"""``hdl.weight_prefetch.WeightPrefetch`` against the engine's request pattern.

The engine's requests are drawn as the engine makes them: tiles back to back in row order,
each group's requests anywhere inside its tile (some tiles get none: a group whose spike maps
are empty), image after image; between images ``busy`` is low. The source answers each row
request in order after a random latency, without back-pressure, as :class:`DRAMWeights` over
LiteDRAM does. Midway the model is reloaded with new rows (row writes, which the prefetcher
watches). Every row the engine gets must be the current model's row it asked for, and while the
window keeps up each image's rows cross the source's bus once.

With two events per request (``events = 2``) a request names one or two rows of the same tile;
the source's rows then wait for the prefetch's ``src.rsp.ready`` (its row register), which the
benches honour.
"""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from sdtforge.hdl.weight_prefetch import WeightPrefetch

LANES = 4


def _tiles(rng, max_tile, count):
    return [int(n) for n in rng.integers(1, max_tile + 1, count)]


def _image_requests(rng, tiles, events=1):
    """An image's requests: each a list of one row, or with ``events = 2`` of one or two rows
    of the same tile."""
    out, start = [], 0
    for n in tiles:
        k = int(rng.integers(0, 7)) if rng.random() > 0.25 else 0
        for r in rng.integers(0, n, k):
            two = events == 2 and rng.random() < 0.6
            out.append([start + int(r)] + ([start + int(rng.integers(0, n))] if two else []))
        start += n
    return out


def _offer(ctx, dut, rows, events, junk=0):
    """Put request ``rows`` (one or two) on ``dut.req``; a one-row request with two events
    carries ``junk`` as its unused second address (the encoder leaves it unspecified)."""
    if events == 1:
        ctx.set(dut.req.payload, rows[0])
    else:
        ctx.set(dut.req.payload.addr, rows[0])
        ctx.set(dut.req.payload.addr1, rows[1] if len(rows) == 2 else junk)
        ctx.set(dut.req.payload.two, len(rows) == 2)


def _answer(ctx, dut, events, kinds):
    """The rows on ``dut.rsp`` (both where the oldest unanswered request, ``kinds[0]``, asked
    for two)."""
    if events == 1:
        return [[ctx.get(dut.rsp.payload[i]) for i in range(LANES)]]
    two = kinds.pop(0)
    out = [[ctx.get(dut.rsp.payload.row[i]) for i in range(LANES)]]
    return out + ([[ctx.get(dut.rsp.payload.row1[i]) for i in range(LANES)]] if two else [])


def _collision(ctx, dut):
    """The ring row a used read (a request taken) reads in the cycle it is written, or
    ``None`` (``hdl.ram.ring_window``: the block RAM's read data is undefined there)."""
    ports = dut.ring_ports
    if not (ctx.get(ports.used) and ctx.get(ports.write.en)):
        return None
    row = ctx.get(ports.write.addr)
    second = ports.read1 is not None and ctx.get(dut.req.payload.two)
    if ctx.get(ports.read.addr) == row or (second and ctx.get(ports.read1.addr) == row):
        return row
    return None


def _run(*, window, max_tile, seed, latency=(2, 10), stall=0.3, in_flight=4, images=3, gap=1,
         abort=None, events=1):
    rng = np.random.default_rng(seed)
    tiles = _tiles(rng, max_tile, 9)
    depth = sum(tiles) + 3                       # the source holds more rows than the model
    shape = data.ArrayLayout(signed(8), LANES)
    dut = WeightPrefetch(shape, depth, window=window, tile_rows=max_tile, in_flight=in_flight,
                         events=events)

    def model_rows():
        return {r: [int(v) for v in rng.integers(-128, 128, LANES)] for r in range(sum(tiles))}

    models = [model_rows(), model_rows()]
    plan = [(0, _image_requests(rng, tiles, events)) for _ in range(images)]
    plan += [(1, _image_requests(rng, tiles, events)) for _ in range(images)]
    log = {"got": [], "want": [], "src_rows": [], "stalls": 0, "kinds": [], "collisions": []}
    hold = [False]                               # the engine takes no row (being reset)

    async def tb(ctx):
        mem = {}
        answers = []                             # (due cycle, row) in flight at the source
        cycle = 0

        async def step():
            nonlocal cycle
            due = bool(answers) and answers[0][0] <= cycle
            ctx.set(dut.src.rsp.valid, due)
            ctx.set(dut.src.rsp.payload, mem.get(answers[0][1], [0] * LANES) if due else
                    [0] * LANES)
            ctx.set(dut.src.req.ready, bool(rng.random() >= stall))
            ctx.set(dut.rsp.ready, bool(rng.random() >= stall) and not hold[0])
            if due and ctx.get(dut.src.rsp.ready):
                answers.pop(0)
            # A request offered stays offered, unchanged, until it is taken (the stream rule
            # the source relies on: DRAMWeights issues a row's words over several cycles).
            offer = (ctx.get(dut.src.req.valid), ctx.get(dut.src.req.payload))
            if log.get("held"):
                assert offer == log["held"], (cycle, offer, log["held"])
            taken_src = offer[0] and ctx.get(dut.src.req.ready)
            log["held"] = offer if offer[0] and not taken_src else None
            if taken_src:
                row = ctx.get(dut.src.req.payload)
                last = answers[-1][0] if answers else cycle
                answers.append((max(last + 1, cycle + int(rng.integers(*latency))), row))
                log["src_rows"].append((cycle, row))
            if ctx.get(dut.rsp.valid) and ctx.get(dut.rsp.ready):
                log["got"].append(_answer(ctx, dut, events, log["kinds"]))
            if (row := _collision(ctx, dut)) is not None:
                log["collisions"].append((cycle, row))
            # The registered "behind the image" flag equals its compare wherever an image
            # may end (not in the cycle after one ended).
            ws = dut.window_state
            if not log.get("was_end"):
                assert ctx.get(ws.behind) == (ctx.get(ws.ahead) < ctx.get(ws.rows)), cycle
            log["was_end"] = ctx.get(ws.image_end)
            taken = ctx.get(dut.req.valid) and ctx.get(dut.req.ready)
            if ctx.get(dut.req.valid) and not taken:
                log["stalls"] += 1
            await ctx.tick()
            cycle += 1
            return taken

        async def load(rows):
            for r, row in rows.items():
                mem[r] = row                     # the source's memory takes the row now
                ctx.set(dut.written.en, 1)
                ctx.set(dut.written.addr, r)
                await step()
                log["last_write"] = cycle       # the cycle after the write
                ctx.set(dut.written.en, 0)
                for _ in range(int(rng.integers(0, 3))):
                    await step()

        loaded = None
        for index, (which, requests) in enumerate(plan):
            if which != loaded:
                await load(models[which])
                loaded = which
            for _ in range(int(rng.integers(0, 40))):
                await step()
            ctx.set(dut.busy, 1)
            for k, r in enumerate(requests):
                ctx.set(dut.req.valid, 1)
                _offer(ctx, dut, r, events, int(rng.integers(0, depth)))
                log["want"].append([models[which][row] for row in r])
                log["kinds"].append(len(r) == 2)
                for _ in range(500):
                    if await step():
                        break
                else:
                    raise AssertionError(f"request for rows {r} not taken in 500 cycles")
                ctx.set(dut.req.valid, 0)
                if index == abort and k == len(requests) // 2:
                    # An engine reset in the middle of the image: the row of the request just
                    # taken (on rsp now) is never taken, and busy falls.
                    hold[0] = True
                    assert len(log["got"]) == len(log["want"]) - 1
                    log["want"].pop()
                    log["kinds"].pop()
                    break
                for _ in range(int(rng.integers(0, gap + 1))):
                    await step()
            for _ in range(200):
                if len(log["got"]) == len(log["want"]):
                    break
                await step()
            ctx.set(dut.busy, 0)
            log.setdefault("image_end", []).append(cycle)
            await step()
            hold[0] = False

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return log, tiles


@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("window,max_tile,seed", [(16, 8, 1), (32, 9, 2), (8, 8, 3),
                                                  (64, 5, 4)])
def test_rows_in_order_across_images_and_reloads(window, max_tile, seed, events):
    log, _ = _run(window=window, max_tile=max_tile, seed=seed, events=events)
    assert len(log["got"]) == len(log["want"]) > 0
    assert log["got"] == log["want"]
    assert log["collisions"] == []


@pytest.mark.parametrize("events", [1, 2])
@pytest.mark.parametrize("window,max_tile,seed", [(8, 8, 7), (16, 9, 8)])
def test_a_full_window_keeps_the_tile_being_computed(window, max_tile, seed, events):
    """A fast source and an engine that pauses between requests: the window is full at every
    request, so a row freed too early (anything at or above the current tile's start) is
    overwritten before the tile asks for it again."""
    log, _ = _run(window=window, max_tile=max_tile, seed=seed, latency=(1, 2), stall=0.0,
                  gap=12, events=events)
    assert log["got"] == log["want"]
    assert log["collisions"] == []


def test_each_row_crosses_the_bus_once_per_image_when_the_window_keeps_up():
    """A window of all the model's rows and a fast source: after the load, the stream is
    fetched in order, wrapping at its end, once per image. The one exception: an image that
    ends before the fetch has reached the stream's end (its last tiles had no request) drops
    the rows in flight and starts the next image's rows again (at most ``in_flight`` rows)."""
    log, tiles = _run(window=128, max_tile=8, seed=5, latency=(1, 3), stall=0.0, images=4)
    assert log["got"] == log["want"]
    assert log["collisions"] == []
    rows = sum(tiles)
    # The prefetch sees the last write a cycle late (in the cycle after it): a row asked for
    # then is dropped.
    fetched = [(c, r) for c, r in log["src_rows"] if c > log["last_write"]]
    assert fetched[0][1] == 0 and len(fetched) > 3 * rows
    restarts = 0
    for (_, a), (c, b) in zip(fetched, fetched[1:], strict=False):
        if b != (a + 1) % rows:
            assert b == 0 and any(0 < c - end <= 2 for end in log["image_end"]), (a, b, c)
            restarts += 1
    images_after_load = 4
    assert len(fetched) <= (images_after_load + 3) * rows + restarts * 4


@pytest.mark.parametrize("seed,events", [(9, 1), (10, 1), (11, 1), (12, 2), (13, 2)])
def test_an_engine_reset_in_the_middle_of_an_image(seed, events):
    """The engine is reset with a row on ``rsp`` it will never take: busy falls, and the next
    image's first request must get its own row, not that one."""
    log, _ = _run(window=32, max_tile=8, seed=seed, stall=0.0, abort=1, images=3,
                  events=events)
    assert log["got"] == log["want"]
    assert log["collisions"] == []


@pytest.mark.parametrize("events", [1, 2])
def test_requests_wait_for_a_slow_source(events):
    log, _ = _run(window=16, max_tile=8, seed=6, latency=(15, 30), in_flight=2, events=events)
    assert log["got"] == log["want"]
    assert log["collisions"] == []
    assert log["stalls"] > 0


def test_parameters_are_checked():
    shape = data.ArrayLayout(signed(8), 2)
    with pytest.raises(ValueError, match="power of two"):
        WeightPrefetch(shape, 64, window=24, tile_rows=4)
    with pytest.raises(ValueError, match="cannot hold a tile"):
        WeightPrefetch(shape, 64, window=8, tile_rows=9)
    with pytest.raises(ValueError):
        WeightPrefetch(shape, 64, window=8, tile_rows=0)
    with pytest.raises(ValueError, match="1 or 2"):
        WeightPrefetch(shape, 64, window=8, tile_rows=4, events=3)


def test_two_row_reads_never_wait_for_the_fill():
    """Back-to-back two-row requests in a window that holds every row: the fill's writes take
    the second read's port only in cycles without a two-row read, so once the rows are in no
    request waits (the fill is delayed instead)."""
    log, _ = _run(window=128, max_tile=8, seed=14, latency=(1, 2), stall=0.0, gap=0,
                  events=2, images=4)
    assert log["got"] == log["want"]
    assert log["collisions"] == []
    assert any(len(w) == 2 for w in log["want"])


def _stress(seed):
    """A random prefetch (tile size, window, rows in flight) against random models of
    different lengths, loaded and reloaded (sometimes in the cycle an image ends), images with
    random requests, some aborted by an engine reset, a source with random latency and stalls.
    Returns a description of the first broken rule, or ``None``."""
    rng = np.random.default_rng(seed)
    max_tile = int(rng.integers(1, 10))
    window = 1 << int(rng.integers((max_tile - 1).bit_length(), 6))
    in_flight = int(rng.integers(1, 5))
    events = int(rng.integers(1, 3))
    stall = float(rng.choice([0.0, 0.3, 0.7, 0.9]))
    latency = (1, int(rng.integers(2, 12)))
    models = []
    for _ in range(3):
        tiles = [int(n) for n in rng.integers(1, max_tile + 1, int(rng.integers(1, 10)))]
        models.append((tiles, {r: [int(v) for v in rng.integers(-128, 128, LANES)]
                               for r in range(sum(tiles))}))
    depth = max(sum(t) for t, _ in models) + int(rng.integers(0, 4))
    dut = WeightPrefetch(data.ArrayLayout(signed(8), LANES), depth, window=window,
                         tile_rows=max_tile, in_flight=in_flight, events=events)
    got, want, broken, kinds = [], [], [], []
    hold = [False]

    async def tb(ctx):
        mem, answers = {}, []
        state = {"cycle": 0, "held": None, "out": 0, "length": 0, "loading": True}

        async def step():
            c = state["cycle"]
            due = bool(answers) and answers[0][0] <= c
            ctx.set(dut.src.rsp.valid, due)
            ctx.set(dut.src.rsp.payload, answers[0][1] if due else [0] * LANES)
            if due and ctx.get(dut.src.rsp.ready):
                answers.pop(0)
                state["out"] -= 1
            ctx.set(dut.src.req.ready, bool(rng.random() >= stall))
            ctx.set(dut.rsp.ready, bool(rng.random() >= 0.3) and not hold[0])
            offer = (ctx.get(dut.src.req.valid), ctx.get(dut.src.req.payload))
            if state["held"] is not None and offer != state["held"]:
                broken.append(f"offer {state['held']} withdrawn at {c}")
            new = offer[0] and state["held"] is None
            if new and not state["loading"] and offer[1] >= state["length"]:
                broken.append(f"row {offer[1]} offered beyond the stream ({state['length']})")
            taken = offer[0] and ctx.get(dut.src.req.ready)
            state["held"] = offer if offer[0] and not taken else None
            if taken:
                last = answers[-1][0] if answers else c
                answers.append((max(last + 1, c + int(rng.integers(*latency))),
                                list(mem.get(offer[1], [0] * LANES))))
                state["out"] += 1
                if state["out"] > in_flight:
                    broken.append(f"{state['out']} rows in flight, more than {in_flight}")
            if ctx.get(dut.rsp.valid) and ctx.get(dut.rsp.ready):
                got.append(_answer(ctx, dut, events, kinds))
            if (row := _collision(ctx, dut)) is not None:
                broken.append(f"ring row {row} read as it was written at {c}")
            served = ctx.get(dut.req.valid) and ctx.get(dut.req.ready)
            await ctx.tick()
            state["cycle"] += 1
            return served

        async def load(rows):
            state["loading"] = True
            for r, row in rows.items():
                mem[r] = row
                ctx.set(dut.written.en, 1)
                ctx.set(dut.written.addr, r)
                await step()
                hold[0] = False
                ctx.set(dut.written.en, 0)
                for _ in range(int(rng.integers(0, 3))):
                    await step()
            state["length"], state["loading"] = len(rows), False

        which = 0
        await load(models[0][1])
        for _ in range(10):
            tiles, rows = models[which]
            ctx.set(dut.busy, 1)
            requests = _image_requests(rng, tiles, events)
            abort = rng.random() < 0.15
            for k, r in enumerate(requests):
                ctx.set(dut.req.valid, 1)
                _offer(ctx, dut, r, events, int(rng.integers(0, depth)))
                want.append([rows[row] for row in r])
                kinds.append(len(r) == 2)
                for _ in range(2000):
                    if await step():
                        break
                else:
                    broken.append(f"request for rows {r} never served")
                    return
                ctx.set(dut.req.valid, 0)
                if abort and k == len(requests) // 2:
                    hold[0] = True          # an engine reset: its row is never taken
                    want.pop()
                    kinds.pop()
                    break
                for _ in range(int(rng.integers(0, 3))):
                    await step()
            for _ in range(300):
                if len(got) == len(want):
                    break
                await step()
            ctx.set(dut.busy, 0)
            if rng.random() < 0.25:         # a reload from the cycle the image ends
                which = int(rng.integers(0, 3))
                await load(models[which][1])
            else:
                await step()
                hold[0] = False
                for _ in range(int(rng.integers(0, 30))):
                    await step()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    if broken:
        return broken[0]
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                     min(len(got), len(want)))
        return f"rows differ from the {first}-th on ({len(got)} got, {len(want)} wanted)"
    return None


def test_random_prefetches_models_and_sources():
    """Forty random cases (``_stress``): every row right, an offer never withdrawn, never more
    rows in flight than allowed, no used ring read in the cycle its row is written, no request
    for a row past the model loaded last (a shorter model after a longer one restarts the
    stream's length), no request left unserved."""
    broken = {seed: _stress(seed) for seed in range(40)}
    assert {seed: why for seed, why in broken.items() if why} == {}
