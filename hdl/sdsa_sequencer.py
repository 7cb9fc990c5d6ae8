"""The SDSA stage: reads K, V and Q rows of a spike map, runs the SDSA unit, writes Q ∧ mask."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accel_isa import SDSA_THETA_BITS, descriptor_widths
from .sdsa import SDSAOp, SDSAUnit, mask_membrane_width

__all__ = ["SDSASequencer", "sdsa_membranes"]


def sdsa_membranes(config):
    """``(rows, bits)`` of the SDSA unit's mask-membrane memory (a block RAM candidate), or
    ``None``: the ``"or"`` unit (``config.sdsa_or``) has none."""
    if config.sdsa_or:
        return None
    return config.sdsa_channels, mask_membrane_width(config.max_tokens, SDSA_THETA_BITS,
                                                     config.sdsa_shift)


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
    (:class:`~.sdsa.SDSAUnit`), or ``D / W`` cycles with the ``"or"`` unit that
    ``config.sdsa_or`` builds. ``sim/cycles.py`` counts them (its ``sdsa`` handler).

    **DVS mode** (built when ``config.dvs_head_channels``; a layer with ``erode``): the
    reference's ``dvs_mode`` erodes ``K ∧ V`` and ``Q ∧ mask`` over (token, channel within a
    head) (:func:`sdtforge.sim.ops.erode_heads`; K and V come eroded over space by
    ``POOL_OR``). Each output word ``(y, x, k)`` ORs the words of its window: the neighbouring
    tokens in raster order (across row ends, not past the first or last) times word ``k`` and,
    where a head spans several words, the words before and after it within the head, each
    shifted by a channel inside the head. ``KV``: per window position read K and V and fold,
    then one ``KV`` command with the eroded word as both operands (``a ∧ a = a``). ``Q``: per
    window position read Q, send it as a ``Q`` command of its own word (the unit masks it)
    and fold the result, then write the eroded word. An output word costs one cycle to start
    its window, three per window position and one for its command or write; the ``MASK``
    commands as above, the unit's wait overlapping two cycles of the first ``Q`` window
    (``sim/cycles.py``'s ``sdsa_dvs`` handler).

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Word width, loop-counter widths, the SDSA unit's size, shift and mode (``sdsa_or``).

    Members
    -------
    layer : ``In(SDSASequencer.layer_layout)``
        The layer's fields, held while it runs: ``steps``, ``words``, ``tokens_h``,
        ``tokens_w``, ``q_base``/``k_base``/``v_base`` (map bases; the output map is the
        controller's), ``theta``, ``lastmask`` and, in a DVS build, ``erode``.
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
            **({"erode": 1} if cfg.dvs_head_channels else {}),
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
        m.submodules.unit = unit = SDSAUnit(cfg.sdsa_channels, w, cfg.max_tokens,
                                            mode="or" if cfg.sdsa_or else "lif",
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
        if not cfg.sdsa_or:
            m.d.comb += unit.theta.eq(lay.theta)
        m.d.comb += [
            rd.en.eq(1), rd.base.eq(lay.q_base),
            rd.t.eq(t), rd.y.eq(hy), rd.x.eq(hx), rd.word.eq(cw),
            wr.t.eq(t), wr.y.eq(hy), wr.x.eq(hx), wr.word.eq(cw),
            wr.data.eq(unit.o.payload.data),
            cmd.word.eq(cw),
        ]

        hd = cfg.dvs_head_channels
        # DVS mode: the word's place within its head (the heads span `head_words` words).
        head_words = max(hd // w, 1)
        hw = Signal(range(head_words), name="sdsa_head_word") if head_words > 1 else None

        def advance(done_state, again_state):
            """The next word of the token sweep (word, then x, then y)."""
            if hw is not None:
                m.d.sync += hw.eq(Mux(last_word | (hw == head_words - 1), 0, hw + 1))
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

        if hd:
            erode = lay.erode
            win = self._erosion(m, lay, t, hy, hx, cw, hw, head_words, last_word, last_tok)
        with m.FSM(name="sdsa_seq"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [t.eq(0), cw.eq(0), hy.eq(0), hx.eq(0)]
                    if hw is not None:
                        m.d.sync += hw.eq(0)
                    m.next = "K"
                    if hd:
                        with m.If(erode):
                            m.next = "EKW"
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
                        if hd:
                            with m.If(erode):
                                m.next = "EQW"
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
            if hd:
                self._erosion_states(m, win, unit, t, advance, last_word, last_tok)
        return m

    def _erosion(self, m, lay, t, hy, hx, cw, hw, head_words, last_word, last_tok):
        """DVS mode's window over (token, word): its registers, read address and fold."""
        w, hd = self._config.width, self._config.dvs_head_channels
        win = SimpleNamespace(dn=Signal(2, name="sdsa_dn"), dk=Signal(2, name="sdsa_dk"),
                              acc=Signal(w, name="sdsa_acc"), kword=Signal(w))
        dn, dk = win.dn, win.dk
        # The neighbouring tokens in raster order (row ends wrap to the next row).
        row_start, row_end = hx == 0, hx == lay.tokens_w - 1
        ty = [Mux(row_start, hy - 1, hy), hy, Mux(row_end, hy + 1, hy)]
        tx = [Mux(row_start, lay.tokens_w - 1, hx - 1), hx, Mux(row_end, 0, hx + 1)]
        has_prev = ~(row_start & (hy == 0))
        # The words before and after within the head (none where a head fits in a word).
        has_left = (hw != 0) if hw is not None else Const(0, 1)
        has_right = (hw != head_words - 1) if hw is not None else Const(0, 1)
        win.dn0, win.dk0 = Mux(has_prev, 0, 1), Mux(has_left, 0, 1)
        dn1, dk1 = Mux(last_tok, 1, 2), Mux(has_right, 2, 1)
        win.last = (dn == dn1) & (dk == dk1)
        rk = (cw + dk - 1)[:len(cw)]
        win.ry, win.rx = Signal.like(hy, name="sdsa_ry"), Signal.like(hx, name="sdsa_rx")
        m.d.comb += [win.ry.eq(Mux(dn[1], ty[2], Mux(dn[0], ty[1], ty[0]))),
                     win.rx.eq(Mux(dn[1], tx[2], Mux(dn[0], tx[1], tx[0])))]
        win.rk = rk
        win.first_token = (hy == 0) & (hx == 0)
        win.masked = self.data & Mux(rk == lay.words - 1, lay.lastmask, Const(-1, w))
        # Channels j and j + 1 of a word lie in different heads where `seam` has bit j.
        seam = Const(sum(1 << j for j in range(w - 1) if (j + 1) % hd == 0) if hd < w else 0,
                     w)

        def fold(x):
            """``acc | x`` dilated by a channel within its head, as word ``cw + dk − 1``."""
            own = x | ((x & ~seam) << 1)[:w] | ((x >> 1) & ~seam)
            return win.acc | Mux(dk == 0, Cat(x[w - 1], Const(0, w - 1)),
                                 Mux(dk == 1, own, Cat(Const(0, w - 1), x[0])))

        def step():
            """The next window position (word, then token)."""
            with m.If(dk == dk1):
                m.d.sync += [dk.eq(win.dk0), dn.eq(dn + 1)]
            with m.Else():
                m.d.sync += dk.eq(dk + 1)

        def take(x, done_state, again_state):
            """Fold ``x`` (the word at the window position); on to the next position, or to
            ``done_state`` after the last."""
            m.d.sync += win.acc.eq(fold(x))
            with m.If(win.last):
                m.next = done_state
            with m.Else():
                step()
                m.next = again_state

        win.take = take
        return win

    def _erosion_states(self, m, win, unit, t, advance, last_word, last_tok):
        """The DVS mode's states (``E…``), in the sequencer's FSM."""
        lay, rd, wr, cmd = self.layer, self.read, self.write, unit.i.payload
        at_window = [rd.y.eq(win.ry), rd.x.eq(win.rx), rd.word.eq(win.rk)]

        def start_window(state):
            m.d.sync += [win.dn.eq(win.dn0), win.dk.eq(win.dk0), win.acc.eq(0)]
            m.next = state

        with m.State("EKW"):
            m.d.comb += rd.en.eq(0)
            start_window("EK")
        with m.State("EK"):
            m.d.comb += [rd.base.eq(lay.k_base), *at_window]
            m.next = "EV"
        with m.State("EV"):
            m.d.comb += [rd.base.eq(lay.v_base), *at_window]
            m.d.sync += win.kword.eq(win.masked)
            m.next = "EF"
        with m.State("EF"):
            m.d.comb += rd.en.eq(0)
            win.take(win.kword & win.masked, "EKV", "EK")
        with m.State("EKV"):
            m.d.comb += [
                rd.en.eq(0),
                unit.i.valid.eq(1), cmd.op.eq(SDSAOp.KV), cmd.a.eq(win.acc), cmd.b.eq(win.acc),
                cmd.first.eq(win.first_token),
            ]
            with m.If(unit.i.ready):
                advance("MASK", "EKW")
        with m.State("EQW"):
            m.d.comb += rd.en.eq(0)
            start_window("EQ")
        with m.State("EQ"):
            m.d.comb += at_window
            m.next = "EQS"
        with m.State("EQS"):
            m.d.comb += [rd.en.eq(0), unit.i.valid.eq(1), cmd.op.eq(SDSAOp.Q),
                         cmd.a.eq(win.masked), cmd.word.eq(win.rk)]
            with m.If(unit.i.ready):
                m.next = "EQO"
        with m.State("EQO"):
            m.d.comb += [rd.en.eq(0), unit.o.ready.eq(1)]
            with m.If(unit.o.valid):
                win.take(unit.o.payload.data, "EQWR", "EQ")
        with m.State("EQWR"):
            m.d.comb += [rd.en.eq(0), wr.en.eq(1), wr.data.eq(win.acc)]
            with m.If(last_word & last_tok):
                advance("EKW", "EQW")           # back to the first token and word
                m.d.sync += t.eq(t + 1)
                with m.If(t == lay.steps - 1):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
            with m.Else():
                advance("EQW", "EQW")
