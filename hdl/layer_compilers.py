"""The compile pass per layer kind: the :data:`COMPILERS` registry and its builder.

Each registered handler, ``handler(builder, layer)``, turns one IR layer into descriptors
(``builder.add``, in the fields of the operation's view) and parameter rows (weight rows in
consumption order, one bias / threshold / shift row per output group). :class:`Builder` holds
one compilation's state; :func:`~.compile.plan_model` runs the handlers, places the spike maps
and builds the program. ``docs/extending.md`` shows how to add a kind.
"""

from __future__ import annotations

import numpy as np

from sdtforge.errors import UserError
from sdtforge.quantize import ir
from sdtforge.registry import Registry

from .accel_config import ceil_div, layout_shift, pixel_layout
from .accel_isa import Mode, Op, field_range
from .load_image import lane_fields, pack_memory_row

__all__ = ["Builder", "COMPILERS"]


class Builder:
    """State of one compilation; ``rows=False`` plans only (counts rows, packs none)."""

    def __init__(self, model, cfg, rows=True):
        self.m = model
        self.cfg = cfg
        self.rows = rows
        self.T = int(model.config["T"])
        self.ops = []       # (descriptor dict, name, reads, writes)
        self.weights = []
        self.biases = []
        self.thresholds = []
        self.shifts = []
        self.maps = {}      # name -> (channels, h, w)
        self.layer = None   # name of the IR layer being compiled (for error messages)

    def row(self, memory, values):
        """One checked row of ``memory`` for the current layer (:func:`pack_memory_row`)."""
        if not self.rows:
            return 0
        return pack_memory_row(self.cfg, memory, values, layer=self.layer)

    # -- parameter rows ------------------------------------------------------------------------
    def prows(self, cout, bias=None, theta=None, shift=None):
        """Append each group's rows to the bias / threshold / shift images; return ``prow``,
        the layer's first group (its shift row; its bias and threshold rows start at
        ``prow · writeback_cycles``, :attr:`AccelConfig.chunk_lanes` lanes each)."""
        p = self.cfg.lanes
        g = ceil_div(cout, p)
        prow = len(self.shifts)

        def lanes(vec, pad, per_row):
            out = np.full(g * p, pad, np.int64)
            if vec is not None:
                out[:cout] = np.asarray(vec, np.int64)
            return out.reshape(-1, per_row)

        # A padded lane has zero weights and bias, so its sum is 0: θ = 1 keeps it silent.
        for name, vec, pad in (("biases", bias, 0), ("thresholds", theta, 1),
                               ("shifts", shift, 0)):
            for row in lanes(vec, pad, self.cfg.lane_layout(name).length):
                getattr(self, name).append(self.row(name, row))
        return prow

    def weight_rows(self, weight):
        """Rows ``g, tap, ci`` of ``P`` output channels; returns ``(w_base, w_gstride)``."""
        p = self.cfg.lanes
        w = np.asarray(weight, np.int64)
        if w.ndim == 2:
            w = w[:, :, None, None]
        cout, cin, kh, kw = w.shape
        g = ceil_div(cout, p)
        if not self.rows:
            base = len(self.weights)
            self.weights.extend([0] * (g * kh * kw * cin))
            return base, kh * kw * cin
        pad = np.zeros((g * p, cin, kh, kw), np.int64)
        pad[:cout] = w
        base = len(self.weights)
        # Row (gi, tap, ci) holds lanes pad[gi·P + lane, ci, tap].
        lanes = pad.reshape(g, p, cin, kh * kw).transpose(0, 3, 2, 1).reshape(-1, p)
        self.weights.extend(self.many_rows("weights", lanes))
        return base, kh * kw * cin

    def many_rows(self, memory, lanes):
        """:meth:`row` of every row of ``lanes`` (``[rows, P]``), vectorized where it can be.

        The same checks and bits as one :meth:`row` per row: a value out of range gets the
        first offending row's :class:`UserError`; rows of up to 64 bits are packed with numpy
        at the lane offsets of the memory's layout.
        """
        layout = self.cfg.lane_layout(memory)
        bits, is_signed, offsets = lane_fields(layout)
        lo, hi = field_range(bits, is_signed)
        bad = (lanes < lo) | (lanes > hi)
        if bad.any():
            self.row(memory, lanes[int(np.argmax(bad.any(axis=1)))])
            raise AssertionError("a lane out of range was not refused")
        if layout.size > 64:
            return [self.row(memory, row) for row in lanes]
        fields = lanes.astype(np.uint64) & np.uint64((1 << bits) - 1)
        shifted = fields << np.asarray(offsets[:lanes.shape[1]], np.uint64)
        return np.bitwise_or.reduce(shifted, axis=1).tolist() if len(lanes) else []

    # -- layouts -------------------------------------------------------------------------------
    def spike_layout(self, name):
        c, h, w = self.maps[name]
        words = ceil_div(c, self.cfg.width)
        shx = layout_shift(words)
        shy = shx + layout_shift(w)
        sht = shy + layout_shift(h)
        return {"words": words, "shx": shx, "shy": shy, "sht": sht,
                "size": self.T << sht}

    def stream_layout(self):
        d = int(self.m.config["embed_dims"])
        th, tw = ir.expected_geometry(self.m.config)["token_hw"]
        groups = ceil_div(d, self.cfg.lanes)
        shx = layout_shift(groups)
        shy = shx + layout_shift(tw)
        sht = shy + layout_shift(th)
        return {"words": groups, "shx": shx, "shy": shy, "sht": sht, "size": self.T << sht,
                "h": th, "w": tw}

    def add(self, d, name, reads=(), writes=()):
        d.setdefault("steps", self.T)
        self.ops.append((d, name, tuple(reads), tuple(writes)))

    def spike_in(self, d, name):
        lay = self.spike_layout(name)
        c, h, w = self.maps[name]
        d.update(cin=c, words=lay["words"], in_h=h, in_w=w, in_shx=lay["shx"],
                 in_shy=lay["shy"], in_sht=lay["sht"])

    def spike_out(self, d, name):
        lay = self.spike_layout(name)
        d.update(out_shx=lay["shx"], out_shy=lay["shy"], out_sht=lay["sht"])

    def stream_in(self, d):
        lay = self.stream_layout()
        d.update(in_h=lay["h"], in_w=lay["w"], in_shx=lay["shx"], in_shy=lay["shy"],
                 in_sht=lay["sht"], in_base=0)

    def stream_out(self, d):
        lay = self.stream_layout()
        d.update(out_shx=lay["shx"], out_shy=lay["shy"], out_sht=lay["sht"], out_base=0)

    def place_maps(self):
        """First-fit placement of the spike maps by liveness (the operations added so far):
        ``(bases, peak words)``."""
        first, last = {}, {}
        for i, (_, _, reads, writes) in enumerate(self.ops):
            for name in writes:
                first.setdefault(name, i)
                last.setdefault(name, i)
            for name in reads:
                last[name] = i
        placed = []     # (start, end, first, last)
        bases = {}
        for name in sorted(first, key=lambda n: (first[n], n)):
            size = self.spike_layout(name)["size"]
            lo, hi = first[name], last[name]
            clashes = sorted((s, e) for s, e, f, l_ in placed if not (l_ < lo or f > hi))
            addr = 0
            for s, e in clashes:
                if addr + size <= s:
                    break
                addr = max(addr, e)
            bases[name] = addr
            placed.append((addr, addr + size, lo, hi))
        peak = max((e for _, e, _, _ in placed), default=0)
        return bases, peak


#: The compile pass: one handler per layer kind, ``handler(builder, layer)``; each appends its
#: descriptors (``builder.add``) and parameter rows. ``docs/extending.md`` shows how to add one.
COMPILERS = Registry("compile")


def _conv_spiking(b, layer, pixel, per_step=False):
    """PIXEL or spike CONV → LIF → spike map, with an OR pool op when ``layer.pool``.
    ``per_step``: a PIXEL over event frames, one frame per step."""
    cout, h, w = layer.out_channels, layer.height, layer.width
    target = f"{layer.output}.unpooled" if layer.pool else layer.output
    b.maps[target] = (cout, h, w)
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(cout, bias=layer.bias, theta=layer.theta)
    d = {"op": Op.PIXEL if pixel else Op.CONV, "mode": Mode.SPIKE, "k3": 1,
         "groups": ceil_div(cout, b.cfg.lanes), "out_h": h, "out_w": w,
         "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    if pixel:
        c = layer.in_channels
        lay = pixel_layout(c, h, w, b.T if per_step else 1)
        # k_base of a PIXEL descriptor is the pixel memory's zero-point (pad) base.
        d.update(cin=c, words=c, in_h=h, in_w=w, in_shx=lay["shx"], in_shy=lay["shy"],
                 pix_sht=lay["sht"], per_step=int(per_step), in_base=0,
                 k_base=lay["pad_base"])
        reads = ()
    else:
        b.spike_in(d, layer.input)
        reads = (layer.input,)
    b.spike_out(d, target)
    b.add(d, layer.name, reads, (target,))
    if layer.pool:
        b.maps[layer.output] = (cout, (h - 1) // 2 + 1, (w - 1) // 2 + 1)
        p = {"op": Op.POOL_OR}
        b.spike_in(p, target)
        b.spike_out(p, layer.output)
        c, ho, wo = b.maps[layer.output]
        p.update(groups=p["words"], out_h=ho, out_w=wo)
        b.add(p, layer.name + ".pool", (target,), (layer.output,))


def _stream_conv(b, layer, k3):
    cout = layer.out_channels
    mode = Mode.SET if getattr(layer, "mode", "add") == "set" else Mode.ADD
    pool = bool(getattr(layer, "pool", False))
    if pool and mode != Mode.SET:
        raise UserError(f"layer {layer.name}: an integer max pool is only supported on the "
                        f"stream-initializing conv; re-quantize without it")
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(cout, bias=layer.bias, shift=layer.shift)
    d = {"op": Op.CONV, "mode": mode, "k3": int(k3), "pool": int(pool),
         "groups": ceil_div(cout, b.cfg.lanes), "w_base": w_base, "w_gstride": w_gstride,
         "prow": prow}
    b.spike_in(d, layer.input)
    lay = b.stream_layout()
    # A pooled conv iterates its *input* positions: each conv result is computed once and
    # max-merged into the (at most 4) pooled windows that contain it.
    if pool:
        d.update(out_h=d["in_h"], out_w=d["in_w"])
    else:
        d.update(out_h=lay["h"], out_w=lay["w"])
    b.stream_out(d)
    b.add(d, layer.name, (layer.input,), ())


@COMPILERS.register("stream_lif")
def _stream_lif(b, layer):
    d_ = int(b.m.config["embed_dims"])
    lay = b.stream_layout()
    b.maps[layer.output] = (d_, lay["h"], lay["w"])
    prow = b.prows(d_, theta=layer.theta)
    d = {"op": Op.STREAM_LIF, "mode": Mode.SPIKE, "groups": ceil_div(d_, b.cfg.lanes),
         "out_h": lay["h"], "out_w": lay["w"], "prow": prow, "cin": d_}
    b.stream_in(d)
    b.spike_out(d, layer.output)
    b.add(d, layer.name, (), (layer.output,))


@COMPILERS.register("conv1x1")
def _conv1x1(b, layer):
    _, h, w = b.maps[layer.input]
    b.maps[layer.output] = (layer.out_channels, h, w)
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.out_channels, bias=layer.bias, theta=layer.theta)
    d = {"op": Op.CONV, "mode": Mode.SPIKE, "groups": ceil_div(layer.out_channels,
                                                             b.cfg.lanes),
         "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.input)
    b.spike_out(d, layer.output)
    b.add(d, layer.name, (layer.input,), (layer.output,))


@COMPILERS.register("stream_conv1x1")
def _stream_conv1x1(b, layer):
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.out_channels, bias=layer.bias, shift=layer.shift)
    _, h, w = b.maps[layer.input]
    d = {"op": Op.CONV, "mode": Mode.ADD, "groups": ceil_div(layer.out_channels,
                                                           b.cfg.lanes),
         "out_h": h, "out_w": w, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.input)
    b.stream_out(d)
    b.add(d, layer.name, (layer.input,), ())


@COMPILERS.register("sdsa", "sdsa_dvs")
def _sdsa(b, layer):
    """``SDSA``; in DVS mode (``sdsa_dvs``) after two stride-1 ``POOL_OR`` that erode K and V
    into maps of their own, with the SDSA stage's own erosions (``erode``)."""
    if layer.shift != b.cfg.sdsa_shift:
        raise UserError(f"layer {layer.name}: SDSA mask shift {layer.shift} differs from "
                        f"the hardware's {b.cfg.sdsa_shift}; rebuild the hardware "
                        f"with sdsa_shift={layer.shift}")
    c, h, w = b.maps[layer.input]
    reads = [layer.input, layer.k, layer.v]
    dvs = layer.KIND == "sdsa_dvs"
    if dvs:
        # The word width against the heads is AccelConfig's check (dvs_head_channels).
        if b.cfg.dvs_head_channels != c // layer.heads:
            raise UserError(f"layer {layer.name}: DVS-mode attention heads of "
                            f"{c // layer.heads} channels, but the hardware was built for "
                            f"dvs_head_channels={b.cfg.dvs_head_channels}; build it for this "
                            f"model")
        for i, x in ((1, "k"), (2, "v")):
            eroded = f"{layer.name}.{x}_eroded"
            b.maps[eroded] = (c, h, w)
            p = {"op": Op.POOL_OR, "stride1": 1}
            b.spike_in(p, reads[i])
            b.spike_out(p, eroded)
            p.update(groups=p["words"], out_h=h, out_w=w)
            b.add(p, f"{layer.name}.erode_{x}", (reads[i],), (eroded,))
            reads[i] = eroded
    b.maps[layer.output] = (c, h, w)
    d = {"op": Op.SDSA, "theta": int(layer.theta), "erode": int(dvs)}
    b.spike_in(d, layer.input)
    b.spike_out(d, layer.output)
    d.update(groups=d["words"], out_h=h, out_w=w)
    b.add(d, layer.name, tuple(reads), (layer.output,))


@COMPILERS.register("head")
def _head(b, layer):
    d_ = layer.channels
    b.maps[layer.output] = (d_, 1, 1)
    prow = b.prows(d_, theta=layer.theta)
    d = {"op": Op.HEAD_SUM, "mode": Mode.SPIKE, "groups": ceil_div(d_, b.cfg.lanes),
         "out_h": 1, "out_w": 1, "prow": prow, "cin": d_}
    b.stream_in(d)
    b.spike_out(d, layer.output)
    b.add(d, layer.name + ".sum", (), (layer.output,))
    w_base, w_gstride = b.weight_rows(layer.weight)
    prow = b.prows(layer.num_classes, bias=layer.bias)
    d = {"op": Op.CONV, "mode": Mode.LOGIT, "groups": ceil_div(layer.num_classes,
                                                             b.cfg.lanes),
         "out_h": 1, "out_w": 1, "w_base": w_base, "w_gstride": w_gstride, "prow": prow}
    b.spike_in(d, layer.output)
    b.add(d, layer.name + ".linear", (layer.output,), ())
    b.add({"op": Op.END, "cin": layer.num_classes, "steps": 0}, "end")


@COMPILERS.register("conv3x3_pixel")
def _pixel_conv(b, layer):
    _conv_spiking(b, layer, pixel=True)


@COMPILERS.register("conv3x3_events")
def _event_conv(b, layer):
    _conv_spiking(b, layer, pixel=True, per_step=True)


@COMPILERS.register("conv3x3_spike")
def _spike_conv(b, layer):
    _conv_spiking(b, layer, pixel=False)


@COMPILERS.register("stream_conv3x3")
def _stream_conv3x3(b, layer):
    _stream_conv(b, layer, k3=True)
