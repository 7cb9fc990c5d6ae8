"""The board-independent top: accelerator + UART + host link (+ SPRAM weights) + status.

Board files (:mod:`.icebreaker`, :mod:`.ulx3s`) wrap :class:`BoardTop` with their clock and
pins; the top itself requests nothing from the platform, so the same design runs in the
Amaranth simulator behind :class:`~sdtforge.boards.simport.SimulatedPort` — the host driver
then takes exactly the path it takes on a board.
"""

from amaranth import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import AccelConfig
from sdtforge.hdl.queue import RegisterQueue
from sdtforge.hdl.result import result_class_word, result_words
from sdtforge.hdl.weights import ReadPortWeights

from .image import config_digest, max_load_bytes
from .link import HostLink
from .spram import SPRAMWeights
from .uart import UARTRx, UARTTx

__all__ = ["BoardTop", "TIMEOUT_S", "TICK_BITS"]

#: Seconds of silence inside a frame, of a stalled load or pixel stream, and from an image's
#: last pixel to its first result word, after which a board's link answers ``TIMEOUT`` (and
#: resets the engine where it stalled): far above any inference of a model that fits a board
#: (the shipped digits-tiny takes 12 ms on the iCEBreaker), short for a host to wait. One
#: value for all of them keeps the link's timer a single down-counter with one reload value.
TIMEOUT_S = 1.0
#: The boards' link timeouts count ticks of 2**12 cycles (205 µs at 20 MHz), so the timer is
#: 14 bits instead of 26.
TICK_BITS = 12


class BoardTop(wiring.Component):
    """Accelerator behind a UART host link.

    Parameters
    ----------
    config : AccelConfig
        The accelerator build (lanes, widths, memory depths).
    image_bytes : int
        Bytes of one image (the ``CLASSIFY`` payload).
    num_classes : int
        Logits per result.
    divisor : int
        Clock cycles per UART bit (``f_clk // baud``).
    timeout : int
        Clock cycles of silence that end a frame with a ``TIMEOUT`` error (and that the
        accelerator may refuse a load or pixel byte before it is reset).
    watchdog : int, optional
        Clock cycles the accelerator may take from an image's last pixel to its first result
        word before it is reset and the request answered ``TIMEOUT``; by default ``timeout``.
    spram_weights : bool
        Keep the weights in :class:`~sdtforge.boards.spram.SPRAMWeights` (iCE40 UltraPlus)
        instead of the accelerator's internal memory.
    max_payload : int
        Frame buffer bytes (the host's largest ``LOAD`` chunk).
    heartbeat_bit : int
        Counter bit that drives ``heartbeat`` (about 1 Hz: ``log2(f_clk)``).
    tick_bits : int
        The link's timeouts advance once every ``2**tick_bits`` cycles, a carry of the
        heartbeat counter (at most ``heartbeat_bit``); ``timeout`` and ``watchdog`` are rounded
        up to whole ticks. 0: every cycle.
    accelerator : Component, optional
        A stand-in with the accelerator's ports (``load``, ``pixels``, ``result``, ``busy``
        and, with ``spram_weights``, ``w_req`` / ``w_rsp`` / ``w_write``); by default the
        :class:`~sdtforge.hdl.accelerator.Accelerator` for ``config``. Lets the board
        plumbing be built and timed on its own.

    Members
    -------
    uart_rx : In(1)
        Serial input (idle high).
    uart_tx : Out(1)
        Serial output (idle high).
    label : Out(8)
        Class of the last classified image.
    busy, heartbeat, loaded : Out(1)
        Accelerator busy; blinking while the clock runs; a model load passed its check.
    """

    def __init__(self, config, *, image_bytes, num_classes, divisor, timeout, watchdog=None,
                 spram_weights=False, max_payload=256, heartbeat_bit=24, tick_bits=0,
                 accelerator=None):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        if not isinstance(heartbeat_bit, int) or heartbeat_bit < 1:
            raise ValueError(f"heartbeat_bit must be a positive integer, not {heartbeat_bit!r}")
        if not isinstance(tick_bits, int) or not 0 <= tick_bits <= heartbeat_bit:
            raise ValueError(f"tick_bits must be an integer from 0 to heartbeat_bit, not "
                             f"{tick_bits!r}")
        self.tick_bits = tick_bits
        self.config = config
        self.image_bytes = image_bytes
        self.num_classes = num_classes
        self.divisor = divisor
        self.timeout = timeout
        self.spram_weights = bool(spram_weights)
        self.max_payload = max_payload
        self.heartbeat_bit = heartbeat_bit
        # Built here so that parameter errors surface at construction, not at elaboration.
        if accelerator is None:
            accelerator = Accelerator(config, external_weights=self.spram_weights)
        self.accel = accelerator
        def ticks(cycles):
            return None if cycles is None else max(-(-cycles >> tick_bits), 16)
        self.link = HostLink(image_bytes=image_bytes, num_classes=num_classes,
                             max_payload=max_payload, timeout=ticks(timeout),
                             watchdog=ticks(watchdog),
                             digest=config_digest(config),
                             position_bits=max_load_bytes(config).bit_length())
        self.urx = UARTRx(divisor)
        self.utx = UARTTx(divisor)
        super().__init__({"uart_rx": In(1, init=1), "uart_tx": Out(1, init=1), "label": Out(8),
                          "busy": Out(1), "heartbeat": Out(1), "loaded": Out(1)})

    def elaborate(self, platform):
        m = Module()
        accel, link = self.accel, self.link
        # The link resets the engine (not its memories) to abort a load or a stalled request;
        # an accelerator with a weight source of its own that must not be reset with it
        # (SDRAMEngine: reads in flight) takes the reset itself.
        if hasattr(accel, "engine_reset"):
            m.submodules.accel = accel
            m.d.comb += accel.engine_reset.eq(link.engine_reset)
        else:
            m.submodules.accel = ResetInserter(link.engine_reset)(accel)
        m.submodules.link = link
        m.submodules.urx = urx = self.urx
        m.submodules.utx = utx = self.utx

        m.d.comb += [urx.rx.eq(self.uart_rx), self.uart_tx.eq(utx.tx)]
        wiring.connect(m, urx.stream, link.rx)
        wiring.connect(m, link.tx, utx.stream)
        # The link's bytes cross to the engine through a two-entry queue whose sides are both
        # registers, shared by the load and the pixel streams (the link serves one at a time;
        # each entry carries which): the engine's ready through the link's frame logic and its
        # buffer's read address was a critical path on both boards (the pixels' on the ULX3S,
        # 20.4 ns at seed 1, 17.7 ns of it routing; the load's on the iCEBreaker, 41 ns at
        # seeds 1 and 3). It empties with the engine's reset, and a load is idle only once it
        # is empty. The engine counts its cycles from the end of the image's reception, so
        # the queue changes no cycle count.
        m.submodules.byte_queue = queue = ResetInserter(link.engine_reset)(
            RegisterQueue(width=9))
        to_load = queue.r_data[8]
        m.d.comb += [
            queue.w_en.eq(link.load.valid | link.pixels.valid),
            queue.w_data.eq(Cat(Mux(link.load.valid, link.load.payload, link.pixels.payload),
                                link.load.valid)),
            link.load.ready.eq(queue.w_rdy), link.pixels.ready.eq(queue.w_rdy),
            accel.load.payload.eq(queue.r_data[:8]), accel.pixels.payload.eq(queue.r_data[:8]),
            accel.load.valid.eq(queue.r_rdy & to_load),
            accel.pixels.valid.eq(queue.r_rdy & ~to_load),
            queue.r_en.eq(Mux(to_load, accel.load.ready, accel.pixels.ready)),
        ]
        wiring.connect(m, accel.result, link.result)
        m.d.comb += [link.load_idle.eq(accel.load_idle & ~queue.r_rdy),
                     link.load_error.eq(accel.load_error)]

        if self.spram_weights:
            cfg = self.config
            shape = cfg.lane_layout("weights")
            m.submodules.weights = weights = SPRAMWeights(shape, cfg.weights_depth,
                                                          events=cfg.events)
            # The SPRAM answers the accelerator's weight stream through a read-port source
            # (with two events per command, a port on each copy of the rows).
            aw = len(weights.read.addr)
            m.submodules.w_source = source = ReadPortWeights(shape, aw, events=cfg.events)
            wiring.connect(m, accel.w_req, source.req)
            wiring.connect(m, source.rsp, accel.w_rsp)
            wiring.connect(m, source.port, weights.read)
            if cfg.events == 2:
                wiring.connect(m, source.port1, weights.read1)
            wiring.connect(m, accel.w_write, weights.write)

        # Status: the class word of each result is latched for the LEDs.
        word = Signal(range(result_words(self.num_classes)))
        with m.If(accel.result.valid & accel.result.ready):
            m.d.sync += word.eq(word + 1)
            with m.If(word == result_class_word(self.num_classes)):
                m.d.sync += self.label.eq(accel.result.payload.data[:8])
            with m.If(accel.result.payload.last):
                m.d.sync += word.eq(0)
        with m.If(link.engine_reset):
            m.d.sync += word.eq(0)
        beat = Signal(self.heartbeat_bit + 1)
        m.d.sync += beat.eq(beat + 1)
        if self.tick_bits:
            m.d.comb += link.tick.eq(beat[:self.tick_bits].all())
        m.d.comb += [
            self.busy.eq(accel.busy),
            self.heartbeat.eq(beat[-1]),
            self.loaded.eq(link.loaded),
        ]
        return m

