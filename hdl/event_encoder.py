"""Event encoder: spike-bitmap words in, addresses of the active channels out.

A spike map row (one token / position) is stored as ``ceil(C / W)`` words of ``W`` bits; bit
``b`` of word ``j`` is channel ``j * W + b``. The encoder turns each word into one event per set
bit, lowest channel first, which is what makes the rest of the datapath event-driven: the PE
array does one weight-row read per event and nothing for zeros. With ``events = 2`` an item
carries the word's next two events (the ECP5's block RAMs read two weight rows per cycle).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_positive, check_pow2

__all__ = ["EventEncoder"]


def _popcount(value):
    """Number of set bits of ``value``: a balanced tree of adders."""
    terms = [value[i] for i in range(len(value))]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class EventEncoder(wiring.Component):
    """Zero-skipping converter from spike-bitmap words to channel-address events.

    Every input word occupies the encoder for ``max(⌈popcount(word) / E⌉, 1)`` cycles (``E =
    events``): one cycle per item of up to ``E`` events, and one cycle for a word without events.
    With a ready consumer and a word always waiting, a row of words ``w_0 … w_{n-1}`` therefore
    takes ``Σ max(⌈popcount(w_i) / E⌉, 1)`` cycles plus one cycle of latency (a registered stage
    between input and output). An item's events come from one word, lowest channels first.

    End of row: the final event of a row (that of the word marked ``last``) carries ``last = 1``.
    When the ``last`` word has no set bit, the encoder emits one *marker* item instead, with
    ``last = 1`` and ``none = 1``, so that every row (empty rows included) ends with exactly one
    ``last`` item downstream.

    Parameters
    ----------
    width : :class:`int`
        Word width ``W`` in channels (a power of two).
    word_addr_width : :class:`int`
        Width of the word index; event addresses are ``word_addr_width + log2(W)`` bits wide.
    events : :class:`int`
        Events per item ``E``: 1, or 2 (then ``addr1`` and ``two`` are in the output layout).
    isolate_ahead : :class:`bool`
        Isolate the events of each value the word register may take next (the rest after an
        item, a new word) from registers, the handshake only selecting between them, instead
        of isolating the register's next value: the handshake is then not on a path through
        the isolation's carry chains, for twice their logic (the ECP5 builds; it does not fit
        the UP5K). The same items and cycles either way.

    Members
    -------
    i : ``In(stream.Signature(EventEncoder.InLayout))``
        Words: ``data`` (``W`` bits, bit ``b`` = channel ``word * W + b``), ``word`` (word
        index), ``last`` (final word of the row).
    o : ``Out(stream.Signature(EventEncoder.OutLayout))``
        Events: ``addr`` (channel index ``word * W + b``), ``last`` (final item of the row),
        ``none`` (a marker without an event; ``addr`` is then the row's last word's base);
        with ``events = 2`` also ``addr1`` (the second event's channel, valid with ``two``)
        and ``two`` (the item carries two events).
    """

    def __init__(self, width, word_addr_width, *, events=1, isolate_ahead=False):
        check_pow2("Word width", width)
        check_positive("Word address width", word_addr_width)
        if events not in (1, 2):
            raise ValueError(f"Events per item must be 1 or 2, not {events!r}")
        self._events = events
        self._isolate_ahead = isolate_ahead
        self._width = width
        self._word_addr_width = word_addr_width
        self._bit_width = (width - 1).bit_length()
        self.in_layout = data.StructLayout({
            "data": width,
            "word": word_addr_width,
            "last": 1,
        })
        self.out_layout = data.StructLayout({
            "addr": word_addr_width + self._bit_width,
            "last": 1,
            "none": 1,
            **({"addr1": word_addr_width + self._bit_width, "two": 1} if events == 2 else {}),
        })
        super().__init__({
            "i": In(stream.Signature(self.in_layout)),
            "o": Out(stream.Signature(self.out_layout)),
        })

    @property
    def width(self):
        return self._width

    @property
    def events(self):
        return self._events

    @property
    def addr_width(self):
        """Width of the event address (channel index)."""
        return self._word_addr_width + self._bit_width

    def elaborate(self, platform):
        m = Module()
        w = self._width

        full = Signal()             # the word register holds a word still to be emitted
        bits = Signal(w)            # its events not yet emitted
        word = Signal(self._word_addr_width)
        last = Signal()

        # The item's events as one-hot words, in registers (``first``, and ``second`` with two
        # events): the lowest set bits of ``bits``, isolated (``x & -x``, a carry chain each)
        # from the register's *next* value, so the path into the command queue starts at
        # their flip-flops and runs only through the index trees (from ``bits`` through two
        # carry chains in series into the queue was the iCE40 critical path). An index is the
        # OR of the one-hot bits whose position has that index bit set (a shallow tree).
        def isolate(x):
            return x & (-x)[:w]

        def index_of(one_hot, name):
            index = Signal(max(self._bit_width, 1), name=name)
            for k in range(self._bit_width):
                m.d.comb += index[k].eq(Cat(one_hot[b] for b in range(w) if b >> k & 1).any())
            return index

        first = Signal(w, name="first_event")
        index = index_of(first, "index")
        rest = Signal(w)
        m.d.comb += rest.eq(bits & ~first)
        # Events left in the register, counted when a word is loaded: "at most one left" is
        # then a test of the count's upper bits, not a carry chain over the word in the
        # handshake path (`i.ready` fans out to the whole fetch stage).
        count = Signal(range(w + 1))
        one_left = count[1:] == 0 if w > 1 else Const(1)
        take = 1                    # events the item leaves with
        if self._events == 2:
            # The second event: the lowest of the rest, taken with the first while two are left.
            second = Signal(w, name="second_event")
            two = Signal()
            m.d.comb += [two.eq(count[1:] != 0),
                         self.o.payload.addr1.eq(Cat(index_of(second, "index1")[:self._bit_width],
                                                     word)),
                         self.o.payload.two.eq(two)]
            # The word's final item: at most two events left.
            one_left = (count[2:] == 0) & ~(count[0] & count[1]) if w > 2 else Const(1)
            rest = Mux(two, rest & ~second, rest)
            take = Mux(two, 2, 1)

        has_event = count != 0      # the events left, not an OR over the word
        # A word with events is offered until its final event; a word without events is only
        # offered (as a marker) when it closes the row.
        m.d.comb += [
            self.o.valid.eq(full & (has_event | last)),
            self.o.payload.addr.eq(Cat(index[:self._bit_width] if self._bit_width else Const(0, 0),
                                       word)),
            self.o.payload.last.eq(last & one_left),
            self.o.payload.none.eq(~has_event),
        ]

        fired = self.o.valid & self.o.ready
        # The register is freed in the cycle its final item leaves (or at once for a silent
        # word), so the next word loads back-to-back and events flow one per cycle.
        done = ~full | Mux(has_event | last, fired & one_left, 1)
        m.d.comb += self.i.ready.eq(done)

        def take_events(x):         # ``sync``: the events of ``x`` into ``first``, ``second``
            low = isolate(x)
            return [first.eq(low), *([second.eq(isolate(x & ~low))] if self._events == 2 else [])]

        # With ``isolate_ahead`` each value the register may take next is isolated on its own
        # (the rest after an item, a new word) and the handshake only selects; else the
        # register's next value is.
        ahead = self._isolate_ahead
        bits_next = Signal(w)
        m.d.comb += bits_next.eq(bits)
        with m.If(fired):
            m.d.comb += bits_next.eq(rest)
            m.d.sync += count.eq(count - take)
            if ahead:
                m.d.sync += take_events(rest)
        with m.If(done):
            m.d.sync += full.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.comb += bits_next.eq(self.i.payload.data)
                m.d.sync += [
                    count.eq(_popcount(self.i.payload.data)),
                    word.eq(self.i.payload.word),
                    last.eq(self.i.payload.last),
                    *(take_events(self.i.payload.data) if ahead else []),
                ]
        m.d.sync += bits.eq(bits_next)
        if not ahead:
            m.d.sync += take_events(bits_next)
        return m
