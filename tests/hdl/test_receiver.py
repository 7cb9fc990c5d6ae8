"""The image receiver (``hdl.receiver.PixelReceiver``) against the naive order of an image:
frames, then rows, columns and channels, channels fastest."""

import random

import pytest
from _stream import set_fields
from amaranth.sim import Simulator

from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.receiver import PixelReceiver


def _run(cfg, frame, per_step, steps, pixels, *, stall, seed, images=1):
    """Receive ``pixels`` (offered with random gaps), ``images`` times, each after a
    ``start``; returns the writes, the pixel indices at which ``done`` was high and ``top``
    after the last pixel."""
    height, width, channels = frame
    dut = PixelReceiver(cfg)
    rng = random.Random(seed)
    out = {"writes": [], "done_at": [], "top": None}

    async def tb(ctx):
        set_fields(ctx, dut.descriptor.pixel, {"height": height, "width": width,
                                               "channels": channels, "per_step": per_step,
                                               "steps": steps})
        for _ in range(images):
            await _image(ctx)

    async def _image(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.active, 1)
        taken = 0
        while taken < len(pixels):
            offer = rng.random() >= stall
            ctx.set(dut.pixels.valid, offer)
            ctx.set(dut.pixels.payload, pixels[taken])
            await ctx.delay(1e-9)
            w = dut.write
            assert ctx.get(dut.pixels.ready) == 1
            assert ctx.get(w.en) == offer and ctx.get(w.active) == 1
            if ctx.get(dut.done):
                out["done_at"].append(taken)
            if offer:
                t = ctx.get(w.t) if cfg.event_frames else 0
                out["writes"].append((t, ctx.get(w.y), ctx.get(w.x), ctx.get(w.c),
                                      ctx.get(w.data)))
                taken += 1
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.active, 0)
        await ctx.tick()
        out["top"] = ctx.get(dut.top)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("event_frames", [0, 1])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_receiver_writes_each_pixel_at_its_place(event_frames, seed):
    cfg = AccelConfig(lanes=2, width=8, coord_bits=3, step_bits=2, word_bits=2,
                      event_frames=event_frames)
    rng = random.Random(seed)
    height, width, channels = rng.randint(1, 5), rng.randint(1, 5), rng.randint(1, 3)
    per_step = event_frames and seed == 1
    steps = 3 if per_step else 1
    frames = steps
    pixels = [rng.randrange(256) >> rng.randrange(8) for _ in
              range(frames * height * width * channels)]
    out = _run(cfg, (height, width, channels), int(per_step), steps, pixels,
               stall=0.3, seed=seed)
    order = [(t, y, x, c) for t in range(frames) for y in range(height) for x in range(width)
             for c in range(channels)]
    assert out["writes"] == [(*pos, v) for pos, v in zip(order, pixels, strict=True)]
    assert out["done_at"] == [len(pixels) - 1]      # the image's last pixel, only there
    if event_frames:
        orv = 0
        for v in pixels:
            orv |= v
        assert out["top"] == max(orv.bit_length() - 1, 0)
    else:
        assert out["top"] == 0


def test_an_image_of_frames_is_done_after_its_first_frame_without_per_step():
    """Without ``per_step`` the image is one frame even where event frames are built."""
    cfg = AccelConfig(lanes=2, width=8, coord_bits=3, step_bits=2, word_bits=2, event_frames=1)
    pixels = list(range(1, 7))
    out = _run(cfg, (2, 3, 1), 0, 3, pixels, stall=0.0, seed=0)
    assert out["done_at"] == [5]
    assert [w[:4] for w in out["writes"]] == [(0, y, x, 0) for y in range(2) for x in range(3)]


def test_start_puts_the_receiver_back_at_the_first_pixel():
    cfg = AccelConfig(lanes=2, width=8, coord_bits=3, step_bits=2, word_bits=2)
    out = _run(cfg, (2, 2, 2), 0, 1, list(range(8)), stall=0.2, seed=3, images=2)
    places = [(y, x, c) for y in range(2) for x in range(2) for c in range(2)]
    assert [w[1:4] for w in out["writes"]] == places + places
    assert out["done_at"] == [7, 7]
