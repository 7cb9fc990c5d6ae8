"""Spike-driven self-attention (SDSA) unit: column counts of K∧V, a channel mask, Q∧mask.

Per time step: ``kv[c] = Σ_n K[n,c] ∧ V[n,c]``; the mask neuron is an integer LIF fed
``kv << shift`` with threshold θ and a state kept across time steps; the output is ``Q ∧ mask``.
With the reference model's τ = 2, V_th = 0.5 (θ = 1 at ``shift = 1``) the mask state stays 0 and
the mask is just ``OR_n (K ∧ V)``; ``mode="or"`` builds that stateless special case, 1 bit per
channel instead of a counter and a membrane.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive, check_pow2

__all__ = ["SDSAUnit", "SDSAOp", "mask_membrane_width"]


def mask_membrane_width(tokens, theta_width, shift):
    """Bits of one stored mask membrane of a ``"lif"`` unit (its memory has one row per channel).

    The membranes never go negative: V starts at 0 and H = (V + (kv << shift)) >> 1 with
    kv >= 0. H is at most max(V, kv << shift), so V never exceeds the largest shifted count
    (``count_width + shift`` bits), and a stored V is an H below θ, so below
    2**(theta_width - 1): V is stored unsigned in the smaller of the two widths.
    """
    return max(min(theta_width - 1, tokens.bit_length() + shift), 1)


class SDSAOp(enum.Enum, shape=2):
    """SDSA command codes."""
    #: fold one word of a K row and a V row into the column counts
    KV = 0
    #: turn one word of column counts into mask bits (updating the mask neurons)
    MASK = 1
    #: emit ``Q ∧ mask`` for one word of a Q row
    Q = 2


class SDSAUnit(wiring.Component):
    """SDSA over spike rows of ``channels`` bits, ``width`` channels per cycle.

    Each command works on one word (``W`` channels) of a row. ``KV`` and ``Q`` commands take
    one cycle each (back to back, one word per cycle); ``Q`` results appear on ``o`` one cycle
    after the command is accepted (latency 1), and a ``Q`` result held by ``o.ready`` low holds
    ``i.ready`` low.

    ``MASK`` takes exactly ``W`` cycles with ``mode="lif"`` (1 with ``mode="or"``): after a
    ``MASK`` command is accepted, ``i.ready`` stays low for the next ``W − 1`` cycles, whatever
    the data, so the next command (of any kind) is accepted ``W`` cycles after the ``MASK``
    at the earliest. A controller holding ``valid`` high for the ``D/W`` ``MASK`` commands of a
    row (the first accepted at once, as after a ``KV``) spends ``(D/W − 1)·W + 1 = D − W + 1``
    cycles from the first offer to the last acceptance, both included. Its next command may be
    offered the very next cycle: it is accepted ``W`` cycles after the last ``MASK`` (once the
    mask bits are written, so a ``Q`` sees them and a ``KV`` with ``first`` cannot clobber the
    counts the ``MASK`` still reads).

    A time step of an ``N``-token layer is ``N·D/W`` ``KV`` commands, then ``D/W`` ``MASK``
    commands, then ``N·D/W`` ``Q`` commands: ``2N·D/W + D`` cycles with ``mode="lif"`` and
    ``(2N + 1)·D/W`` with ``mode="or"``, issued back to back.

    The ``lif`` mask runs one neuron (channel) per cycle through a single adder and
    comparator; the membranes ``vm`` sit in their own ``lib.memory.Memory`` of ``D`` rows (one
    channel per row, a block RAM candidate), read one cycle ahead of their update, unsigned
    and only as wide as a stored membrane can get (see ``__init__``). The counts
    sit in a register per word, each with its own adders, and the ``lif`` mask bits in a small
    memory of ``D/W`` rows with an asynchronous read port (flip-flops): a command reads them
    the cycle after it is accepted and writes them at the end of that cycle, so every command
    sees the previous ones' results. With ``mode="or"`` the mask of a word is its count
    register itself (one bit per channel, ``OR_n K∧V``) and a ``MASK`` command does nothing
    in its cycle: a step's ``Q`` commands must come before the next step's first ``KV``
    (the order :class:`~.sdsa_sequencer.SDSASequencer` issues them in).

    ``first`` flags replace clearing sweeps: on ``KV`` it marks token 0 (counts restart from 0),
    on ``MASK`` time step 0 (the mask membranes restart from 0).

    Parameters
    ----------
    channels : :class:`int`
        Channels ``D`` per row (a multiple of ``width``).
    width : :class:`int`
        Word width ``W`` (a power of two).
    tokens : :class:`int`
        Maximum token count ``N`` (sizes the counters; unused with ``mode="or"``).
    mode : :class:`str`
        ``"lif"`` (general rule) or ``"or"`` (stateless V_th = 0.5 case).
    theta_width : :class:`int`
        Width of the signed threshold port ``theta`` (``"lif"`` only).
    shift : :class:`int`
        Left shift applied to the count before the mask LIF (1 for V_th = 0.5).

    Members
    -------
    i : ``In(stream.Signature(SDSAUnit.in_layout))``
        ``op`` (:class:`SDSAOp`), ``word`` (word index within a row), ``a`` (``W`` bits: K for
        ``KV``, Q for ``Q``), ``b`` (``W`` bits: V for ``KV``), ``first``, ``last`` (passed to
        ``o`` with ``Q``).
    o : ``Out(stream.Signature(SDSAUnit.out_layout))``
        ``data`` (``Q ∧ mask``, ``W`` bits), ``word``, ``last``.
    theta : ``In(signed(theta_width))``
        Mask threshold θ (a layer constant; hold it steady while ``MASK`` commands run).
    """

    def __init__(self, channels, width, tokens, *, mode="lif", theta_width=8, shift=1):
        check_pow2("Word width", width)
        check_positive("Channel count", channels)
        check_positive("Token count", tokens)
        if channels % width:
            raise ValueError(f"Channel count {channels!r} is not a multiple of the word width "
                             f"{width!r}")
        if mode not in ("lif", "or"):
            raise ValueError(f"Mode must be 'lif' or 'or', not {mode!r}")
        check_positive("Threshold width", theta_width)
        if not isinstance(shift, int) or isinstance(shift, bool):
            raise TypeError(f"Shift must be an integer, not {shift!r}")
        if shift < 0:
            raise ValueError(f"Shift must be non-negative, not {shift!r}")
        self._channels = channels
        self._width = width
        self._words = channels // width
        self._mode = mode
        self._shift = shift
        self._count_width = tokens.bit_length() if mode == "lif" else 1
        self._vm_width = mask_membrane_width(tokens, theta_width, shift)
        word_width = max((self._words - 1).bit_length(), 1)
        self.count_layout = data.ArrayLayout(self._count_width, width)
        self.in_layout = data.StructLayout({
            "op": SDSAOp, "word": word_width, "a": width, "b": width, "first": 1, "last": 1,
        })
        self.out_layout = data.StructLayout({"data": width, "word": word_width, "last": 1})
        members = {
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        }
        if mode == "lif":
            members["theta"] = In(signed(theta_width))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        w = self._width
        lif = self._mode == "lif"
        # At least two rows in every memory: a one-row memory has a zero-width address port,
        # which Verilator rejects (ASCRANGE); the spare row is never addressed.
        rows = max(self._words, 2)
        # The counts are one register per word, each with its own adders: a flip-flop whose
        # next value is computed by a LUT of its own shares that LUT's logic cell on the iCE40
        # (a memory's shared write data would leave every count bit a cell of its own, and its
        # read multiplexer would sit in front of the adders).
        counts = [Signal(self.count_layout, name=f"counts{r}") for r in range(self._words)]
        if lif:
            m.submodules.masks = masks = memory.Memory(shape=w, depth=rows, init=[])
            mask_wr = masks.write_port()
            mask_rd = masks.read_port(domain="comb")

        s_valid = Signal()
        s = Signal(self.in_layout)
        is_kv = s_valid & (s.op == SDSAOp.KV)
        is_mask = s_valid & (s.op == SDSAOp.MASK)
        is_q = s_valid & (s.op == SDSAOp.Q)
        stall = is_q & ~self.o.ready
        # Channel of the word under a "lif" MASK command that is updated this cycle (none with
        # W = 1: a zero-width signal would be a `[-1:0]` wire, which Verilator rejects).
        kbits = (w - 1).bit_length() if lif else 0
        k = Signal(kbits, name="chan") if kbits else None
        mask_last = (k == w - 1) if kbits else Const(1, 1)
        stall |= is_mask & ~mask_last
        advance = ~stall
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]

        # The counts of word `s.word`, the last repeated for the codes past D/W: the index's
        # case statement covers every code (Verilator's CASEINCOMPLETE otherwise).
        rows_of = [c.as_value() for c in counts]
        rows_of += rows_of[-1:] * ((1 << len(s.word)) - len(rows_of))
        row = Signal(self.count_layout)
        m.d.comb += row.eq(Array(rows_of)[s.word])

        # KV: one word of counts per cycle.
        kv = s.a & s.b
        for r, count in enumerate(counts):
            with m.If(is_kv & (s.word == r)):
                for c in range(w):
                    old = Mux(s.first, 0, count[c])
                    m.d.sync += count[c].eq((old + kv[c]) if lif else (old | kv[c]))

        # MASK: the mask bits of one word, written to `masks` in its last cycle. In the "or"
        # mode the mask is the word's counts themselves (OR_n K∧V), which no command changes
        # between a step's MASK and its Q: a MASK does nothing in its cycle.
        if lif:
            m.d.comb += [mask_wr.addr.eq(s.word), mask_wr.en.eq(is_mask & mask_last),
                         mask_rd.addr.eq(s.word),
                         mask_wr.data.eq(self._lif_mask(m, s, row, k, is_mask, mask_last))]
            mask = mask_rd.data
        else:
            mask = row.as_value()

        m.d.comb += [
            self.o.valid.eq(is_q),
            self.o.payload.data.eq(s.a & mask),
            self.o.payload.word.eq(s.word),
            self.o.payload.last.eq(s.last),
        ]
        return m

    def _lif_mask(self, m, s, row, k, is_mask, mask_last):
        """The serial mask neuron: channel ``k`` of word ``s.word`` per cycle; the mask bits."""
        w = self._width

        def vm_addr(word, chan):
            return Cat(chan, word) if k is not None else word

        # One membrane per row, at address `word·W + channel`. With W > 1 the read of the
        # next channel never hits the row written in the same cycle (the next channel of the
        # same word, or channel 0 of another word after channel W − 1); with W = 1 two MASK
        # commands on one word back to back would, so the read port is transparent then.
        m.submodules.vms = vms = memory.Memory(shape=self._vm_width,
                                               depth=max(self._channels, 2), init=[])
        vm_wr = vms.write_port()
        vm_rd = vms.read_port(transparent_for=(vm_wr,) if k is None else ())

        # Read channel k+1 of the word under way, or channel 0 of the command being offered
        # (used only if it is a MASK and gets accepted this cycle).
        count = Signal(self._count_width)
        if k is None:
            m.d.comb += [vm_rd.addr.eq(self.i.payload.word), count.eq(row[0])]
        else:
            with m.If(is_mask & ~mask_last):
                m.d.comb += vm_rd.addr.eq(vm_addr(s.word, (k + 1)[:len(k)]))
            with m.Else():
                m.d.comb += vm_rd.addr.eq(vm_addr(self.i.payload.word, Const(0, len(k))))
            with m.If(is_mask):
                m.d.sync += k.eq(Mux(mask_last, 0, k + 1))
            # The count of channel k: a binary mux tree on the bits of k (indexing the row
            # with a signal would build a multiply by the element width).
            level = [row[c] for c in range(w)]
            for b in range(len(k)):
                level = [Mux(k[b], level[2 * j + 1], level[2 * j])
                         for j in range(len(level) // 2)]
            m.d.comb += count.eq(level[0])

        vm = Mux(s.first, 0, vm_rd.data)
        # Unsigned: V and the shifted count are non-negative, so >> 1 is the arithmetic shift.
        h = Signal(max(self._vm_width, self._count_width + self._shift))
        m.d.comb += h.eq((vm + (count << self._shift)) >> 1)
        fire = Signal()
        m.d.comb += fire.eq(h >= self.theta)
        m.d.comb += [
            vm_wr.addr.eq(vm_addr(s.word, k)),
            vm_wr.data.eq(Mux(fire, 0, h)),
            vm_wr.en.eq(is_mask),
        ]
        if k is None:
            return fire
        # Mask bits of the earlier channels, shifted in from the top; the last channel's bit
        # joins them on the write.
        bits = Signal(w - 1)
        with m.If(is_mask):
            m.d.sync += bits.eq(Cat(bits[1:], fire))
        return Cat(bits, fire)
