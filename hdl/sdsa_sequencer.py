"""The SDSA stage: reads K, V and Q rows of a spike map, runs the SDSA unit, writes Q ∧ mask."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import SDSA_THETA_BITS, descriptor_widths
from .sdsa import SDSAOp, SDSAUnit

__all__ = ["SDSASequencer"]


class SDSASequencer(wiring.Component):
    """Sequencer of one ``SDSA`` layer over the spike memory (owns the :class:`~.sdsa.SDSAUnit`).

    Per time step ``t`` (``0 … steps − 1``): for every token ``(y, x)`` in raster order and
    word ``k``, read ``K[t, y, x, k]``, then ``V[t, y, x, k]``, and fold both into the column
    counts (``KV``); then the row's ``MASK`` commands; then for every token and word read
    ``Q[t, y, x, k]`` and write ``Q ∧ mask`` to the output map at the same ``(t, y, x, k)``.
    The last word of a row is masked with ``layer.lastmask`` (channels beyond ``cin``).

    **Cycle contract.** ``start`` is taken in the cycle it is high; ``done`` is high (one
    cycle, combinationally) when the last output word is written. A ``KV`` word takes three
    cycles (read K, read V, command), a ``Q`` word three (read, command, write), and the
    ``MASK`` commands of a step ``D − W + 1`` cycles plus the unit's ``W``-cycle wait
    (:class:`~.sdsa.SDSAUnit`). ``sim/cycles.py`` counts them (its ``sdsa`` handler).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Word width, loop-counter widths, the SDSA unit's size and shift.

    Members
    -------
    layer : ``In(SDSASequencer.layer_layout)``
        The layer's fields, held while it runs: ``steps``, ``words``, ``tokens_h``,
        ``tokens_w``, ``q_base``/``k_base``/``v_base`` (map bases; the output map is the
        controller's), ``theta``, ``lastmask``.
    start : ``In(1)``
        Run the layer.
    done : ``Out(1)``
        The layer's last word is written this cycle.
    read : ``Out(SDSASequencer.read_layout)``
        The spike read port's request: ``en`` (low: hold the data), the map's ``base`` and
        the row ``t``, ``y``, ``x``, ``word``.
    data : ``In(width)``
        The read port's data (of the request a cycle before).
    write : ``Out(SDSASequencer.write_layout)``
        The spike write: ``en`` (whole word), ``t``, ``y``, ``x``, ``word``, ``data``.
    """

    def __init__(self, config):
        self._config = cfg = config
        widths = descriptor_widths(cfg)
        maps = widths["in_base"]
        self.layer_layout = data.StructLayout({
            "steps": widths["steps"], "words": widths["words"],
            "tokens_h": widths["in_h"], "tokens_w": widths["in_w"],
            "q_base": maps, "k_base": widths["k_base"], "v_base": widths["v_base"],
            "theta": signed(SDSA_THETA_BITS), "lastmask": cfg.width,
        })
        row = {"t": cfg.step_bits, "y": cfg.coord_bits, "x": cfg.coord_bits,
               "word": cfg.word_bits}
        self.read_layout = data.StructLayout({"en": 1, "base": maps, **row})
        self.write_layout = data.StructLayout({"en": 1, **row, "data": cfg.width})
        super().__init__({
            "layer": In(self.layer_layout),
            "start": In(1),
            "done": Out(1),
            "read": Out(self.read_layout),
            "data": In(cfg.width),
            "write": Out(self.write_layout),
        })

    def elaborate(self, platform):
        cfg, lay = self._config, self.layer
        w = cfg.width
        m = Module()
        m.submodules.unit = unit = SDSAUnit(cfg.sdsa_channels, w, cfg.max_tokens, mode="lif",
                                            theta_width=SDSA_THETA_BITS, shift=cfg.sdsa_shift)
        t = Signal(cfg.step_bits, name="sdsa_step")
        hy = Signal(cfg.coord_bits, name="sdsa_y")
        hx = Signal(cfg.coord_bits, name="sdsa_x")
        cw = Signal(cfg.word_bits, name="sdsa_word")
        kword = Signal(w)
        last_word = cw == lay.words - 1
        last_tok = (hx == lay.tokens_w - 1) & (hy == lay.tokens_h - 1)
        masked = self.data & Mux(last_word, lay.lastmask, Const(-1, w))
        rd, wr, cmd = self.read, self.write, unit.i.payload
        m.d.comb += [
            unit.theta.eq(lay.theta),
            rd.en.eq(1), rd.base.eq(lay.q_base),
            rd.t.eq(t), rd.y.eq(hy), rd.x.eq(hx), rd.word.eq(cw),
            wr.t.eq(t), wr.y.eq(hy), wr.x.eq(hx), wr.word.eq(cw),
            wr.data.eq(unit.o.payload.data),
            cmd.word.eq(cw),
        ]

        def advance(done_state, again_state):
            """The next word of the token sweep (word, then x, then y)."""
            with m.If(last_word):
                m.d.sync += cw.eq(0)
                with m.If(hx == lay.tokens_w - 1):
                    m.d.sync += [hx.eq(0), hy.eq(hy + 1)]
                    with m.If(hy == lay.tokens_h - 1):
                        m.d.sync += hy.eq(0)
                        m.next = done_state
                    with m.Else():
                        m.next = again_state
                with m.Else():
                    m.d.sync += hx.eq(hx + 1)
                    m.next = again_state
            with m.Else():
                m.d.sync += cw.eq(cw + 1)
                m.next = again_state

        with m.FSM(name="sdsa_seq"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [t.eq(0), cw.eq(0), hy.eq(0), hx.eq(0)]
                    m.next = "K"
            with m.State("K"):
                m.d.comb += rd.base.eq(lay.k_base)
                m.next = "V"
            with m.State("V"):
                m.d.comb += rd.base.eq(lay.v_base)
                m.d.sync += kword.eq(masked)
                m.next = "KV"
            with m.State("KV"):
                m.d.comb += [
                    rd.en.eq(0),
                    unit.i.valid.eq(1), cmd.op.eq(SDSAOp.KV), cmd.a.eq(kword), cmd.b.eq(masked),
                    cmd.first.eq((hy == 0) & (hx == 0)),
                ]
                with m.If(unit.i.ready):
                    advance("MASK", "K")
            with m.State("MASK"):
                m.d.comb += [unit.i.valid.eq(1), cmd.op.eq(SDSAOp.MASK),
                             cmd.first.eq(t == 0)]
                with m.If(unit.i.ready):
                    with m.If(last_word):
                        m.d.sync += cw.eq(0)
                        m.next = "Q"
                    with m.Else():
                        m.d.sync += cw.eq(cw + 1)
            with m.State("Q"):
                m.next = "QSEND"
            with m.State("QSEND"):
                m.d.comb += [
                    rd.en.eq(0),
                    unit.i.valid.eq(1), cmd.op.eq(SDSAOp.Q), cmd.a.eq(masked),
                    # Unused downstream, but left undriven it becomes a constant `always @*`
                    # that event-driven simulators never execute (X in Icarus, ALWNEVER in
                    # Verilator).
                    cmd.last.eq(last_word & last_tok),
                ]
                with m.If(unit.i.ready):
                    m.next = "QOUT"
            with m.State("QOUT"):
                m.d.comb += [unit.o.ready.eq(1), wr.en.eq(unit.o.valid)]
                with m.If(unit.o.valid):
                    with m.If(last_word & last_tok):
                        m.d.sync += [cw.eq(0), hx.eq(0), hy.eq(0), t.eq(t + 1)]
                        with m.If(t == lay.steps - 1):
                            m.d.comb += self.done.eq(1)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "K"
                    with m.Else():
                        advance("Q", "Q")
        return m
