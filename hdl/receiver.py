"""The image receiver: an image's pixels (or event frames) into the pixel memory's write port."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import descriptor_layout

__all__ = ["PixelReceiver", "pixel_write_layout"]


def pixel_write_layout(config):
    """A received pixel and its place: ``active`` (while receiving), ``t`` (the frame; with
    ``config.event_frames`` only), ``y``, ``x``, ``c``, ``data`` and ``en`` (a pixel this
    cycle)."""
    cb, tb = config.coord_bits, config.step_bits
    return data.StructLayout({"active": 1, **({"t": tb} if config.event_frames else {}),
                              "y": cb, "x": cb, "c": config.word_bits, "data": 8, "en": 1})


class PixelReceiver(wiring.Component):
    """Counts an image's pixels into positions: raster order, channels fastest, and with event
    frames (``config.event_frames`` and the ``PIXEL`` descriptor's ``per_step``) ``steps``
    frames one after another.

    The frame's size is the ``PIXEL`` descriptor's ``height``, ``width`` and ``channels``
    (and ``steps``), held from the cycle before ``active`` on: the last value of each count is
    a register, taken every cycle (compared as pixels came, ``channels − 1``'s carry chain ran
    on through ``done`` into the controller's state: an ECP5 critical path).

    **Cycle contract.** ``start`` (one cycle, never with ``active``: the controller raises
    it in its idle state) puts the position at the image's first pixel and clears ``top``.
    While ``active``, a pixel is taken in every cycle it is offered (``pixels.ready`` is
    ``active``, but in ``done``'s cycle) and is on ``write`` in that cycle with its position
    (``write.en``). ``done``, a register, is high in the cycle after the image's last pixel is
    taken, and no pixel is taken in that cycle. So the image costs its pixels' cycles and one
    more, and ``done`` reaches the controller's state from a register (from the counters'
    compares it was an ECP5 critical path).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Coordinate, step and word widths; ``event_frames``.

    Members
    -------
    descriptor : ``In(descriptor_layout(config))``
        The ``PIXEL`` descriptor (its ``pixel`` view).
    start, active : ``In(1)``
        Start an image; receive.
    pixels : ``In(stream.Signature(8))``
        The image's pixels.
    write : ``Out(pixel_write_layout(config))``
        The pixel taken this cycle and its position.
    done : ``Out(1)``
        The image's last pixel was taken in the cycle before (a register; one cycle).
    top : ``Out(3)``
        With event frames: the highest bit set in any pixel received since ``start`` (the
        first bit-plane the pixel layer's gathers need), from a register: final from ``done``
        on; 0 otherwise.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "descriptor": In(descriptor_layout(config)),
            "start": In(1),
            "active": In(1),
            "pixels": In(stream.Signature(8)),
            "write": Out(pixel_write_layout(config)),
            "done": Out(1),
            "top": Out(3),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        px, w = self.descriptor.pixel, self.write
        # Named for the Verilog and the waveforms.
        ry, rx = Signal(cfg.coord_bits, name="recv_y"), Signal(cfg.coord_bits, name="recv_x")
        rch = Signal(cfg.word_bits, name="recv_channel")
        rt = Signal(cfg.step_bits, name="recv_frame")     # with event frames only
        # Event frames: the OR of a sample's received counts and its top set bit (counts are
        # small: most of the eight planes are zero).
        pix_or = Signal(8, name="received_or")
        # ``done`` is a register: high in the cycle after the last pixel, which takes none.
        ready = self.active & ~self.done
        take = ready & self.pixels.valid
        # Each count's last value, from the descriptor a cycle ago.
        ends = {k: Signal(len(px[k]), name=f"recv_last_{k}")
                for k in ("channels", "width", "height", *(("steps",) if cfg.event_frames else ()))}
        m.d.sync += [v.eq(px[k] - 1) for k, v in ends.items()]
        m.d.comb += [self.pixels.ready.eq(ready), w.active.eq(self.active),
                     w.en.eq(take), w.y.eq(ry), w.x.eq(rx), w.c.eq(rch),
                     w.data.eq(self.pixels.payload)]
        if cfg.event_frames:
            m.d.comb += w.t.eq(rt)
            for i in range(8):
                with m.If(pix_or[i]):
                    m.d.comb += self.top.eq(i)

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [ry.eq(0), rx.eq(0), rch.eq(0)]
            if cfg.event_frames:
                m.d.sync += [rt.eq(0), pix_or.eq(0)]
        with m.Elif(take):
            if cfg.event_frames:
                m.d.sync += pix_or.eq(pix_or | self.pixels.payload)
            with m.If(rch == ends["channels"]):
                m.d.sync += rch.eq(0)
                with m.If(rx == ends["width"]):
                    m.d.sync += [rx.eq(0), ry.eq(ry + 1)]
                    with m.If(ry == ends["height"]):
                        # The frame's last pixel: the image's, or the next frame.
                        last = 1
                        if cfg.event_frames:
                            m.d.sync += [ry.eq(0), rt.eq(rt + 1)]
                            last = ~px.per_step | (rt == ends["steps"])
                        m.d.sync += self.done.eq(last)
                with m.Else():
                    m.d.sync += rx.eq(rx + 1)
            with m.Else():
                m.d.sync += rch.eq(rch + 1)
        return m
