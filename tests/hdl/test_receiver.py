"""The image receiver (``hdl.receiver.PixelReceiver``) against the naive order of an image:
frames, then rows, columns and channels, channels fastest."""

import random

import pytest
from _stream import set_fields
from amaranth.sim import Simulator

from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.receiver import PixelReceiver


def _run(cfg, frame, per_step, steps, images, *, stall, seed):
    """Receive each image of ``images`` (lists of pixels) after a ``start``, pixels offered
    with random gaps and, between images, offered while the receiver is not ``active``.

    Returns per image: the writes, the pixels taken before each cycle ``done`` was high,
    and ``top`` in the cycle after the last pixel.
    """
    height, width, channels = frame
    fields = {"height": height, "width": width, "channels": channels, "per_step": per_step,
              "steps": steps}
    dut = PixelReceiver(cfg)
    rng = random.Random(seed)
    out = []

    async def idle_cycles(ctx, n):
        """Offer a pixel while not active: nothing may be taken, written or counted."""
        for _ in range(n):
            ctx.set(dut.pixels.valid, 1)
            ctx.set(dut.pixels.payload, 0xFF)
            await ctx.delay(1e-9)
            assert ctx.get(dut.pixels.ready) == 0
            assert ctx.get(dut.write.en) == 0 and ctx.get(dut.write.active) == 0
            assert ctx.get(dut.done) == 0
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)

    async def image(ctx, pixels):
        got = {"writes": [], "done_at": [], "top": None}
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        # The descriptor load between start and receiving: another layer's fields until the
        # cycle before the first pixel (the receiver's contract).
        set_fields(ctx, dut.descriptor.pixel, {"height": 1, "width": 1, "channels": 1,
                                               "per_step": 1 - per_step, "steps": 1})
        await idle_cycles(ctx, 1)
        set_fields(ctx, dut.descriptor.pixel, fields)
        await idle_cycles(ctx, 1)
        ctx.set(dut.active, 1)
        taken = 0
        while True:
            # After the last pixel a pixel is offered (the next image's): it must wait.
            end = taken == len(pixels)
            offer = end or rng.random() >= stall
            ctx.set(dut.pixels.valid, offer)
            ctx.set(dut.pixels.payload, 0xFF if end else pixels[taken])
            await ctx.delay(1e-9)
            w = dut.write
            if ctx.get(dut.done):
                got["done_at"].append(taken)
            if end:
                # The cycle after the last pixel: done, and nothing taken.
                assert ctx.get(dut.pixels.ready) == 0 and ctx.get(w.en) == 0
                got["top"] = ctx.get(dut.top)
                await ctx.tick()
                break
            assert ctx.get(dut.pixels.ready) == 1
            assert ctx.get(w.en) == offer and ctx.get(w.active) == 1
            if offer:
                t = ctx.get(w.t) if cfg.event_frames else 0
                got["writes"].append((t, ctx.get(w.y), ctx.get(w.x), ctx.get(w.c),
                                      ctx.get(w.data)))
                taken += 1
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.active, 0)
        await idle_cycles(ctx, 3)       # the image's layers: pixels wait
        out.append(got)

    async def tb(ctx):
        await idle_cycles(ctx, 1)
        for pixels in images:
            await image(ctx, pixels)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return out


def _top(pixels):
    orv = 0
    for v in pixels:
        orv |= v
    return max(orv.bit_length() - 1, 0)


@pytest.mark.parametrize("event_frames, per_step", [(0, 0), (1, 0), (1, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_receiver_writes_each_pixel_at_its_place(event_frames, per_step, seed):
    """Two images in a row: the second starts again at the first place, frame 0 and a ``top``
    of its own pixels (the first image's are brighter)."""
    cfg = AccelConfig(lanes=2, width=8, coord_bits=3, step_bits=2, word_bits=2,
                      event_frames=event_frames)
    rng = random.Random(seed)
    height, width, channels = rng.randint(1, 5), rng.randint(1, 5), rng.randint(2, 3)
    steps = 3
    frames = steps if per_step else 1
    n = frames * height * width * channels
    bright = [rng.randrange(128, 256) for _ in range(n)]
    dim = [rng.randrange(256) >> rng.randrange(2, 8) for _ in range(n)]
    out = _run(cfg, (height, width, channels), per_step, steps, [bright, dim],
               stall=0.3, seed=seed)
    order = [(t, y, x, c) for t in range(frames) for y in range(height) for x in range(width)
             for c in range(channels)]
    for got, pixels in zip(out, [bright, dim], strict=True):
        assert got["writes"] == [(*pos, v) for pos, v in zip(order, pixels, strict=True)]
        assert got["done_at"] == [n]        # the cycle after the image's last pixel, only
        assert got["top"] == (_top(pixels) if event_frames else 0)


def test_an_image_of_frames_is_done_after_its_first_frame_without_per_step():
    """Without ``per_step`` the image is one frame even where event frames are built."""
    cfg = AccelConfig(lanes=2, width=8, coord_bits=3, step_bits=2, word_bits=2, event_frames=1)
    (got,) = _run(cfg, (2, 3, 1), 0, 3, [list(range(1, 7))], stall=0.0, seed=0)
    assert got["done_at"] == [6]
    assert [w[:4] for w in got["writes"]] == [(0, y, x, 0) for y in range(2) for x in range(3)]
