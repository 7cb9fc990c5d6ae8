"""The accelerator top: a programmable, layer-sequential, event-driven engine.

The top only wires the engine's stages, each a component with its own cycle contract and unit
tests, running the compiled program (:mod:`sdtforge.hdl.compile`):

- :class:`~.controller.LayerController`: the layer sequence and each layer's row nest;
- :class:`~.program.ProgramSequencer`: program memory and descriptor register;
- :class:`~.fetch.NeighbourhoodFetch` → two-entry queue → :class:`~.event_encoder.EventEncoder`
  → (the controller: the event's weight row) two-entry queue → :class:`~.pe_array.PEArray`
  (accumulate-only lanes, the weight stream);
- :class:`~.writeback.RowWriteBack`: LIF → spikes, residual align-add, pooled max-merge,
  logits;
- :class:`~.sdsa_sequencer.SDSASequencer` and :class:`~.pool.SpikePoolStage`: the layers that
  read and write spike words themselves;
- :class:`~.result.ResultEmitter`, :class:`~.accel_loader.Loader`.

What stays here is the memories that several stages share (spike, stream, pixel and shift
memories) with their address generators, and which stage owns a port for which operation.
Ports, framing and the program encoding are in ``docs/accelerator.md``; the loop order is
layer, output group, output position, time step (innermost), so the ``P`` membranes of a group
stay in the LIF unit across the ``T`` steps.
"""

from amaranth.hdl import Const, Module, Mux, Shape, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .accel_isa import Mode, Op, address_bits, shared_fields
from .accel_loader import Loader
from .compile import AccelConfig
from .controller import LayerController
from .event_encoder import EventEncoder
from .fetch import NeighbourhoodFetch
from .loops import MapAddress
from .pe_array import PEArray, weight_request_shape, weight_response_shape
from .pool import SpikePoolStage
from .program import ProgramSequencer
from .queue import RegisterQueue
from .ram import registered_read, shared_memories
from .result import RESULT_LAYOUT, ResultEmitter
from .sdsa_sequencer import SDSASequencer
from .weights import WeightMemory
from .writeback import RowWriteBack

__all__ = ["Accelerator"]


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
        :func:`~.result.decode_result`.
    busy : ``Out(1)``
        High from the first pixel of an image until its result has been sent.
    load_idle : ``Out(1)``
        The loader is between records (a load stream that ends here is complete).
    load_error : ``Out(1)``
        The loader refused a record that does not fit its memory (sticky until reset).
    w_req : ``Out(stream.Signature(weight_request_shape(log2 weights_depth, events)))``
        Only with ``external_weights``: weight-row requests, one per command (with
        ``config.events = 2`` two addresses each, :func:`~.pe_array.weight_request_shape`).
    w_rsp : ``In(stream.Signature(weight_response_shape(row, events)))``
        Only with ``external_weights``: the requested rows (``row``: ``ArrayLayout(signed(
        weight_bits), lanes)``; two per request with ``config.events = 2``), in request order,
        with any latency (:mod:`~sdtforge.hdl.weights`; each cycle a row is late delays the
        engine by a cycle). :class:`~sdtforge.hdl.weights.ReadPortWeights` serves them from a
        synchronous memory at the engine's full rate.
    w_write : ``In(memory.WritePort.Signature(...))``
        Only with ``external_weights``: the accelerator drives ``addr``, ``data`` and ``en``
        for every word of a ``WEIGHTS`` load record (only while ``busy`` is low).
    w_write_busy : ``In(1)``
        Only with ``external_weights``: the weight source is still writing a row; the loader
        takes no load byte meanwhile (a source that writes in one cycle leaves it low;
        :class:`~sdtforge.hdl.dram_weights.DRAMWeights` raises it for a row's DRAM writes).
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
            members["w_req"] = Out(stream.Signature(weight_request_shape(aw, config.events)))
            members["w_rsp"] = In(stream.Signature(weight_response_shape(shape, config.events)))
            members["w_write"] = In(memory.WritePort.Signature(addr_width=aw, shape=shape))
            members["w_write_busy"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.config
        p, w = cfg.lanes, cfg.width
        m = Module()

        # -- units ---------------------------------------------------------------------------
        # Loop-counter widths (AccelConfig: the smallest that run the compiled model).
        cb, gb, wb = cfg.coord_bits, cfg.group_bits, cfg.word_bits
        rows_w = address_bits(cfg.weights_depth)     # a weight row offset
        # An event's word index carries its tap's weight-row offset above the word (the fetch
        # computes it), so the event's row is one addition away.
        # With one write-back cycle per row (the ECP5 builds) the encoder's events are isolated
        # from registers: the handshake into its carry chains was the ECP5's critical path.
        m.submodules.enc = enc = EventEncoder(w, wb + rows_w, events=cfg.events,
                                              isolate_ahead=cfg.writeback_cycles == 1)
        # The biases: loaded into the accumulators, or added by a lane-serial write-back
        # (AccelConfig.writeback_bias).
        m.submodules.pe = pe = PEArray(p, cfg.acc_bits, weight_width=cfg.weight_bits,
                                       bias_width=cfg.acc_bits, weight_depth=cfg.weights_depth,
                                       bias_depth=cfg.biases_depth, bias=not cfg.writeback_bias,
                                       events=cfg.events, weight_latency=cfg.weight_latency)
        m.submodules.wb = wrb = RowWriteBack(cfg)
        m.submodules.sdsa = sdsa = SDSASequencer(cfg)
        # The POOL_OR stage only where the model has a spike max-pool (AccelConfig.pool_or).
        pool = None
        if cfg.pool_or:
            m.submodules.pool = pool = SpikePoolStage(w, cb, stride1=bool(cfg.dvs_head_channels))

        # -- memories ------------------------------------------------------------------------
        # Rows in the lane layouts the compiler packs them with (AccelConfig.lane_layout);
        # the units' own memories are checked against them.
        bias_write = wrb.bias_write if cfg.writeback_bias else pe.b_write
        for unit_shape, memory_name in ((pe.weight_shape, "weights"),
                                        (bias_write.signature.members["data"].shape, "biases"),
                                        (wrb.theta_write.signature.members["data"].shape,
                                         "thresholds")):
            assert unit_shape == cfg.lane_layout(memory_name), memory_name
        m.submodules.prog = prog = ProgramSequencer(cfg)
        mem = shared_memories(m, cfg)
        spk_r, spk_w, xs_r, xs_w = mem.spk_r, mem.spk_w, mem.xs_r, mem.xs_w
        pix_r, pix_w, shm_r, shm_w = mem.pix_r, mem.pix_w, mem.shm_r, mem.shm_w
        if cfg.stream_latency > 1:
            # The stream memory's address and data in registers (AccelConfig.stream_latency):
            # its readers below ask that much earlier.
            xs_r = registered_read(m, mem.xs_r, "xs_rq")
        # The memories' own ports, for testbenches that check they never collide (hdl.ram).
        self.spike_ports = (spk_r, mem.spk_port)
        self.stream_ports = (mem.xs_r, mem.xs_port)
        m.submodules.emit = emit = self.emitter = ResultEmitter(cfg)
        wiring.connect(m, wrb.logits, emit.write)
        if cfg.writeback_cycles > 1:
            wiring.connect(m, wrb.logits_read, emit.read)
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
                                                          cfg.weights_depth, events=cfg.events)
            wiring.connect(m, pe.w_req, weights.req)
            wiring.connect(m, weights.rsp, pe.w_rsp)
            w_port = weights.write
        loader_ports = {"program": prog.write, "weights": w_port, "biases": bias_write,
                        "thresholds": wrb.theta_write, "shifts": shm_w}
        for name, port in loader_ports.items():
            lp = getattr(loader, name)
            m.d.comb += [port.addr.eq(lp.addr), port.data.eq(lp.data), port.en.eq(lp.en)]

        # -- the layer controller -----------------------------------------------------------
        d = prog.descriptor                 # one view per operation (accel_isa)
        f = shared_fields(d)
        m.submodules.ctrl = ctrl = LayerController(cfg, event_layout=enc.out_layout,
                                                   cmd_layout=pe.cmd_layout)
        # The loader is idle once its last record is written (a DRAM source's last row too).
        load_idle = loader.idle & ~self.w_write_busy if self.external_weights else loader.idle
        m.d.comb += [ctrl.descriptor.eq(d), ctrl.loader_idle.eq(load_idle),
                     ctrl.program.loaded.eq(prog.loaded), ctrl.program.first.eq(prog.first),
                     prog.load.eq(ctrl.program.load), prog.step.eq(ctrl.program.step),
                     prog.rewind.eq(ctrl.program.rewind)]
        for stage, name in ((pool, "pool"), (sdsa, "sdsa"), (emit, "emit")):
            if stage is None:
                continue
            port = getattr(ctrl, name)
            m.d.comb += [stage.start.eq(port.start), port.done.eq(stage.done)]
        wiring.connect(m, wiring.flipped(self.pixels), ctrl.pixels)
        g, oy, ox, t = (ctrl.row[k] for k in "gyxt")
        px, sd, en = d.pixel, d.sdsa, d.end
        base_w = max(address_bits(cfg.spikes_depth), address_bits(cfg.stream_depth))
        agu_widths = {"base": base_w, "t": cfg.step_bits, "y": cb, "x": cb, "word": max(gb, wb),
                      "sh": len(f.out_sh[0])}

        if pool is not None:
            m.d.comb += [pool.at.y.eq(oy), pool.at.x.eq(ox), pool.in_h.eq(f.in_h),
                         pool.in_w.eq(f.in_w), pool.data.eq(spk_r.data)]
        is_pixel = d.op == Op.PIXEL
        is_conv = d.op == Op.CONV

        # -- registered stage boundaries --------------------------------------------------------
        # Fetch → encoder (spike words) and controller → PE array (commands) meet through
        # two-entry queues: a writer sees only the queue's registered fill level, so neither
        # the PE array's stalls nor the encoder's handshake reach the fetch counters or the
        # event decode combinationally (they were the iCE40 critical path). Each costs one
        # cycle of latency and no throughput (docs/accelerator.md §9).
        # (RegisterQueue: SyncFIFO(depth=2)'s behaviour, its reader fed from a register.)
        m.submodules.wq = wq = RegisterQueue(width=Shape.cast(enc.in_layout).width)
        m.submodules.cq = cq = RegisterQueue(width=Shape.cast(pe.cmd_layout).width)
        m.d.comb += [
            enc.i.valid.eq(wq.r_rdy), enc.i.payload.eq(wq.r_data), wq.r_en.eq(enc.i.ready),
            pe.i.valid.eq(cq.r_rdy), pe.i.payload.eq(cq.r_data), cq.r_en.eq(pe.i.ready),
            cq.w_en.eq(ctrl.cmd.valid), cq.w_data.eq(ctrl.cmd.payload),
            ctrl.cmd.ready.eq(cq.w_rdy),
            ctrl.cmd_taken_last.eq(pe.i.valid & pe.i.ready & pe.i.payload.last),
        ]
        wiring.connect(m, enc.o, ctrl.events)

        # -- fetch stage: neighbourhood words → event encoder ---------------------------------
        m.submodules.fetch = fetch = NeighbourhoodFetch(cfg)
        assert fetch.word_layout == enc.in_layout
        _drive(m, fetch.layer, chain=is_conv, pixel=is_pixel, k3=f.k3, cin=f.cin,
               words=f.words, in_h=f.in_h, in_w=f.in_w, out_h=f.out_h, out_w=f.out_w,
               steps=f.steps, groups=f.groups, lastmask=ctrl.lastmask)
        _drive(m, fetch.at, g=g, y=oy, x=ox, t=t)
        m.d.comb += [
            fetch.start.eq(ctrl.fetch_start),
            fetch.data.eq(Mux(is_pixel, pix_r.data.bit_select(ctrl.plane, 1), spk_r.data)),
            wq.w_en.eq(fetch.o.valid), wq.w_data.eq(fetch.o.payload), fetch.o.ready.eq(wq.w_rdy),
        ]
        rd = fetch.read

        # -- SDSA stage ------------------------------------------------------------------------
        dvs = ("erode",) if cfg.dvs_head_channels else ()     # a DVS model's erosions
        _drive(m, sdsa.layer, lastmask=ctrl.lastmask,
               **{k: sd[k] for k in ("steps", "words", "tokens_h", "tokens_w", "q_base",
                                     "k_base", "v_base", "theta", *dvs)})
        if dvs:                 # a DVS model's erosions are POOL_OR: pool_or is 1
            m.d.comb += pool.stride1.eq(d.pool_or.stride1)
        m.d.comb += sdsa.data.eq(spk_r.data)

        # -- default port drives -------------------------------------------------------------
        # The spike read port reads only for a stage that uses its data (hdl.ram).
        m.d.comb += [spk_r.en.eq(0), pix_r.en.eq(1), shm_r.addr.eq(f.prow + g),
                     xs_r.en.eq((d.op == Op.STREAM_LIF) | (d.op == Op.HEAD_SUM))]
        if cfg.writeback_cycles > 1:
            with m.If(ctrl.read_hold):      # STREAM_LIF: the next row, read ahead
                m.d.comb += xs_r.en.eq(0)

        # -- address generators ----------------------------------------------------------------
        # One per memory port (a map address costs three barrel shifters): spike reads, stream
        # reads, writes (spike and stream writes never happen in the same cycle), pixels. Each
        # has its default source here (the fetch, the row nest, the write-back); the stages
        # that own a port for a layer and the pooled merge override fields.
        # The spike read address's map and source are the layer's too, in registers (the
        # descriptor's selects in front of its shifters and adder were the ECP5 critical path
        # of the SDRAM builds, into the spike block RAMs' address); the stages that read spikes
        # do so from the cycle after DECODE on. (``s_conv`` also routes the PE array's sums.)
        s_base = Signal(base_w, name="spk_base")
        s_sh = [Signal(len(i), name=f"spk_sh{a}") for i, a in zip(f.in_sh, "xyt", strict=True)]
        s_conv, s_sdsa, s_pool = (Signal(name=f"spk_{k}") for k in ("conv", "sdsa", "pool"))
        m.d.sync += [s_base.eq(f.in_base), s_conv.eq(is_conv), s_sdsa.eq(d.op == Op.SDSA),
                     s_pool.eq(d.op == Op.POOL_OR),
                     *(r.eq(i) for r, i in zip(s_sh, f.in_sh, strict=True))]
        spk_ra = MapAddress(m, "spk_ra", agu_widths, base=s_base, t=Mux(s_conv, rd.t, t),
                            y=rd.y, x=rd.x, word=rd.word, sh=s_sh)
        # The stream read address's map (base, shifts) and whether it follows the head's token
        # are the layer's: registered from the descriptor, which holds from DECODE on, so the
        # descriptor's per-operation field selects are not on the path into the stream memory's
        # address (the ECP5 critical path: descriptor → selects → shifters → adder → a net
        # across the die to the stream block RAMs).
        x_is_out = f.mode == Mode.ADD
        x_out = is_conv | x_is_out          # a CONV's row (ADD) or its pooled merge: the output
        x_base = Signal(base_w, name="x_base")
        x_sh = [Signal(len(o), name=f"x_sh{a}") for o, a in zip(f.out_sh, "xyt", strict=True)]
        x_tok = Signal(name="x_tok")
        m.d.sync += [x_base.eq(Mux(x_out, f.out_base, f.in_base)),
                     x_tok.eq(~x_out & (d.op == Op.HEAD_SUM)),
                     *(r.eq(Mux(x_out, o, i))
                       for r, o, i in zip(x_sh, f.out_sh, f.in_sh, strict=True))]
        x_ra = MapAddress(m, "x_ra", agu_widths, base=x_base, t=t,
                          y=Mux(x_tok, ctrl.token.y, oy), x=Mux(x_tok, ctrl.token.x, ox),
                          word=g, sh=x_sh)
        wa = MapAddress(m, "wa", agu_widths, base=f.out_base, t=wrb.write.t, y=wrb.write.y,
                        x=wrb.write.x, word=wrb.write.word, sh=f.out_sh)
        recv = ctrl.pixel_write
        pix_y, pix_x, pix_c = Signal(cb), Signal(cb), Signal(wb)
        pix_core = Signal(range(cfg.pixels_depth))
        core = (pix_y << px.pix_shy) | (pix_x << px.pix_shx) | pix_c
        if cfg.event_frames:    # event frames (``per_step``): frame t at t << pix_sht
            pix_t = Signal(cfg.step_bits)
            m.d.comb += pix_t.eq(Mux(px.per_step, Mux(recv.active, recv.t, t), 0))
            core = (pix_t << px.pix_sht) | core
        m.d.comb += [
            pix_y.eq(Mux(recv.active, recv.y, rd.y)), pix_x.eq(Mux(recv.active, recv.x, rd.x)),
            pix_c.eq(Mux(recv.active, recv.c, rd.word)),
            pix_core.eq(core),
            spk_r.addr.eq(spk_ra.addr), xs_r.addr.eq(x_ra.addr),
            spk_w.addr.eq(wa.addr), xs_w.addr.eq(wa.addr),
            # An out-of-bounds tap reads the channel's zero point (the pixel layer's pad rows).
            pix_r.addr.eq(Mux(rd.oob, px.pad_base + rd.word, pix_core)),
        ]
        with m.If(recv.active):
            m.d.comb += [pix_w.addr.eq(pix_core), pix_w.data.eq(recv.data),
                         pix_w.en.eq(recv.en)]

        # -- write-back stage --------------------------------------------------------------------
        # STREAM_LIF feeds the LIF straight from the stream read port (one row per cycle); the
        # pixel layer and the head their values (the controller's ``lif``).
        # PIXEL's ``per_step`` is the header bit of CONV's ``pool`` (0 in an image model),
        # (SDSA's ``erode`` in a DVS model too.)
        wb_pool = (d.conv.pool & is_conv if cfg.event_frames or cfg.dvs_head_channels
                   else d.conv.pool)
        serial = cfg.writeback_cycles > 1
        _drive(m, wrb.layer, conv=is_conv, mode=f.mode, pool=wb_pool, in_h=f.in_h, in_w=f.in_w,
               prow=f.prow, **({"pixel": d.op == Op.PIXEL, "head": d.op == Op.HEAD_SUM}
                               if serial else {}))
        # The next row's last event may follow once the row's sums are taken. With the weight
        # row in a register the sums come a cycle later; where the write-back takes every row
        # in the cycle it is offered (all lanes at once, no pooled merge), the next row's last
        # event goes a cycle earlier, as the row enters the PE array's last stage, and is
        # latched in the cycle after the take, as the write-back allows.
        if cfg.weight_latency == 2 and cfg.writeback_cycles == 1:
            m.d.comb += ctrl.row_free.eq(Mux(wb_pool, wrb.taken, pe.row_end))
        else:
            m.d.comb += ctrl.row_free.eq(wrb.taken)
        _drive(m, wrb.row, t=t, y=oy, x=ox, g=g, first=ctrl.row_first, last=ctrl.row_last,
               **({} if serial else {"g_next": ctrl.next_group}))
        wiring.connect(m, ctrl.lif, wrb.lif)
        m.d.comb += [
            wrb.latch.eq(ctrl.wb.latch), ctrl.wb.taken.eq(wrb.taken),
            ctrl.wb.written.eq(wrb.write.spk_en.any()), ctrl.wb.done.eq(wrb.done),
            wrb.sums.valid.eq(pe.o.valid & (is_conv | (d.op == Op.PIXEL) if serial else s_conv)),
            wrb.sums.payload.eq(pe.o.payload.acc),
            *([] if serial else [
                # PIXEL's planes from the accumulator registers (a DRAIN's sums; LaneValue).
                ctrl.sums.valid.eq(pe.o.valid), ctrl.sums.payload.eq(pe.value)]),
            # CONV's sums go to the write-back, PIXEL's planes to the controller (serial: to
            # the write-back too, which folds them, with its first-plane flag as the DRAIN's tag).
            # Selected by the registered operation (the PE array has no sums from DECODE until
            # a cycle after it): from the descriptor, the decode ran on through the PE array's
            # ready chain into the controller's state (an ECP5 critical path).
            pe.o.ready.eq(wrb.sums.ready if serial
                          else Mux(s_conv, wrb.sums.ready, ctrl.sums.ready)),
            ctrl.stream_row.eq(xs_r.data),
            wrb.shift.eq(shm_r.data), wrb.stream.eq(xs_r.data),
            spk_w.data.eq(wrb.write.spk_data), spk_w.en.eq(wrb.write.spk_en),
            xs_w.data.eq(wrb.write.xs_data), xs_w.en.eq(wrb.write.xs_en),
        ]

        if serial:
            m.d.comb += wrb.plane_first.eq(pe.o.payload.tag[0])

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
                wa.use(t=wr.t, y=wr.y, x=wr.x, word=wr.word)
                m.d.comb += [spk_r.en.eq(rq.en), spk_w.data.eq(wr.data),
                             spk_w.en.eq(Mux(wr.en, Const(-1, w // p), 0))]
            if pool is not None:
                with m.Case(Op.POOL_OR):
                    wa.use(t=t, y=oy, x=ox, word=g)
                    m.d.comb += [spk_r.en.eq(pool.read.en), spk_w.data.eq(pool.write.data),
                                 spk_w.en.eq(Mux(pool.write.en, Const(-1, w // p), 0))]
        # Their read addresses, selected by the registered operation.
        with m.If(s_sdsa):
            rq = sdsa.read
            spk_ra.use(base=rq.base, t=rq.t, y=rq.y, x=rq.x, word=rq.word)
        if pool is not None:
            with m.If(s_pool):
                spk_ra.use(y=pool.read.y, x=pool.read.x, word=g)

        # A CONV row's stream word (ADD) and shift row are read from the row nest while the row
        # gathers; from the cycle after its last command until the write-back works on its
        # sums, the read ports hold their data (wrb.hold), since the nest has moved on.
        # (Addressing them from the late "last event issued" signal was the ECP5 critical path.)
        # With a stream read of several cycles (AccelConfig.stream_latency) the nest reads its
        # row's stream word every cycle, and the write-back keeps the word a row needs
        # (RowWriteBack._stream_word).
        x_read = x_is_out if cfg.stream_latency > 1 else x_is_out & ~wrb.hold
        with m.If(is_conv):
            m.d.comb += [shm_r.en.eq(~wrb.hold), xs_r.en.eq(x_read | wrb.merge_read.en)]
        with m.If(wrb.merge_read.en):
            mr = wrb.merge_read
            x_ra.use(t=mr.t, y=mr.y, x=mr.x, word=mr.word)
        # STREAM_LIF reads the stream a row ahead of the one the LIF takes.
        with m.If(ctrl.read_next):
            nx = ctrl.row_next
            x_ra.use(t=nx.t, y=nx.y, x=nx.x, word=nx.g)

        m.d.comb += self.busy.eq(ctrl.busy)
        # The loader owns the pixel memory's write port while the engine is idle (zero points).
        with m.If(~self.busy):
            m.d.comb += [pix_w.addr.eq(loader.pixels.addr), pix_w.data.eq(loader.pixels.data),
                         pix_w.en.eq(loader.pixels.en)]
        m.d.comb += [emit.classes.eq(en.classes), emit.cycles.eq(ctrl.cycles)]
        # The loader takes bytes while the engine is idle and the weight source can take a row
        # (a row write is one cycle and the next row needs at least one more byte).
        ready = ~self.busy & ~self.w_write_busy if self.external_weights else ~self.busy
        m.d.comb += [loader.enable.eq(ready), self.load_idle.eq(load_idle),
                     self.load_error.eq(loader.error)]
        return m
