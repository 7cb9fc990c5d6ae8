"""Spike-driven self-attention (SDSA) unit: column counts of K∧V, a channel mask, Q∧mask.

Per time step: ``kv[c] = Σ_n K[n,c] ∧ V[n,c]``; the mask neuron is an integer LIF fed
``kv << shift`` with threshold θ and a state kept across time steps; the output is ``Q ∧ mask``.
With the reference model's τ = 2, V_th = 0.5 (θ = 1 at ``shift = 1``) the mask state stays 0 and
the mask is just ``OR_n (K ∧ V)``; ``mode="or"`` builds that stateless special case, 1 bit per
channel instead of a counter and a membrane.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .event_encoder import _check_positive, _check_pow2

__all__ = ["SDSAUnit", "SDSAOp"]


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

    One command per cycle, each on one word (``W`` channels) of a row. A time step of an
    ``N``-token layer is ``N·D/W`` ``KV`` commands, then ``D/W`` ``MASK`` commands, then
    ``N·D/W`` ``Q`` commands: ``(2N + 1)·D/W`` cycles, linear in ``N·D/W``. ``Q`` results
    appear on ``o`` one cycle after the command is accepted (latency 1).

    Per-word state sits in one ``lib.memory.Memory`` row (counts, mask membranes, mask bits),
    read the cycle a command is accepted and written back the next; the read port is
    transparent, so back-to-back updates of one word see each other.

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
        _check_pow2("Word width", width)
        _check_positive("Channel count", channels)
        _check_positive("Token count", tokens)
        if channels % width:
            raise ValueError(f"Channel count {channels!r} is not a multiple of the word width "
                             f"{width!r}")
        if mode not in ("lif", "or"):
            raise ValueError(f"Mode must be 'lif' or 'or', not {mode!r}")
        _check_positive("Threshold width", theta_width)
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
        # A stored mask membrane is an H below θ, and H is at most max(V, kv << shift).
        self._vm_width = max(theta_width, self._count_width + shift) + 1
        word_width = max((self._words - 1).bit_length(), 1)
        fields = {"count": data.ArrayLayout(self._count_width, width), "mask": width}
        if mode == "lif":
            fields["vm"] = data.ArrayLayout(signed(self._vm_width), width)
        self.row_layout = data.StructLayout(fields)
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
        # At least two rows: a one-row memory has a zero-width address port, which Verilator
        # rejects (ASCRANGE); the spare row is never addressed.
        m.submodules.mem = mem = memory.Memory(shape=self.row_layout, depth=max(self._words, 2),
                                               init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))

        s_valid = Signal()
        s = Signal(self.in_layout)
        stall = s_valid & (s.op == SDSAOp.Q) & ~self.o.ready
        advance = ~stall
        m.d.comb += [
            self.i.ready.eq(advance),
            rd.addr.eq(self.i.payload.word),
            rd.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += [s_valid.eq(self.i.valid), s.eq(self.i.payload)]

        row = rd.data
        new = Signal(self.row_layout)
        m.d.comb += new.eq(row)
        kv = s.a & s.b
        # If/Elif rather than a Switch, for the reason given in pe_array.py.
        with m.If(s.op == SDSAOp.KV):
            for c in range(w):
                old = Mux(s.first, 0, row.count[c])
                if self._mode == "or":
                    m.d.comb += new.count[c].eq(old | kv[c])
                else:
                    m.d.comb += new.count[c].eq(old + kv[c])
        with m.Elif(s.op == SDSAOp.MASK):
            for c in range(w):
                if self._mode == "or":
                    m.d.comb += new.mask[c].eq(row.count[c])
                else:
                    vm = Mux(s.first, 0, row.vm[c])
                    h = Signal(signed(self._vm_width + 1), name=f"h{c}")
                    m.d.comb += h.eq((vm + (row.count[c] << self._shift)) >> 1)
                    fire = h >= self.theta
                    m.d.comb += [
                        new.mask[c].eq(fire),
                        new.vm[c].eq(Mux(fire, 0, h)),
                    ]
        m.d.comb += [
            wr.addr.eq(s.word),
            wr.data.eq(new),
            wr.en.eq(s_valid & (s.op != SDSAOp.Q)),
            self.o.valid.eq(s_valid & (s.op == SDSAOp.Q)),
            self.o.payload.data.eq(s.a & row.mask),
            self.o.payload.word.eq(s.word),
            self.o.payload.last.eq(s.last),
        ]
        return m
