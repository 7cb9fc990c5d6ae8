"""The fetch stage: the words of a row's input neighbourhood, read and streamed to the encoder.

A row of the engine's loop nest (group ``g``, position ``(y, x)``, step ``t``) convolves the
input words around ``(y, x)``: for a 3×3 kernel the taps ``(dy, dx)`` of the neighbourhood in
raster order, for each tap the ``words`` spike words (or, in the pixel layer, bytes) of that
input position. The fetch stage enumerates them, presents one read per cycle to the memory the
controller addresses from :attr:`NeighbourhoodFetch.read`, and streams each word, with its
index and the weight-row offset of its tap, to the event encoder.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import address_bits, descriptor_widths
from .loops import LoopNest

__all__ = ["NeighbourhoodFetch"]


class NeighbourhoodFetch(wiring.Component):
    """Neighbourhood word reader of the engine (fetch → event encoder).

    **Order.** Taps ``dy`` then ``dx`` (0, 1, 2 around the centre; ``1`` only for a 1×1
    kernel), then words ``0 … words − 1``. A spike map's neighbourhood is clipped at the
    map's border (taps outside it are skipped; the weights of a clipped tap would multiply
    zeros); the pixel layer reads every tap, and an out-of-bounds one (``read.oob``) reads the
    channel's zero point from the pad rows, so the controller addresses those instead.

    **Words.** Word ``k`` of tap ``(dy, dx)`` leaves with index ``word = k + ((3·dy + dx)·cin
    << word bits)`` (the tap's first weight row above the word index; no multiplier: one
    addition of shifted copies of ``cin`` and a registered ``3·cin``) and with ``last`` on the
    final word of the row. Each row's last word is masked with ``layer.lastmask`` (the channels
    beyond ``cin``).

    **Chaining.** With ``layer.chain`` (a CONV layer) the fetch goes on after a row's last word
    with the next row of the nest (step innermost, then position, then group) on its own
    counters until the nest ends, so the encoder streams from one row into the next without a
    gap. Without it, it stops after the row.

    **Cycle contract.** A word is read in the cycle ``read.en`` is high and streamed in the
    next; with a ready consumer one word per cycle, the first read in the cycle after ``start``.
    ``read.en`` is low while a word waits for a consumer that is not ready, so the read port
    holds its data. The read coordinates and ``oob`` are registers (computed one word ahead),
    so a memory address is one map-address adder away from flip-flops.

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Word width and loop-counter widths.

    Members
    -------
    layer : ``In(NeighbourhoodFetch.layer_layout)``
        The layer's fields, held while the fetch runs: ``chain``, ``pixel``, ``k3``, ``cin``,
        ``words``, ``in_h``/``in_w`` (the input map), ``out_h``/``out_w``/``steps``/``groups``
        (the nest), ``lastmask``.
    start : ``In(1)``
        Start a row at ``at`` (only while ``busy`` is low).
    at : ``In(NeighbourhoodFetch.at_layout)``
        The first row: ``g``, ``y``, ``x``, ``t``.
    read : ``Out(NeighbourhoodFetch.read_layout)``
        The word read this cycle: ``en``, its step ``t``, input position ``y``/``x``, ``word``
        and ``oob`` (the position is outside the map).
    data : ``In(width)``
        The read port's data (the word presented on ``read`` in the cycle before).
    o : ``Out(stream.Signature(NeighbourhoodFetch.word_layout))``
        Words to the encoder: ``data``, ``word``, ``last``.
    busy : ``Out(1)``
        A row is being read or a word waits; the fetch drives the read port's enable.
    """

    def __init__(self, config):
        self._config = cfg = config
        widths = descriptor_widths(cfg)
        self._rows_w = address_bits(cfg.weights_depth)
        self.layer_layout = data.StructLayout({
            "chain": 1, "pixel": 1, "k3": 1,
            **{k: widths[k] for k in ("cin", "words", "in_h", "in_w", "out_h", "out_w",
                                      "steps", "groups")},
            "lastmask": cfg.width,
        })
        self.at_layout = data.StructLayout({"g": cfg.group_bits, "y": cfg.coord_bits,
                                            "x": cfg.coord_bits, "t": cfg.step_bits})
        self.read_layout = data.StructLayout({
            "en": 1, "t": cfg.step_bits, "y": cfg.coord_bits, "x": cfg.coord_bits,
            "word": cfg.word_bits, "oob": 1})
        # The event encoder's input layout (EventEncoder(width, word_bits + rows).in_layout).
        self.word_layout = data.StructLayout({"data": cfg.width,
                                              "word": cfg.word_bits + self._rows_w, "last": 1})
        super().__init__({
            "layer": In(self.layer_layout),
            "start": In(1),
            "at": In(self.at_layout),
            "read": Out(self.read_layout),
            "data": In(cfg.width),
            "o": Out(stream.Signature(self.word_layout)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg, lay = self._config, self.layer
        cb, wb = cfg.coord_bits, cfg.word_bits
        m = Module()

        nest = LoopNest(m, {"g": cfg.group_bits, "y": cb, "x": cb, "t": cfg.step_bits},
                        {"g": lay.groups, "y": lay.out_h, "x": lay.out_w, "t": lay.steps},
                        prefix="fetch")
        cx = nest.c["x"]
        fdy, fdx = Signal(2, name="fetch_dy"), Signal(2, name="fetch_dx")
        fcw = Signal(wb, name="fetch_word")
        iy = Signal(signed(cb + 2), name="fetch_iy")    # the tap's input position
        ix = Signal(signed(cb + 2), name="fetch_ix")
        # The centre at the map's edges: the neighbourhood's first / last taps and the pixel
        # layer's out-of-bounds taps come from these flags, not from comparisons of iy / ix.
        top, bottom = Signal(name="fetch_top"), Signal(name="fetch_bottom")
        left, right = Signal(name="fetch_left"), Signal(name="fetch_right")
        cin3 = Signal(self._rows_w)
        more, pend = Signal(), Signal()     # words left to read; a word read, not yet taken
        o_word = Signal(len(self.o.payload.word))
        o_last, o_lastw = Signal(), Signal()

        clip = lay.k3 & ~lay.pixel

        def first_tap(edge):
            return Mux(lay.k3, Mux(clip & edge, 1, 0), 1)

        def last_tap(edge):
            return Mux(lay.k3, Mux(clip & edge, 1, 2), 1)

        def place(ny, nx):
            """Centre the neighbourhood on (ny, nx): its first tap and that tap's position."""
            at_top, at_left = ny == 0, nx == 0
            dy0, dx0 = first_tap(at_top), first_tap(at_left)
            m.d.sync += [
                top.eq(at_top), left.eq(at_left),
                bottom.eq(ny + 1 >= lay.in_h), right.eq(nx + 1 >= lay.in_w),
                fdy.eq(dy0), fdx.eq(dx0), iy.eq(ny + dy0 - 1), ix.eq(nx + dx0 - 1),
                fcw.eq(0),
            ]

        # Tap (dy, dx) of a 3×3 kernel starts at weight row (3·dy + dx)·cin of the group.
        tapoff = Signal(self._rows_w)
        m.d.comb += tapoff.eq(Mux(lay.k3, Mux(fdy[1], cin3 << 1, Mux(fdy[0], cin3, 0))
                                  + Mux(fdx[1], lay.cin << 1, Mux(fdx[0], lay.cin, 0)), 0))
        last_word = fcw == lay.words - 1
        last_col = fdx == last_tap(right)
        is_last = last_word & last_col & (fdy == last_tap(bottom))
        adv = ~pend | self.o.ready

        with m.If(adv):
            m.d.sync += pend.eq(more)
            with m.If(more):
                m.d.sync += [o_word.eq(Cat(fcw, tapoff)), o_last.eq(is_last),
                             o_lastw.eq(last_word), more.eq(~is_last)]
                with m.If(last_word):
                    m.d.sync += fcw.eq(0)
                    with m.If(last_col):
                        dx0 = first_tap(left)
                        m.d.sync += [fdx.eq(dx0), fdy.eq(fdy + 1),
                                     ix.eq(cx + dx0 - 1), iy.eq(iy + 1)]
                    with m.Else():
                        m.d.sync += [fdx.eq(fdx + 1), ix.eq(ix + 1)]
                with m.Else():
                    m.d.sync += fcw.eq(fcw + 1)
                with m.If(lay.chain & is_last & ~nest.done):
                    m.d.sync += more.eq(1)
                    place(nest.next["y"], nest.next["x"])
                    nest.advance()
        with m.If(self.start):
            m.d.sync += [more.eq(1), pend.eq(0), cin3.eq(lay.cin + (lay.cin << 1))]
            place(self.at.y, self.at.x)
            nest.write(g=self.at.g, y=self.at.y, x=self.at.x, t=self.at.t)

        m.d.comb += [
            self.read.en.eq(adv),
            self.read.t.eq(nest.c["t"]),
            self.read.y.eq(iy[:cb]),
            self.read.x.eq(ix[:cb]),
            self.read.word.eq(fcw),
            self.read.oob.eq(((fdy == 0) & top) | ((fdy == 2) & bottom)
                             | ((fdx == 0) & left) | ((fdx == 2) & right)),
            self.o.valid.eq(pend),
            self.o.payload.data.eq(self.data & Mux(o_lastw, lay.lastmask,
                                                   Const(-1, cfg.width))),
            self.o.payload.word.eq(o_word),
            self.o.payload.last.eq(o_last),
            self.busy.eq(more | pend),
        ]
        return m
