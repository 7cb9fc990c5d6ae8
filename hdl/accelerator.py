"""The accelerator top: a programmable, layer-sequential, event-driven engine.

The top wires the engine's stages and runs the layer sequence (the controller FSM) of the
compiled program (:mod:`sdtforge.hdl.compile`). The stages are components with their own cycle
contracts and unit tests:

- :class:`~.program.ProgramSequencer`: program memory and descriptor register;
- :class:`~.fetch.NeighbourhoodFetch` → two-entry queue → :class:`~.event_encoder.EventEncoder`
  → (the event's weight row) two-entry queue → :class:`~.pe_array.PEArray` (accumulate-only
  lanes, the weight stream);
- :class:`~.writeback.RowWriteBack`: LIF → spikes, residual align-add, pooled max-merge,
  logits;
- :class:`~.sdsa_sequencer.SDSASequencer` and :class:`~.pool.SpikePoolStage`: the layers that
  read and write spike words themselves;
- :class:`~.result.ResultEmitter`, :class:`~.accel_loader.Loader`.

Ports, framing and the program encoding are in ``docs/accelerator.md``; the loop order is
layer, output group, output position, time step (innermost), so the ``P`` membranes of a group
stay in the LIF unit across the ``T`` steps.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .accel_isa import (
    RESULT_LAYOUT,
    RESULT_WORD_BITS,
    SDSA_THETA_BITS,
    Mode,
    Op,
    address_bits,
    shared_field,
)
from .accel_loader import Loader
from .compile import AccelConfig
from .event_encoder import EventEncoder
from .fetch import NeighbourhoodFetch
from .loops import LoopNest, MapAddress
from .pe_array import PEArray, PEOp
from .pool import SpikePoolStage
from .program import ProgramSequencer
from .result import ResultEmitter
from .sdsa import mask_membrane_width
from .sdsa_sequencer import SDSASequencer
from .weights import WeightMemory
from .writeback import RowWriteBack

__all__ = ["Accelerator", "RESULT_LAYOUT", "sdsa_membranes"]


def sdsa_membranes(config):
    """``(rows, bits)`` of the SDSA unit's mask-membrane memory (a block RAM candidate)."""
    return config.sdsa_channels, mask_membrane_width(config.max_tokens, SDSA_THETA_BITS,
                                                     config.sdsa_shift)


def _drive(m, port, **values):
    """Drive fields of a stage's input ``port`` (a struct view) from ``values``."""
    m.d.comb += [port[k].eq(v) for k, v in values.items()]


class Accelerator(wiring.Component):
    """Event-driven Spike-Driven Transformer engine.

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        Lanes, word width, value widths and memory depths.
    external_weights : :class:`bool`, optional
        Take the weight rows from a source outside the accelerator through the ``w_req`` /
        ``w_rsp`` streams, and send the loader's weight writes out on ``w_write`` (for iCE40
        SPRAM, which the toolchain cannot infer from ``lib.memory.Memory``, or a DRAM
        prefetch buffer). By default ``config.external_weights``.

    Members
    -------
    load : ``In(stream.Signature(8))``
        Model image bytes (records: target, address, count, data).
    pixels : ``In(stream.Signature(8))``
        One image of uint8 pixels, raster order, channels fastest.
    result : ``Out(stream.Signature(RESULT_LAYOUT))``
        Summed logits, class, cycle count (``last`` on the cycle count); see
        :func:`~.accel_isa.decode_result`.
    busy : ``Out(1)``
        High from the first pixel of an image until its result has been sent.
    load_idle : ``Out(1)``
        The loader is between records (a load stream that ends here is complete).
    load_error : ``Out(1)``
        The loader refused a record that does not fit its memory (sticky until reset).
    w_req : ``Out(stream.Signature(unsigned(log2 weights_depth)))``
        Only with ``external_weights``: weight-row requests, one per event.
    w_rsp : ``In(stream.Signature(ArrayLayout(signed(weight_bits), lanes)))``
        Only with ``external_weights``: the requested rows, in request order, with any
        latency (:mod:`~sdtforge.hdl.weights`; each cycle a row is late delays the engine by
        a cycle). :class:`~sdtforge.hdl.weights.ReadPortWeights` serves them from a
        synchronous memory at the engine's full rate.
    w_write : ``In(memory.WritePort.Signature(...))``
        Only with ``external_weights``: the accelerator drives ``addr``, ``data`` and ``en``
        for every word of a ``WEIGHTS`` load record (only while ``busy`` is low).
    """

    def __init__(self, config, *, external_weights=None):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        if external_weights is None:
            external_weights = config.external_weights
        if not isinstance(external_weights, bool):
            raise TypeError(f"external_weights must be a bool, not {external_weights!r}")
        self.config = config
        self.external_weights = external_weights
        members = {
            "load": In(stream.Signature(8)),
            "pixels": In(stream.Signature(8)),
            "result": Out(stream.Signature(RESULT_LAYOUT)),
            "busy": Out(1),
            "load_idle": Out(1),
            "load_error": Out(1),
        }
        if external_weights:
            shape = config.lane_layout("weights")
            aw = ceil_log2(config.weights_depth)
            members["w_req"] = Out(stream.Signature(aw))
            members["w_rsp"] = In(stream.Signature(shape))
            members["w_write"] = In(memory.WritePort.Signature(addr_width=aw, shape=shape))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.config
        p, w = cfg.lanes, cfg.width
        lw = (w - 1).bit_length()               # log2 W
        m = Module()

        # -- units ---------------------------------------------------------------------------
        # Loop-counter widths (AccelConfig: the smallest that run the compiled model).
        cb, tb, gb, wb = cfg.coord_bits, cfg.step_bits, cfg.group_bits, cfg.word_bits
        rows_w = address_bits(cfg.weights_depth)     # a weight row offset
        # An event's word index carries its tap's weight-row offset above the word (the fetch
        # computes it), so the event's row is one addition away.
        m.submodules.enc = enc = EventEncoder(w, wb + rows_w)
        m.submodules.pe = pe = PEArray(p, cfg.acc_bits, weight_width=cfg.weight_bits,
                                       bias_width=cfg.acc_bits, weight_depth=cfg.weights_depth,
                                       bias_depth=cfg.biases_depth)
        m.submodules.wb = wrb = RowWriteBack(cfg)
        m.submodules.sdsa = sdsa = SDSASequencer(cfg)
        m.submodules.pool = pool = SpikePoolStage(w, cb)

        # -- memories ------------------------------------------------------------------------
        # Rows in the lane layouts the compiler packs them with (AccelConfig.lane_layout);
        # the units' own memories are checked against them.
        for unit_shape, memory_name in ((pe.weight_shape, "weights"), (pe.bias_shape, "biases"),
                                        (wrb.theta_write.signature.members["data"].shape,
                                         "thresholds")):
            assert unit_shape == cfg.lane_layout(memory_name), memory_name
        lanes_acc = cfg.lane_layout("biases")       # an accumulator row: the bias lanes
        lanes_x = cfg.lane_layout("stream")
        lanes_sh = cfg.lane_layout("shifts")
        m.submodules.prog = prog = ProgramSequencer(cfg)
        m.submodules.spk = spk = memory.Memory(shape=cfg.row_bits("spikes"),
                                               depth=cfg.spikes_depth, init=[])
        m.submodules.xs = xs = memory.Memory(shape=lanes_x, depth=cfg.stream_depth, init=[])
        m.submodules.pix = pix = memory.Memory(shape=cfg.row_bits("pixels"),
                                               depth=cfg.pixels_depth, init=[])
        m.submodules.shm = shm = memory.Memory(shape=lanes_sh, depth=cfg.shifts_depth, init=[])
        spk_w, spk_r = spk.write_port(granularity=p), spk.read_port()
        xs_w, xs_r = xs.write_port(), xs.read_port()
        pix_w, pix_r = pix.write_port(), pix.read_port()
        shm_w, shm_r = shm.write_port(), shm.read_port()
        m.submodules.emit = emit = ResultEmitter(cfg)
        wiring.connect(m, wrb.logits, emit.write)
        wiring.connect(m, emit.result, wiring.flipped(self.result))

        # -- model loader --------------------------------------------------------------------
        m.submodules.loader = loader = Loader(cfg)
        wiring.connect(m, wiring.flipped(self.load), loader.i)
        if self.external_weights:
            # The weight stream and the loader's weight writes both leave the top so a board can
            # put them on one single-port memory: writes happen only while the engine is idle,
            # when no request is in flight, so the board may give writes priority.
            wiring.connect(m, pe.w_req, wiring.flipped(self.w_req))
            wiring.connect(m, wiring.flipped(self.w_rsp), pe.w_rsp)
            w_port = self.w_write
        else:
            m.submodules.weights = weights = WeightMemory(cfg.lane_layout("weights"),
                                                          cfg.weights_depth)
            wiring.connect(m, pe.w_req, weights.req)
            wiring.connect(m, weights.rsp, pe.w_rsp)
            w_port = weights.write
        loader_ports = {"program": prog.write, "weights": w_port, "biases": pe.b_write,
                        "thresholds": wrb.theta_write, "shifts": shm_w}
        for name, port in loader_ports.items():
            lp = getattr(loader, name)
            m.d.comb += [port.addr.eq(lp.addr), port.data.eq(lp.data), port.en.eq(lp.en)]

        # -- controller registers ------------------------------------------------------------
        d = prog.descriptor                 # one view per operation (accel_isa)
        # Named for the Verilog and the waveforms.
        bit = Signal(3, name="pixel_plane")
        hy, hx = Signal(cb, name="head_y"), Signal(cb, name="head_x")   # HEAD_SUM's token
        wg = Signal(rows_w, name="weight_base")   # the current group's first weight row
        lastmask = Signal(w, name="last_word_mask")
        value = Signal(lanes_acc, name="lane_value")   # PIXEL's Horner sum, HEAD_SUM's sum
        cycles = Signal(RESULT_WORD_BITS)
        counting = Signal()
        # The pixel being received.
        ry, rx, rch = (Signal(cb, name="recv_y"), Signal(cb, name="recv_x"),
                       Signal(wb, name="recv_channel"))

        with m.If(counting):
            m.d.sync += cycles.eq(cycles + 1)

        # Fields that logic shared by several operations reads: the same bits in each of their
        # views (shared_field checks it), as wide as the counters they bound.
        cv, px, sd, en = d.conv, d.pixel, d.sdsa, d.end
        loops = ("conv", "pixel", "stream_lif", "pool_or", "head_sum")   # the (g, pos, t) loop
        steps = shared_field(d, sdsa="steps", **dict.fromkeys(loops, "steps"))
        groups = shared_field(d, pool_or="words",
                              **dict.fromkeys(("conv", "pixel", "stream_lif", "head_sum"),
                                              "groups"))
        words = shared_field(d, conv="words", pixel="words", sdsa="words")
        in_h = shared_field(d, conv="in_h", pixel="height", pool_or="in_h", sdsa="tokens_h",
                            head_sum="tokens_h")
        in_w = shared_field(d, conv="in_w", pixel="width", pool_or="in_w", sdsa="tokens_w",
                            head_sum="tokens_w")
        out_h = shared_field(d, **dict.fromkeys(loops, "pos_h"))
        out_w = shared_field(d, **dict.fromkeys(loops, "pos_w"))
        reads = ("conv", "stream_lif", "pool_or", "head_sum")           # a spike or stream map
        in_base = shared_field(d, sdsa="q_base", **dict.fromkeys(reads, "in_base"))
        in_sh = tuple(shared_field(d, **dict.fromkeys(reads + ("sdsa",), f"in_sh{a}"))
                      for a in "xyt")
        writes = loops + ("sdsa",)
        out_base = shared_field(d, **dict.fromkeys(writes, "out_base"))
        out_sh = tuple(shared_field(d, **dict.fromkeys(writes, f"out_sh{a}")) for a in "xyt")
        outputs = ("conv", "pixel", "stream_lif", "head_sum")           # P-lane results
        mode = shared_field(d, **dict.fromkeys(outputs, "mode"))
        prow = shared_field(d, **dict.fromkeys(outputs, "prow"))
        k3 = shared_field(d, conv="k3", pixel="k3")
        w_base = shared_field(d, conv="w_base", pixel="w_base")
        w_gstride = shared_field(d, conv="w_gstride", pixel="w_gstride")
        cin = shared_field(d, conv="cin", pixel="channels", sdsa="cin")
        base_w = max(address_bits(cfg.spikes_depth), address_bits(cfg.stream_depth))
        agu_widths = {"base": base_w, "t": tb, "y": cb, "x": cb, "word": max(gb, wb),
                      "sh": len(out_sh[0])}

        # The row nest (group, position, step) of the controller.
        nest = LoopNest(m, {"g": gb, "y": cb, "x": cb, "t": tb},
                        {"g": groups, "y": out_h, "x": out_w, "t": steps}, prefix="row")
        g, oy, ox, t = (nest.c[k] for k in "gyxt")
        last_t = nest.last["t"]
        t_first = t == 0

        m.d.comb += [pool.at.y.eq(oy), pool.at.x.eq(ox), pool.in_h.eq(in_h), pool.in_w.eq(in_w),
                     pool.data.eq(spk_r.data)]
        is_pixel = d.op == Op.PIXEL
        is_conv = d.op == Op.CONV

        # -- registered stage boundaries --------------------------------------------------------
        # Fetch → encoder (spike words) and controller → PE array (commands) meet through
        # two-entry queues: a writer sees only the queue's registered fill level, so neither
        # the PE array's stalls nor the encoder's handshake reach the fetch counters or the
        # event decode combinationally (they were the iCE40 critical path). Each costs one
        # cycle of latency and no throughput (docs/accelerator.md §9).
        m.submodules.wq = wq = fifo.SyncFIFO(width=Shape.cast(enc.in_layout).width, depth=2)
        m.submodules.cq = cq = fifo.SyncFIFO(width=Shape.cast(pe.cmd_layout).width, depth=2)
        cmd = pe.cmd_layout(cq.w_data)
        m.d.comb += [
            enc.i.valid.eq(wq.r_rdy), enc.i.payload.eq(wq.r_data), wq.r_en.eq(enc.i.ready),
            pe.i.valid.eq(cq.r_rdy), pe.i.payload.eq(cq.r_data), cq.r_en.eq(pe.i.ready),
        ]

        # -- fetch stage: neighbourhood words → event encoder ---------------------------------
        m.submodules.fetch = fetch = NeighbourhoodFetch(cfg)
        assert fetch.word_layout == enc.in_layout
        _drive(m, fetch.layer, chain=is_conv, pixel=is_pixel, k3=k3, cin=cin, words=words,
               in_h=in_h, in_w=in_w, out_h=out_h, out_w=out_w, steps=steps, groups=groups,
               lastmask=lastmask)
        _drive(m, fetch.at, g=g, y=oy, x=ox, t=t)
        m.d.comb += [
            fetch.data.eq(Mux(is_pixel, pix_r.data.bit_select(bit, 1), spk_r.data)),
            wq.w_en.eq(fetch.o.valid), wq.w_data.eq(fetch.o.payload), fetch.o.ready.eq(wq.w_rdy),
        ]
        rd = fetch.read

        # -- SDSA stage ------------------------------------------------------------------------
        _drive(m, sdsa.layer, lastmask=lastmask,
               **{k: sd[k] for k in ("steps", "words", "tokens_h", "tokens_w", "q_base",
                                     "k_base", "v_base", "theta")})
        m.d.comb += sdsa.data.eq(spk_r.data)

        # Events → PE commands; the row of event (tap, channel) is wg + tap·cin + channel.
        ev = enc.o.payload
        ev_bit = ev.addr[:lw]
        ev_cw = ev.addr[lw:lw + wb]
        ev_tapoff = ev.addr[lw + wb:]
        ev_ch = Mux(is_pixel, ev_cw, Cat(ev_bit, ev_cw))
        ev_row = wg + ev_tapoff + ev_ch

        # -- default port drives -------------------------------------------------------------
        m.d.comb += [spk_r.en.eq(1), pix_r.en.eq(1), shm_r.addr.eq(prow + g)]

        row_pending = Signal()              # a CONV row latched whose sums are not taken yet

        # -- address generators ----------------------------------------------------------------
        # One per memory port (a map address costs three barrel shifters): spike reads, stream
        # reads, writes (spike and stream writes never happen in the same cycle), pixels. Each
        # has its default source here (the fetch, the row nest, the write-back); the stages
        # that own a port for a layer and the pooled merge override fields.
        spk_ra = MapAddress(m, "spk_ra", agu_widths, base=in_base, t=Mux(is_conv, rd.t, t),
                             y=rd.y, x=rd.x, word=rd.word, sh=in_sh)
        x_is_out = mode == Mode.ADD
        x_tok = ~x_is_out & (d.op == Op.HEAD_SUM)
        x_ra = MapAddress(m, "x_ra", agu_widths, base=Mux(x_is_out, out_base, in_base), t=t,
                           y=Mux(x_tok, hy, oy), x=Mux(x_tok, hx, ox), word=g,
                           sh=[Mux(x_is_out, o, i) for o, i in zip(out_sh, in_sh, strict=True)])
        wa = MapAddress(m, "wa", agu_widths, base=out_base, t=wrb.write.t, y=wrb.write.y,
                         x=wrb.write.x, word=wrb.write.word, sh=out_sh)
        receiving = Signal()
        pix_y, pix_x, pix_c = Signal(cb), Signal(cb), Signal(wb)
        pix_core = Signal(range(cfg.pixels_depth))
        m.d.comb += [
            pix_y.eq(Mux(receiving, ry, rd.y)), pix_x.eq(Mux(receiving, rx, rd.x)),
            pix_c.eq(Mux(receiving, rch, rd.word)),
            pix_core.eq((pix_y << px.pix_shy) | (pix_x << px.pix_shx) | pix_c),
            spk_r.addr.eq(spk_ra.addr), xs_r.addr.eq(x_ra.addr),
            spk_w.addr.eq(wa.addr), xs_w.addr.eq(wa.addr),
            # An out-of-bounds tap reads the channel's zero point (the pixel layer's pad rows).
            pix_r.addr.eq(Mux(rd.oob, px.pad_base + rd.word, pix_core)),
        ]
        # -- write-back stage --------------------------------------------------------------------
        # STREAM_LIF feeds the LIF straight from the stream read port (one row per cycle); the
        # pixel layer and the head their values.
        x_row = Signal(lanes_acc)
        m.d.comb += [x_row[lane].eq(xs_r.data[lane]) for lane in range(p)]
        _drive(m, wrb.layer, conv=is_conv, mode=mode, pool=cv.pool, in_h=in_h, in_w=in_w,
               prow=prow)
        _drive(m, wrb.row, t=t, y=oy, x=ox, g=g, first=t_first, last=last_t)
        m.d.comb += [
            wrb.sums.valid.eq(pe.o.valid & is_conv), wrb.sums.payload.eq(pe.o.payload.acc),
            wrb.lif.payload.eq(Mux(d.op == Op.STREAM_LIF, x_row, value)),
            wrb.shift.eq(shm_r.data), wrb.stream.eq(xs_r.data),
            spk_w.data.eq(wrb.write.spk_data), spk_w.en.eq(wrb.write.spk_en),
            xs_w.data.eq(wrb.write.xs_data), xs_w.en.eq(wrb.write.xs_en),
        ]
        with m.If(is_conv):
            m.d.comb += pe.o.ready.eq(wrb.sums.ready)

        # Shared lane adders: the pixel layer's Horner step ``2·value + conv`` (over bit-planes,
        # from the registered sums of a plane: the weight memory → PE array → Horner path was
        # the ECP5 critical path) and the head's token sum ``value + X``.
        v_sum = Signal(lanes_acc)
        psum = Signal(lanes_acc, name="plane_sums")
        horner = Signal(name="horner_step")
        for lane in range(p):
            m.d.comb += v_sum[lane].eq(Mux(is_pixel, value[lane] << 1, value[lane])
                                       + Mux(is_pixel, psum[lane], xs_r.data[lane]))
        m.d.sync += horner.eq(0)
        with m.If(horner):
            m.d.sync += [value[lane].eq(v_sum[lane]) for lane in range(p)]

        # The fetch drives the read ports' enables while it runs (it holds a word's data while
        # the encoder's queue is full).
        with m.If(fetch.busy):
            m.d.comb += [spk_r.en.eq(rd.en), pix_r.en.eq(rd.en)]
        # The layers whose stage reads and writes spike words itself own the spike ports for
        # the whole layer: the ports' sources are selected by the descriptor's operation (a
        # register), not by the controller's state.
        with m.Switch(d.op):
            with m.Case(Op.SDSA):
                rq, wr = sdsa.read, sdsa.write
                spk_ra.use(base=rq.base, t=rq.t, y=rq.y, x=rq.x, word=rq.word)
                wa.use(t=wr.t, y=wr.y, x=wr.x, word=wr.word)
                m.d.comb += [spk_r.en.eq(rq.en), spk_w.data.eq(wr.data),
                             spk_w.en.eq(Mux(wr.en, Const(-1, w // p), 0))]
            with m.Case(Op.POOL_OR):
                spk_ra.use(y=pool.read.y, x=pool.read.x, word=g)
                wa.use(t=t, y=oy, x=ox, word=g)
                m.d.comb += [spk_r.en.eq(pool.read.en), spk_w.data.eq(pool.write.data),
                             spk_w.en.eq(Mux(pool.write.en, Const(-1, w // p), 0))]

        # -- CONV row pipeline -----------------------------------------------------------------
        # A CONV row (group, position, step) is retired in overlapped parts: the gather (events
        # → PE; the fetch already reads the next rows), the sums (the row's last event, flagged
        # ``last``, makes the PE array emit them and load the next row's bias), and the
        # write-back stage. The loop counters advance when the PE array takes the row's last
        # command (a cycle after the event entered the command queue); the write-back latches
        # the row's coordinates at that moment and works from its copy. One row at a time
        # waits for the write-back: the next row's last event waits in the encoder until its
        # sums are taken (row_pending, set when the last event enters the queue).
        wrap_y, layer_done = nest.wrap_y, nest.done
        n_t, n_ox, n_oy, n_g = (nest.next[k] for k in "txyg")

        def latch_row():
            m.d.comb += wrb.latch.eq(1)
            nest.advance()

        with m.If(wrb.taken):
            m.d.sync += row_pending.eq(0)
        # The row's stream word (ADD) and shift row are read from the loop counters while the
        # row gathers; from the cycle after its last command until the write-back works on its
        # sums, the read ports hold their data (wrb.hold), since the counters have moved on.
        # (Addressing them from the late "last event issued" signal was the ECP5 critical path.)
        with m.If(is_conv):
            m.d.comb += [shm_r.en.eq(~wrb.hold),
                         xs_r.en.eq(~wrb.hold | wrb.merging)]
            x_ra.use(base=out_base, t=t, y=oy, x=ox, word=g, sh=out_sh)
        with m.If(wrb.merge_read.en):
            mr = wrb.merge_read
            x_ra.use(base=out_base, t=mr.t, y=mr.y, x=mr.x, word=mr.word, sh=out_sh)

        with m.FSM(name="ctrl") as ctrl:
            with m.State("IDLE"):
                m.d.sync += counting.eq(0)
                m.d.comb += prog.rewind.eq(1)
                with m.If(self.pixels.valid & loader.idle & prog.first):
                    m.d.sync += [ry.eq(0), rx.eq(0), rch.eq(0)]
                    m.next = "FETCH0"
            with m.State("RECEIVE"):
                m.d.comb += [self.pixels.ready.eq(1), receiving.eq(1),
                    pix_w.addr.eq(pix_core),
                    pix_w.data.eq(self.pixels.payload),
                    pix_w.en.eq(self.pixels.valid),
                ]
                with m.If(self.pixels.valid):
                    with m.If(rch == px.channels - 1):
                        m.d.sync += rch.eq(0)
                        with m.If(rx == px.width - 1):
                            m.d.sync += [rx.eq(0), ry.eq(ry + 1)]
                            with m.If(ry == px.height - 1):
                                m.d.sync += [cycles.eq(0), counting.eq(1)]
                                m.next = "FETCH"
                        with m.Else():
                            m.d.sync += rx.eq(rx + 1)
                    with m.Else():
                        m.d.sync += rch.eq(rch + 1)
            # Descriptor load (ProgramSequencer: n_words + 1 cycles).
            with m.State("FETCH0"):
                # Descriptor 0 (the PIXEL layer) gives the image's size and pixel layout.
                m.d.comb += prog.load.eq(1)
                with m.If(prog.loaded):
                    m.next = "RECEIVE"
            with m.State("FETCH"):
                m.d.comb += prog.load.eq(1)
                with m.If(prog.loaded):
                    m.next = "DECODE"
            with m.State("DECODE"):
                nest.write(g=0, y=0, x=0, t=0)
                m.d.sync += [wg.eq(w_base),
                             lastmask.eq(Mux(cin[:lw] == 0, Const(-1, w),
                                             (Const(1, w + 1) << cin[:lw]) - 1))]
                with m.Switch(d.op):
                    with m.Case(Op.END):
                        m.d.sync += counting.eq(0)
                        m.d.comb += emit.start.eq(1)
                        m.next = "RESULT"
                    with m.Case(Op.SDSA):
                        m.d.comb += sdsa.start.eq(1)
                        m.next = "SDSA"
                    with m.Case(Op.CONV):
                        m.next = "CONV_START"
                    with m.Case(Op.STREAM_LIF):
                        m.next = "LIF_READ"
                    with m.Default():       # PIXEL, HEAD_SUM, POOL_OR
                        m.next = "POS"
            with m.State("POS"):
                # Start of one (group, position, step).
                m.d.sync += [bit.eq(7), hy.eq(0), hx.eq(0)]
                with m.Switch(d.op):
                    with m.Case(Op.PIXEL):
                        with m.If(t_first):
                            m.d.sync += value.eq(0)
                            m.next = "GATHER_CMD"
                        with m.Else():
                            m.next = "OUT_LIF"
                    with m.Case(Op.HEAD_SUM):
                        m.d.sync += value.eq(0)
                        m.next = "X_READ"
                    with m.Case(Op.POOL_OR):
                        m.d.comb += pool.start.eq(1)
                        m.next = "POOL"

            # ---- convolution gather: BIAS/CLEAR, events, DRAIN ----
            with m.State("GATHER_CMD"):
                m.d.comb += [cq.w_en.eq(1),
                    cmd.op.eq(Mux(is_pixel & (bit != 0), PEOp.CLEAR, PEOp.BIAS)),
                    cmd.addr.eq(prow + g),
                ]
                with m.If(cq.w_rdy):
                    m.d.comb += fetch.start.eq(1)
                    m.next = "GATHER_RUN"
            with m.State("GATHER_RUN"):
                m.d.comb += [cq.w_en.eq(enc.o.valid & ~ev.none),
                    cmd.op.eq(PEOp.ACC),
                    cmd.addr.eq(ev_row),
                    enc.o.ready.eq(cq.w_rdy | ev.none),
                ]
                with m.If(enc.o.valid & enc.o.ready & ev.last):
                    m.next = "GATHER_DRAIN"
            with m.State("GATHER_DRAIN"):
                m.d.comb += [cq.w_en.eq(1),
                             cmd.op.eq(PEOp.DRAIN)]
                with m.If(cq.w_rdy):
                    m.next = "GATHER_WAIT"
            with m.State("GATHER_WAIT"):
                # The plane's sums are registered (psum); the Horner step follows a cycle later.
                m.d.comb += pe.o.ready.eq(1)
                with m.If(pe.o.valid):
                    m.d.sync += [psum.eq(pe.o.payload.acc), horner.eq(1), bit.eq(bit - 1)]
                    with m.If(bit == 0):
                        m.next = "HORNER"
                    with m.Else():
                        m.next = "GATHER_CMD"
            with m.State("HORNER"):
                m.next = "OUT_LIF"
            # ---- CONV: pipelined rows (see the row pipeline above) ----
            with m.State("CONV_START"):
                m.d.comb += [cq.w_en.eq(1), cmd.op.eq(PEOp.BIAS),
                             cmd.addr.eq(prow + g)]
                m.d.comb += fetch.start.eq(1)
                m.next = "CONV_RUN"
            with m.State("CONV_RUN"):
                # The last event (or the empty last word's marker) ends the row in the PE array;
                # it waits while the previous row's sums are not taken.
                block = ev.last & row_pending
                m.d.comb += [cq.w_en.eq(enc.o.valid & ~block),
                    cmd.op.eq(Mux(ev.none, PEOp.DRAIN, PEOp.ACC)),
                    cmd.addr.eq(ev_row),
                    cmd.last.eq(ev.last),
                    cmd.bias.eq(prow + n_g),
                    enc.o.ready.eq(cq.w_rdy & ~block),
                ]
                with m.If(enc.o.valid & enc.o.ready & ev.last):
                    # The next event (the next row's) may enter the queue in the next cycle:
                    # the group's weight base moves on now, the other counters a cycle later.
                    m.d.sync += row_pending.eq(1)
                    with m.If(wrap_y):
                        m.d.sync += wg.eq(wg + w_gstride)
                # The loop counters move on when the PE array takes the row's last command: a
                # registered command, where the event behind it was the iCE40 critical path.
                with m.If(pe.i.valid & pe.i.ready & pe.i.payload.last):
                    latch_row()
                    with m.If(layer_done):
                        m.next = "CONV_END"
            with m.State("CONV_END"):
                with m.If(wrb.done):
                    m.d.comb += prog.step.eq(1)
                    m.next = "FETCH"

            # ---- STREAM_LIF: one row (group, position, step) per write-back row ----
            # LIF_READ reads the first row; LIF_RUN feeds the row read before to the write-back
            # stage's LIF and, when the stage takes it, reads the next one. The stage takes a
            # row every ``writeback_cycles`` cycles (every cycle with c = 1: the LIF's output is
            # taken the cycle after each input); the last row's last chunk is worked on in
            # LIF_END (c > 1) and its spikes written in the next cycle.
            with m.State("LIF_READ"):
                m.next = "LIF_RUN"
            with m.State("LIF_RUN"):
                m.d.comb += wrb.lif.valid.eq(1)
                # With c = 1 the stage takes a row every cycle: no wait on its ready.
                with m.If(wrb.lif.ready if cfg.writeback_cycles > 1 else 1):
                    x_ra.use(t=n_t, y=n_oy, x=n_ox, word=n_g)
                    nest.advance()
                    with m.If(layer_done):
                        if cfg.writeback_cycles == 1:
                            # FETCH keeps the descriptor for a cycle: the last row's spikes
                            # are written.
                            m.d.comb += prog.step.eq(1)
                            m.next = "FETCH"
                        else:
                            m.next = "LIF_END"
            if cfg.writeback_cycles > 1:
                with m.State("LIF_END"):
                    with m.If(wrb.done):
                        m.d.comb += prog.step.eq(1)
                        m.next = "FETCH"

            # ---- HEAD_SUM: the stream's token sum ----
            with m.State("X_READ"):
                m.next = "X_USE"
            with m.State("X_USE"):
                # HEAD_SUM: the token sum of the stream, one token per two cycles.
                for lane in range(p):
                    m.d.sync += value[lane].eq(v_sum[lane])
                with m.If(hx == in_w - 1):
                    m.d.sync += [hx.eq(0), hy.eq(hy + 1)]
                    with m.If(hy == in_h - 1):
                        m.next = "OUT_LIF"
                    with m.Else():
                        m.next = "X_READ"
                with m.Else():
                    m.d.sync += hx.eq(hx + 1)
                    m.next = "X_READ"

            # ---- PIXEL and HEAD_SUM rows to the write-back (both write spikes: Mode.SPIKE) ----
            with m.State("OUT_LIF"):
                m.d.comb += wrb.lif.valid.eq(1)
                with m.If(wrb.lif.ready):
                    m.next = "OUT_SPIKE"
            with m.State("OUT_SPIKE"):
                # The write-back stage writes the row's spikes.
                with m.If(wrb.write.spk_en.any()):
                    m.next = "NEXT"

            # ---- loop advance: time (innermost), position, group, layer ----
            with m.State("NEXT"):
                nest.advance()
                with m.If(wrap_y):
                    m.d.sync += wg.eq(wg + w_gstride)
                with m.If(layer_done):
                    m.d.comb += prog.step.eq(1)
                    m.next = "FETCH"
                with m.Else():
                    m.next = "POS"

            # ---- spike OR pool (g counts words): the pool stage reads and writes ----
            with m.State("POOL"):
                with m.If(pool.done):
                    m.next = "NEXT"

            # ---- SDSA: the SDSA stage reads and writes the spike memory ----
            with m.State("SDSA"):
                with m.If(sdsa.done):
                    m.d.comb += prog.step.eq(1)
                    m.next = "FETCH"

            # ---- result: logits, class, cycles (the result emitter) ----
            with m.State("RESULT"):
                with m.If(emit.done):
                    m.d.comb += prog.rewind.eq(1)
                    m.next = "IDLE"

        # Busy in every state but IDLE: one compare of the state register (an OR of the
        # states' own assignments was the iCE40 critical path, into the loader's enable).
        m.d.comb += self.busy.eq(~ctrl.ongoing("IDLE"))
        # The loader owns the pixel memory's write port while the engine is idle (zero points).
        with m.If(~self.busy):
            m.d.comb += [pix_w.addr.eq(loader.pixels.addr), pix_w.data.eq(loader.pixels.data),
                         pix_w.en.eq(loader.pixels.en)]
        m.d.comb += [emit.classes.eq(en.classes), emit.cycles.eq(cycles)]
        m.d.comb += [loader.enable.eq(~self.busy), self.load_idle.eq(loader.idle),
                     self.load_error.eq(loader.error)]
        return m
