"""The integer model file (``.sfm``): what ``sim/`` and ``hdl/`` read, written by the quantizer.

An ``.sfm`` file is a ZIP archive in the ``.npz`` layout: one ``header.npy`` entry (a ``uint8``
array holding UTF-8 JSON with sorted keys) and one ``.npy`` entry per integer array. The header
holds the format version, the model config, the ordered layer list (kind, name, dataflow names,
shapes, flags, derived bit widths, and the names of the layer's arrays), the residual stream's
thresholds and width, and provenance. The semantics of every field are written down in
``docs/integer-semantics.md``; this module only stores, derives widths and validates.
Reading is bounded (§10.1 of that doc): no file makes :func:`load` allocate much more than
the arrays its header declares (at most :data:`MAX_ARRAY_BYTES`), and a model that validates
fits the golden model's memory bound (:data:`MAX_GOLDEN_BYTES` per image).

NumPy only: :mod:`sdtforge.hdl` and :mod:`sdtforge.sim` import this without torch.

A model is a sequence of layer records of registered kinds (:data:`LAYER_KINDS`, one record
class per kind, :func:`register_kind`). :func:`load` checks the sequence by its dataflow
(each kind's :meth:`Layer.flow`): the first layer reads the pixels, every tensor is written
before it is read and with the shape its reader expects, the residual stream is ``[D, token
grid]``, and the last layer writes the logits. The quantizer writes the SDT v1 sequence of the
config (:func:`expected_layout`)::

    conv3x3_pixel  sps.conv0   pixels    -> sps.lif0    (conv3x3_events: event-frame input)
    conv3x3_spike  sps.conv1   sps.lif0  -> sps.lif1
    conv3x3_spike  sps.conv2   sps.lif1  -> sps.lif2
    stream_conv3x3 sps.conv3   sps.lif2  -> stream      (mode "set")
    stream_lif     sps.lif3    stream    -> sps.lif3
    stream_conv3x3 sps.rpe     sps.lif3  -> stream      (mode "add")
    per block i:
      stream_lif     block{i}.attn.lif_in   stream -> block{i}.attn.lif_in
      conv1x1        block{i}.attn.{q,k,v}  block{i}.attn.lif_in -> block{i}.attn.{q,k,v}
      sdsa           block{i}.attn.sdsa     q, k, v -> block{i}.attn.out (+ block{i}.attn.mask)
      stream_conv1x1 block{i}.attn.proj     block{i}.attn.out -> stream
      stream_lif     block{i}.mlp.lif_in    stream -> block{i}.mlp.lif_in
      conv1x1        block{i}.mlp.fc1       block{i}.mlp.lif_in -> block{i}.mlp.hidden
      stream_conv1x1 block{i}.mlp.fc2       block{i}.mlp.hidden -> stream
    head           head        stream    -> head.lif (logits)
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from sdtforge.errors import UserError
from sdtforge.registry import Registry

__all__ = [
    "FORMAT", "VERSION", "IRError", "IntegerModel", "Layer", "PixelConv3x3", "EventConv3x3",
    "SpikeConv3x3",
    "StreamConv3x3", "StreamLIF", "Conv1x1", "SDSA", "SDSADVS", "StreamConv1x1", "Head",
    "LAYER_KINDS",
    "register_kind",
    "save", "load", "dumps", "loads", "derive_widths", "finalize", "expected_geometry",
    "expected_layout", "signed_width", "stateless_or_holds", "golden_memory_bytes",
    "array_bytes", "Geometry", "CONFIG_RANGES", "MAX_GOLDEN_BYTES", "MAX_ARRAY_BYTES",
    "MAX_HEADER_BYTES", "MAX_FILE_BYTES",
]

FORMAT = "sdtforge-ir"
VERSION = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamps: byte-identical files
_MAX_WIDTH = 62  # every value must also fit the int64 golden model with room for one add

# Loader limits (docs/integer-semantics.md §10). Nothing an .sfm file declares makes `load`
# allocate more than these, and a model that validates can be run by the golden model.
#: Inclusive range of every integer config field; ``img_size`` sides use ``"img_side"``.
CONFIG_RANGES = {
    "in_channels": (1, 64), "embed_dims": (8, 8192), "num_heads": (1, 8192),
    "mlp_ratio": (1, 16), "depths": (1, 64), "T": (1, 256), "num_classes": (1, 65536),
    "weight_bits": (2, 8), "img_side": (1, 4096),
}
#: Estimated golden-model memory for one image (:func:`golden_memory_bytes`), bytes.
MAX_GOLDEN_BYTES = 2 << 30
#: All arrays of one model together (:func:`array_bytes`), bytes.
MAX_ARRAY_BYTES = 256 << 20
#: The header's JSON text, bytes.
MAX_HEADER_BYTES = 1 << 20
_MAX_ENTRIES = 4096  # > the 1692 arrays + header of a depths=64 model
_MAX_NAME = 255  # characters of an entry name or a layer name
_MAX_LAYERS = 4096  # records of one model
#: Inclusive range of every size field of a layer record.
_SIZE_FIELDS = {key: (1, 131072) for key in ("in_channels", "out_channels", "channels",
                                               "heads")}
_SIZE_FIELDS.update(height=(1, 4096), width=(1, 4096), tokens=(1, 4096 * 4096),
                    num_classes=(1, 65536))
_MAX_NPY_PREFIX = 4096  # magic + header of one .npy entry (NumPy writes 128 bytes)
_READ_CHUNK = 1 << 20  # bytes decompressed per read call
#: Largest file :func:`load` reads: arrays + header + per-entry .npy/ZIP headers + a comment.
MAX_FILE_BYTES = (MAX_ARRAY_BYTES + MAX_HEADER_BYTES + _MAX_ENTRIES * (_MAX_NPY_PREFIX + 1024)
                  + (1 << 16))


class IRError(UserError):
    """An ``.sfm`` file is unreadable, of another version, or inconsistent; names the field."""


def signed_width(lo, hi):
    """Smallest ``n`` such that every integer in ``[lo, hi]`` fits an ``n``-bit two's complement."""
    lo, hi = int(lo), int(hi)
    need_lo = (-lo - 1).bit_length() if lo < 0 else 0
    need_hi = hi.bit_length() if hi > 0 else 0
    return 1 + max(need_lo, need_hi)


def stateless_or_holds(theta, shift):
    """Whether an SDSA mask neuron fed ``kv << shift`` with threshold ``theta`` is a plain OR.

    With state 0, ``H = (kv << shift) >> 1 = kv << (shift-1)`` for ``shift >= 1``; it fires for
    every ``kv >= 1`` iff ``theta <= 2**(shift-1)``, and for ``kv = 0`` it keeps ``H = 0``, so
    the state stays 0 at every step and ``mask = OR_n(K and V)``.
    """
    return shift >= 1 and 1 <= theta <= (1 << (shift - 1))


# ---------------------------------------------------------------------------------------------
# Layer records


@dataclass(eq=False)
class Layer:
    """Common fields of every layer record.

    Attributes
    ----------
    name : str
        Unique layer name (``sps.conv0``, ``block0.attn.q`` …).
    input : str
        Name of the tensor the layer reads: ``"pixels"``, ``"stream"`` or a spike tensor name.
    output : str
        Name of the tensor it writes: a spike tensor name (the float model's recording name) or
        ``"stream"``.
    widths : dict of str to int
        Derived signed bit widths (see :func:`derive_widths` and the doc).
    """

    KIND: ClassVar[str] = ""
    #: array fields: name -> (dtype, shape as a tuple of attribute names / ints)
    ARRAYS: ClassVar[dict] = {}
    #: scalar fields beyond the common ones: name -> python type
    SCALARS: ClassVar[dict] = {}
    #: keys of ``widths``
    WIDTHS: ClassVar[tuple] = ()

    name: str
    input: str
    output: str
    widths: dict

    def array_shape(self, name):
        """Expected shape of array field ``name`` from the record's scalar fields."""
        return tuple(getattr(self, d) if isinstance(d, str) else d for d in self.ARRAYS[name][1])

    def derive(self, stream):
        """The widths its values need (the ``weight`` / ``bias`` pair is added by
        :func:`derive_widths`); ``stream`` is the :class:`_StreamRange` before the layer, which
        a stream writer updates."""
        raise NotImplementedError

    def check_values(self, fail):
        """Kind-specific value checks after loading; ``fail(field, message)`` refuses."""

    @classmethod
    def flow(cls, kw, geo):
        """``(reads, writes)``: the tensors a record with scalar fields ``kw`` reads and
        writes, each ``{name: (channels, height, width)}``; ``geo`` is the model's
        :class:`Geometry`. :func:`load` checks the sequence of records with them: every tensor
        read was written before with that shape."""
        raise NotImplementedError

    @classmethod
    def golden_bytes(cls, kw, geo):
        """``(kept, working)`` bytes the golden model holds for this layer of one image: what
        stays allocated to the end of the run, and its largest temporary working set
        (:func:`golden_memory_bytes`)."""
        raise NotImplementedError


#: The kinds that read the model's input (uint8 pixels or event counts).
_INPUT_KINDS = ("conv3x3_pixel", "conv3x3_events")


class _SpikingConv3x3:
    """Dataflow, memory and widths of a 3×3 conv + LIF (+ OR pool) record."""

    @classmethod
    def flow(cls, kw, geo):
        h, w = kw["height"], kw["width"]
        src = "pixels" if cls.KIND in _INPUT_KINDS else kw["input"]
        return ({src: (kw["in_channels"], h, w)},
                {kw["output"]: (kw["out_channels"],) + geo.after_pool(h, w, kw["pool"])})

    @classmethod
    def golden_bytes(cls, kw, geo):
        t = 1 if cls.KIND == "conv3x3_pixel" else geo.steps  # event frames: one conv per step
        co, h, w = kw["out_channels"], kw["height"], kw["width"]
        ho, wo = geo.after_pool(h, w, True)
        layer = _conv3x3_bytes(kw, t, geo.steps)
        lif = geo.steps * co * h * w + 34 * co * h * w  # spikes + per-step int64 temporaries
        pool = geo.steps * co * ((h + 2) * (w + 2) + 2 * ho * wo) if kw["pool"] else 0
        layer += 8 * t * co * h * w + lif + pool
        return geo.steps * co * (h * w + (ho * wo if kw["pool"] else 0)), layer

    def derive(self, stream):
        return _spiking_widths(self, 255 if self.KIND in _INPUT_KINDS else 1)


class _TokenLayer:
    """The golden model's memory for a layer over the token grid (conv1x1 and the LIFs)."""

    @classmethod
    def golden_bytes(cls, kw, geo):
        t, n = geo.steps, geo.tokens
        ci = kw.get("in_channels", kw.get("channels"))
        co = kw.get("out_channels", kw.get("channels"))
        layer = 0
        if cls.KIND != "stream_lif":  # product operand copy, int64 acc + bias, weights
            layer = 8 * t * n * ci + 16 * t * n * co + 32 * ci * co
        if cls.KIND == "stream_conv1x1":
            return 0, layer + 3 * geo.stream_bytes  # shifted, its traced copy, new stream
        # LIF spikes and temporaries; kept: spikes + recorded map copy
        return 2 * t * n * co, layer + t * n * co + 34 * n * co


#: The IR pass: the record class of every layer kind (``KIND`` → class), registered with
#: :func:`register_kind`; :func:`load` admits only these kinds (``docs/extending.md``).
LAYER_KINDS = Registry("IR record")


def register_kind(cls):
    """Class decorator: register a :class:`Layer` subclass as the record of ``cls.KIND``."""
    if not (isinstance(cls, type) and issubclass(cls, Layer) and cls.KIND):
        raise TypeError(f"{cls!r} is not a Layer subclass with a KIND")
    return LAYER_KINDS.register(cls.KIND)(cls)


@register_kind
@dataclass(eq=False)
class PixelConv3x3(_SpikingConv3x3, Layer):
    """SPS stage 0: 3×3 conv on uint8 pixels (normalization folded), LIF, optional OR pool.

    ``acc = bias + Σ weight·pixel`` with borders padded by ``zero_point[ci]``; computed once per
    image, fed to the LIF at each of the ``T`` steps. ``height, width`` are the input sizes.
    """

    KIND: ClassVar[str] = "conv3x3_pixel"
    ARRAYS: ClassVar[dict] = {
        "weight": ("int8", ("out_channels", "in_channels", 3, 3)),
        "bias": ("int64", ("out_channels",)),
        "theta": ("int64", ("out_channels",)),
        "zero_point": ("uint8", ("in_channels",)),
        "scale": ("float64", ("out_channels",)),
    }
    SCALARS: ClassVar[dict] = {"in_channels": int, "out_channels": int, "height": int,
                               "width": int, "pool": bool}
    WIDTHS: ClassVar[tuple] = ("weight", "bias", "acc", "theta", "sum", "h", "v")

    in_channels: int
    out_channels: int
    height: int
    width: int
    pool: bool
    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    zero_point: np.ndarray
    scale: np.ndarray


@register_kind
@dataclass(eq=False)
class SpikeConv3x3(_SpikingConv3x3, Layer):
    """SPS stages 1–2: 3×3 conv on spikes (zero padding), LIF, optional OR pool."""

    KIND: ClassVar[str] = "conv3x3_spike"
    ARRAYS: ClassVar[dict] = {
        "weight": ("int8", ("out_channels", "in_channels", 3, 3)),
        "bias": ("int64", ("out_channels",)),
        "theta": ("int64", ("out_channels",)),
        "scale": ("float64", ("out_channels",)),
    }
    SCALARS: ClassVar[dict] = PixelConv3x3.SCALARS
    WIDTHS: ClassVar[tuple] = PixelConv3x3.WIDTHS

    in_channels: int
    out_channels: int
    height: int
    width: int
    pool: bool
    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    scale: np.ndarray


@register_kind
@dataclass(eq=False)
class EventConv3x3(SpikeConv3x3):
    """SPS stage 0 of an event-camera model: 3×3 conv on each step's event frame, LIF,
    optional OR pool (the fields of :class:`SpikeConv3x3`).

    The input is ``uint8 [T, C, H, W]`` per sample: per-polarity event counts of each time step
    (saturated at 255), taken as they are (no normalization, zero padding). ``acc[t] = bias +
    Σ weight·frame[t]``, fed to the LIF at step ``t``. ``height, width`` are the input sizes.
    """

    KIND: ClassVar[str] = "conv3x3_events"


@register_kind
@dataclass(eq=False)
class StreamConv3x3(Layer):
    """3×3 conv on spikes writing the residual stream: stage-3 conv (``mode="set"``, optional
    integer max pool before the shift) and rpe (``mode="add"``).

    ``stream = (pool(acc) << shift)`` or ``stream += acc << shift``, shift per channel.
    """

    KIND: ClassVar[str] = "stream_conv3x3"
    ARRAYS: ClassVar[dict] = {
        "weight": ("int8", ("out_channels", "in_channels", 3, 3)),
        "bias": ("int64", ("out_channels",)),
        "shift": ("uint8", ("out_channels",)),
        "scale": ("float64", ("out_channels",)),
    }
    SCALARS: ClassVar[dict] = {"in_channels": int, "out_channels": int, "height": int,
                               "width": int, "pool": bool, "mode": str}
    WIDTHS: ClassVar[tuple] = ("weight", "bias", "acc", "shifted", "stream")

    in_channels: int
    out_channels: int
    height: int
    width: int
    pool: bool
    mode: str
    weight: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def flow(cls, kw, geo):
        h, w = kw["height"], kw["width"]
        reads = {kw["input"]: (kw["in_channels"], h, w)}
        if kw["mode"] != "set":
            reads["stream"] = geo.stream
        return reads, {"stream": (kw["out_channels"],) + geo.after_pool(h, w, kw["pool"])}

    @classmethod
    def golden_bytes(cls, kw, geo):
        t, ci, co, h, w = geo.steps, kw["in_channels"], kw["out_channels"], kw["height"], \
            kw["width"]
        ho, wo = geo.after_pool(h, w, True)
        layer = _conv3x3_bytes(kw, t, t)
        layer += t * ci * h * w + 8 * t * co * h * w  # token input as maps; token reorder
        if kw["pool"]:
            layer += 8 * t * co * (h + 2) * (w + 2) + 16 * t * co * ho * wo
        return 0, layer + 4 * geo.stream_bytes  # acc, shifted, old and new stream

    def derive(self, stream):
        return stream.write(self, set_=getattr(self, "mode", "add") == "set")

    def check_values(self, fail):
        if self.mode not in ("set", "add"):
            fail("mode", "must be 'set' or 'add'")


@register_kind
@dataclass(eq=False)
class StreamLIF(_TokenLayer, Layer):
    """LIF reading the residual stream (``sps.lif3``, ``attn.lif_in``, ``mlp.lif_in``)."""

    KIND: ClassVar[str] = "stream_lif"
    ARRAYS: ClassVar[dict] = {"theta": ("int64", ("channels",))}
    SCALARS: ClassVar[dict] = {"channels": int, "tokens": int}
    WIDTHS: ClassVar[tuple] = ("x", "theta", "sum", "h", "v")

    channels: int
    tokens: int
    theta: np.ndarray

    @classmethod
    def flow(cls, kw, geo):
        shape = geo.token_map(kw["channels"], kw)
        return {"stream": shape}, {kw["output"]: shape}

    def derive(self, stream):
        return _lif_widths(stream.lo, stream.hi, self.theta)


@register_kind
@dataclass(eq=False)
class Conv1x1(_TokenLayer, Layer):
    """1×1 conv on token spikes + folded BN, then LIF (attn q/k/v, mlp fc1)."""

    KIND: ClassVar[str] = "conv1x1"
    ARRAYS: ClassVar[dict] = {
        "weight": ("int8", ("out_channels", "in_channels")),
        "bias": ("int64", ("out_channels",)),
        "theta": ("int64", ("out_channels",)),
        "scale": ("float64", ("out_channels",)),
    }
    SCALARS: ClassVar[dict] = {"in_channels": int, "out_channels": int, "tokens": int}
    WIDTHS: ClassVar[tuple] = ("weight", "bias", "acc", "theta", "sum", "h", "v")

    in_channels: int
    out_channels: int
    tokens: int
    weight: np.ndarray
    bias: np.ndarray
    theta: np.ndarray
    scale: np.ndarray

    @classmethod
    def flow(cls, kw, geo):
        return ({kw["input"]: geo.token_map(kw["in_channels"], kw)},
                {kw["output"]: geo.token_map(kw["out_channels"], kw)})

    def derive(self, stream):
        return _spiking_widths(self, 1)


@register_kind
@dataclass(eq=False)
class StreamConv1x1(_TokenLayer, Layer):
    """1×1 conv on token spikes writing the stream: ``stream += acc << shift`` (proj, fc2)."""

    KIND: ClassVar[str] = "stream_conv1x1"
    ARRAYS: ClassVar[dict] = {
        "weight": ("int8", ("out_channels", "in_channels")),
        "bias": ("int64", ("out_channels",)),
        "shift": ("uint8", ("out_channels",)),
        "scale": ("float64", ("out_channels",)),
    }
    SCALARS: ClassVar[dict] = {"in_channels": int, "out_channels": int, "tokens": int}
    WIDTHS: ClassVar[tuple] = ("weight", "bias", "acc", "shifted", "stream")

    in_channels: int
    out_channels: int
    tokens: int
    weight: np.ndarray
    bias: np.ndarray
    shift: np.ndarray
    scale: np.ndarray

    @classmethod
    def flow(cls, kw, geo):
        return ({kw["input"]: geo.token_map(kw["in_channels"], kw), "stream": geo.stream},
                {"stream": geo.token_map(kw["out_channels"], kw)})

    def derive(self, stream):
        return stream.write(self, set_=getattr(self, "mode", "add") == "set")


@register_kind
@dataclass(eq=False)
class SDSA(Layer):
    """Spike-driven self-attention: ``kv = Σ_n K∧V``, mask LIF fed ``kv << shift`` with
    threshold ``theta``, ``out = Q ∧ mask``. ``input`` is the Q tensor; ``k``/``v`` name the
    others; ``mask_output`` names the mask recording. ``stateless_or`` states that the mask
    neuron provably is ``OR_n(K∧V)`` with zero state (hardware may skip its state memory).
    """

    KIND: ClassVar[str] = "sdsa"
    ARRAYS: ClassVar[dict] = {}
    SCALARS: ClassVar[dict] = {"channels": int, "tokens": int, "heads": int, "k": str, "v": str,
                               "mask_output": str, "theta": int, "shift": int,
                               "stateless_or": bool}
    WIDTHS: ClassVar[tuple] = ("kv", "x", "theta", "sum", "h", "v")

    channels: int
    tokens: int
    heads: int
    k: str
    v: str
    mask_output: str
    theta: int
    shift: int
    stateless_or: bool

    @classmethod
    def flow(cls, kw, geo):
        shape = geo.token_map(kw["channels"], kw)
        return ({kw["input"]: shape, kw["k"]: shape, kw["v"]: shape},
                {kw["output"]: shape, kw["mask_output"]: (kw["channels"], 1, 1)})

    @classmethod
    def golden_bytes(cls, kw, geo):
        t, n, d = geo.steps, geo.tokens, kw["channels"]
        return 3 * t * n * d + t * d, 2 * t * n * d + 26 * n * d + 16 * t * d

    def derive(self, stream):
        n = int(self.tokens)
        wd = _lif_widths([0] * self.channels, [n << self.shift] * self.channels,
                         [self.theta] * self.channels)
        wd["kv"] = signed_width(0, n)
        return wd

    def check_values(self, fail):
        if self.theta < 1 or not 0 <= self.shift <= 16:
            fail("theta", "needs theta >= 1 and 0 <= shift <= 16")
        if self.stateless_or != stateless_or_holds(self.theta, self.shift):
            fail("stateless_or", "does not match theta and shift")


@register_kind
@dataclass(eq=False)
class SDSADVS(SDSA):
    """SDSA in the reference's ``dvs_mode`` (a ``config["dvs"]`` model): ``K`` and ``V`` are
    eroded over space (3×3 OR, stride 1), ``K ∧ V`` and ``Q ∧ mask`` over (token, channel
    within one of ``heads`` heads) (:func:`sdtforge.sim.ops.erode_heads`). Its fields are
    :class:`SDSA`'s; ``k`` / ``v`` name the Q/K/V convs' spikes before the erosion.
    """

    KIND: ClassVar[str] = "sdsa_dvs"

    @classmethod
    def golden_bytes(cls, kw, geo):
        t, n, d = geo.steps, geo.tokens, kw["channels"]
        read, work = super().golden_bytes(kw, geo)
        return read, work + 4 * t * n * d  # the eroded K, V and their products

    def check_values(self, fail):
        super().check_values(fail)
        if self.heads < 1 or self.channels % self.heads:
            fail("heads", f"must divide the {self.channels} channels")


@register_kind
@dataclass(eq=False)
class Head(Layer):
    """Classifier: ``X[c] = Σ_n stream[n,c]``, LIF (``theta`` in that N-times scale), then
    ``logits += bias + weight @ s`` at every step (one per-tensor ``scale``)."""

    KIND: ClassVar[str] = "head"
    ARRAYS: ClassVar[dict] = {
        "theta": ("int64", ("channels",)),
        "weight": ("int8", ("num_classes", "channels")),
        "bias": ("int64", ("num_classes",)),
    }
    SCALARS: ClassVar[dict] = {"channels": int, "tokens": int, "num_classes": int,
                               "scale": float}
    WIDTHS: ClassVar[tuple] = ("x", "theta", "sum", "h", "v", "weight", "bias", "acc", "logits")

    channels: int
    tokens: int
    num_classes: int
    scale: float
    theta: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def flow(cls, kw, geo):
        return ({"stream": geo.token_map(kw["channels"], kw)},
                {kw["output"]: (kw["channels"], 1, 1), "logits": (kw["num_classes"], 1, 1)})

    @classmethod
    def golden_bytes(cls, kw, geo):
        t, d, k = geo.steps, kw["channels"], kw["num_classes"]
        return t * d, 24 * t * d + 34 * d + 32 * d * k + 24 * t * k

    def derive(self, stream):
        n = int(self.tokens)
        wd = _lif_widths([n * v for v in stream.lo], [n * v for v in stream.hi], self.theta)
        lo, hi = _acc_bounds(self.weight, self.bias)
        wd["acc"] = _w(lo, hi)
        wd["logits"] = _w([stream.steps * v for v in lo], [stream.steps * v for v in hi])
        return wd

    def check_values(self, fail):
        if not (math.isfinite(self.scale) and self.scale > 0):
            fail("scale", "must be a positive finite number")


#: ``config["encoding"]``: a uint8 image per sample, or uint8 event frames per step.
ENCODINGS = ("direct", "events")


def config_encoding(config):
    """The encoding of an IR config dict (``"direct"`` where it names none, as files written
    before event input do)."""
    return config.get("encoding", "direct")


def config_dvs(config):
    """Whether an IR config dict is of a DVS-mode model (the reference's ``dvs_mode``:
    erosions inside the attention); ``False`` where it says nothing, as files written before
    it do."""
    return bool(config.get("dvs", False))


def input_frames(config):
    """Frames of one sample's input: ``T`` event frames, or one image."""
    return int(config["T"]) if config_encoding(config) == "events" else 1

_CONFIG_FIELDS = {
    "in_channels": int, "img_size": list, "embed_dims": int, "num_heads": int, "mlp_ratio": int,
    "depths": int, "T": int, "pooling_stat": str, "num_classes": int, "mean": list, "std": list,
    "weight_bits": int,
}
_PROVENANCE_FIELDS = {
    "checkpoint_sha256": str, "quantizer": dict, "float_accuracy": (float, type(None)),
    "integer_accuracy": (float, type(None)),
}


@dataclass(eq=False)
class IntegerModel:
    """An integer Spike-Driven Transformer, as stored in an ``.sfm`` file.

    Attributes
    ----------
    config : dict
        The float model's config (``in_channels``, ``img_size`` [H, W], ``embed_dims``,
        ``num_heads``, ``mlp_ratio``, ``depths``, ``T``, ``pooling_stat``, ``num_classes``,
        ``mean``, ``std``) plus ``weight_bits``.
    layers : list of Layer
        Ordered layer records (see :func:`expected_layout`).
    stream_theta : numpy.ndarray
        ``int64 [D]``: ``ceil(1 / s_r[c])``, the threshold of every stream-reading LIF.
    stream_scale : numpy.ndarray
        ``float64 [D]``: the stream's real value per integer unit (informative).
    stream_bits : int
        Signed width holding every value the stream takes, derived.
    provenance : dict
        ``checkpoint_sha256``, ``quantizer`` (settings), ``float_accuracy``,
        ``integer_accuracy`` (fractions or ``None``), and free-form extras.
    """

    config: dict
    layers: list
    stream_theta: np.ndarray
    stream_scale: np.ndarray
    stream_bits: int = 0
    provenance: dict = field(default_factory=dict)

    @property
    def zero_points(self):
        """``uint8 [C_in]`` input value padded at the borders of the first conv (0 for event
        frames)."""
        first = self.layers[0]
        if hasattr(first, "zero_point"):
            return first.zero_point
        return np.zeros(first.in_channels, np.uint8)

    @property
    def encoding(self):
        """``"direct"`` (one uint8 image ``[C, H, W]`` per sample) or ``"events"`` (uint8
        event frames ``[T, C, H, W]``)."""
        return config_encoding(self.config)

    @property
    def input_shape(self):
        """The shape of one sample's input: ``(C, H, W)``, or ``(T, C, H, W)`` for events."""
        h, w = (int(v) for v in self.config["img_size"])
        chw = (int(self.config["in_channels"]), h, w)
        return ((int(self.config["T"]),) + chw) if self.encoding == "events" else chw

    def layer(self, name):
        """The layer record called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    @property
    def tokens(self):
        """Number of tokens ``N`` after the SPS stem."""
        return expected_geometry(self.config)["tokens"]


# ---------------------------------------------------------------------------------------------
# Layout and widths


def _pooled(n):
    return (n - 1) // 2 + 1


def expected_geometry(config):
    """Spatial sizes per SPS stage and the token grid of ``config`` (a dict)."""
    h, w = (int(v) for v in config["img_size"])
    sizes = []
    for i in range(4):
        sizes.append((h, w))
        if config["pooling_stat"][i] == "1":
            h, w = _pooled(h), _pooled(w)
    return {"stages": sizes, "token_hw": (h, w), "tokens": h * w}


def expected_layout(config):
    """The ordered ``(kind, name, input, output, scalar fields)`` a model of ``config`` has."""
    d = int(config["embed_dims"])
    dims = [d // 8, d // 4, d // 2, d]
    geo = expected_geometry(config)
    pool = [c == "1" for c in config["pooling_stat"]]
    n = geo["tokens"]
    hid = int(config["mlp_ratio"]) * d
    th, tw = geo["token_hw"]
    out = []
    cin = int(config["in_channels"])
    prev = "pixels"
    for i in range(3):
        h, w = geo["stages"][i]
        kind = "conv3x3_spike" if i else (
            "conv3x3_events" if config_encoding(config) == "events" else "conv3x3_pixel")
        out.append((kind, f"sps.conv{i}", prev, f"sps.lif{i}",
                    dict(in_channels=cin, out_channels=dims[i], height=h, width=w, pool=pool[i])))
        cin, prev = dims[i], f"sps.lif{i}"
    h, w = geo["stages"][3]
    out.append(("stream_conv3x3", "sps.conv3", prev, "stream",
                dict(in_channels=cin, out_channels=d, height=h, width=w, pool=pool[3],
                     mode="set")))
    out.append(("stream_lif", "sps.lif3", "stream", "sps.lif3", dict(channels=d, tokens=n)))
    out.append(("stream_conv3x3", "sps.rpe", "sps.lif3", "stream",
                dict(in_channels=d, out_channels=d, height=th, width=tw, pool=False, mode="add")))
    for b in range(int(config["depths"])):
        a, m = f"block{b}.attn", f"block{b}.mlp"
        out.append(("stream_lif", f"{a}.lif_in", "stream", f"{a}.lif_in",
                    dict(channels=d, tokens=n)))
        for x in "qkv":
            out.append(("conv1x1", f"{a}.{x}", f"{a}.lif_in", f"{a}.{x}",
                        dict(in_channels=d, out_channels=d, tokens=n)))
        out.append(("sdsa_dvs" if config_dvs(config) else "sdsa", f"{a}.sdsa", f"{a}.q",
                    f"{a}.out",
                    dict(channels=d, tokens=n, heads=int(config["num_heads"]), k=f"{a}.k",
                         v=f"{a}.v", mask_output=f"{a}.mask")))
        out.append(("stream_conv1x1", f"{a}.proj", f"{a}.out", "stream",
                    dict(in_channels=d, out_channels=d, tokens=n)))
        out.append(("stream_lif", f"{m}.lif_in", "stream", f"{m}.lif_in",
                    dict(channels=d, tokens=n)))
        out.append(("conv1x1", f"{m}.fc1", f"{m}.lif_in", f"{m}.hidden",
                    dict(in_channels=d, out_channels=hid, tokens=n)))
        out.append(("stream_conv1x1", f"{m}.fc2", f"{m}.hidden", "stream",
                    dict(in_channels=hid, out_channels=d, tokens=n)))
    out.append(("head", "head", "stream", "head.lif",
                dict(channels=d, tokens=n, num_classes=int(config["num_classes"]))))
    return out


@dataclass(frozen=True)
class Geometry:
    """The shapes a model's layers agree on, from its config.

    Attributes
    ----------
    pixels : tuple
        ``(C, H, W)`` of the input image.
    token_hw : tuple
        ``(h, w)`` of the token grid after the stem.
    steps : int
        Time steps ``T``.
    channels : int
        Residual-stream channels ``D``.
    classes : int
        Logits (classes) of the head.
    """

    pixels: tuple
    token_hw: tuple
    steps: int
    channels: int
    classes: int

    @classmethod
    def of(cls, config):
        """The geometry of a model of ``config``."""
        h, w = (int(v) for v in config["img_size"])
        return cls((int(config["in_channels"]), h, w), expected_geometry(config)["token_hw"],
                   int(config["T"]), int(config["embed_dims"]), int(config["num_classes"]))

    @property
    def tokens(self):
        """Number of tokens ``N``."""
        return self.token_hw[0] * self.token_hw[1]

    @property
    def stream(self):
        """``(D, h, w)``: the residual stream as a map of the token grid."""
        return (self.channels,) + self.token_hw

    @property
    def stream_bytes(self):
        """Bytes of the golden model's ``int64 [T, N, D]`` stream of one image."""
        return 8 * self.steps * self.tokens * self.channels

    def token_map(self, channels, kw=None):
        """``(channels, h, w)``: a tensor over the token grid."""
        return (channels,) + self.token_hw

    @staticmethod
    def after_pool(h, w, pool):
        """``(h, w)`` after the 3×3/s2/p1 pool when ``pool`` is set."""
        return (_pooled(h), _pooled(w)) if pool else (h, w)


def _conv3x3_bytes(kw, steps, t):
    """The golden model's im2col working set of a 3×3 conv over ``steps`` inputs: padded input,
    patches, the product operand copy, then the int64 results."""
    ci, co, h, w = kw["in_channels"], kw["out_channels"], kw["height"], kw["width"]
    e_in, e_out, padded = steps * ci * h * w, steps * co * h * w, (h + 2) * (w + 2)
    return (steps * ci * padded + max(81 * e_in + 8 * e_out, 9 * e_in + 16 * e_out)
            + 32 * co * ci * 9 + 16 * t * h * w)


def _layout(config, layout):
    return expected_layout(config) if layout is None else layout


def array_bytes(config, layout=None):
    """Bytes of all arrays (layers and stream) of a model of ``config`` whose layers are
    ``layout`` (``(kind, name, input, output, scalar fields)`` tuples; by default
    :func:`expected_layout`), from the shapes."""
    total = 16 * int(config["embed_dims"])  # stream theta (int64) and scale (float64)
    for kind, *_, scalars in _layout(config, layout):
        for dtype, dims in LAYER_KINDS[kind].ARRAYS.values():
            shape = [scalars[d] if isinstance(d, str) else d for d in dims]
            total += np.dtype(dtype).itemsize * math.prod(shape)
    return total


def golden_memory_bytes(config, layout=None):
    """Upper estimate of the memory :func:`sdtforge.sim.golden.run` needs for one image.

    Follows how the golden model allocates (``B = 1``, ``spikes=True``): it keeps every
    layer's ``uint8`` spike tensor ``[T, ...]`` (and the recorded copy) to the end of the run,
    one ``int64 [T, N, D]`` residual stream, and per layer a working set: the 3×3 im2col
    patches (``uint8`` plus an up-to-8-byte copy for the product), ``int64`` accumulators of
    all ``T`` steps, the pools' padded copies, the per-step LIF temporaries, the old, shifted
    and new stream of a residual add, and ``int64`` copies of the layer's weights (each kind's
    :meth:`Layer.golden_bytes`). The total is the model's arrays + the image + everything kept
    + the largest working set. Measured peaks (tracemalloc) stay below it; it grows linearly
    with ``T`` and the batch size. ``layout`` as for :func:`array_bytes`.
    """
    geo = Geometry.of(config)
    layout = _layout(config, layout)
    kept, work = 0, 0
    for kind, _, _, _, kw in layout:
        k, w = LAYER_KINDS[kind].golden_bytes(kw, geo)
        kept, work = kept + k, max(work, w)
    return (array_bytes(config, layout) + input_frames(config) * math.prod(geo.pixels) + kept
            + geo.stream_bytes + work)


def _int_array(a):
    a = np.asarray(a)
    return a if a.dtype.kind in "iu" else a.astype(np.int64)


def _abs_max(a):
    """``max |a|`` as a Python int, without an ``int64`` copy of ``a``."""
    a = _int_array(a)
    return max(-int(a.min(initial=0)), int(a.max(initial=0)))


def _acc_bounds(weight, bias, in_max=1):
    """Per output channel ``[lo, hi]`` of ``bias + Σ w·x`` for inputs ``x`` in ``[0, in_max]``."""
    w = _int_array(weight).reshape(weight.shape[0], -1)  # no int64 copy of int8 weights
    pos = np.maximum(w, 0).sum(1, dtype=np.int64) * in_max
    neg = np.minimum(w, 0).sum(1, dtype=np.int64) * in_max
    b = bias.astype(np.int64)
    return [int(v) for v in b + neg], [int(v) for v in b + pos]


def _lif_bounds(xlo, xhi, theta):
    """Ranges of the LIF sum ``V+X``, of ``H`` and of the state ``V`` (lists per channel).

    ``V`` starts at 0 and is either 0 (fired) or ``H < θ`` (so ``V ≤ max(0, θ-1)``); by
    induction ``V ≥ min(0, X_min)`` because ``floor((V+X)/2)`` of two values ``≥ m`` is ``≥ m``.
    """
    vlo = [min(0, x) for x in xlo]
    vhi = [max(0, int(t) - 1) for t in theta]
    slo = [a + b for a, b in zip(vlo, xlo, strict=True)]
    shi = [a + b for a, b in zip(vhi, xhi, strict=True)]
    return (slo, shi), ([s >> 1 for s in slo], [s >> 1 for s in shi]), (vlo, vhi)


def _w(lo, hi):
    return max(signed_width(a, b) for a, b in zip(lo, hi, strict=True))


def _lif_widths(xlo, xhi, theta):
    (slo, shi), (hlo, hhi), (vlo, vhi) = _lif_bounds(xlo, xhi, theta)
    return {"x": _w(xlo, xhi), "theta": signed_width(0, max(int(t) for t in theta)),
            "sum": _w(slo, shi), "h": _w(hlo, hhi), "v": _w(vlo, vhi)}


def _spiking_widths(layer, in_max):
    """Widths of a conv + LIF layer whose inputs lie in ``[0, in_max]``."""
    lo, hi = _acc_bounds(layer.weight, layer.bias, in_max)
    wd = _lif_widths(lo, hi, layer.theta)
    wd.pop("x")
    wd["acc"] = _w(lo, hi)
    return wd


class _StreamRange:
    """Per-channel ``[lo, hi]`` of the residual stream as the layers write it."""

    def __init__(self, channels, steps):
        self.lo, self.hi = [0] * channels, [0] * channels
        self.steps = steps
        self.bits = 1

    def write(self, layer, set_):
        """A stream writer's widths; updates the range (``set_``: replace, else add)."""
        lo, hi = _acc_bounds(layer.weight, layer.bias)
        wd = {"acc": _w(lo, hi)}
        sh = [int(k) for k in layer.shift]
        lo = [a << k for a, k in zip(lo, sh, strict=True)]
        hi = [a << k for a, k in zip(hi, sh, strict=True)]
        wd["shifted"] = _w(lo, hi)
        if set_:
            self.lo, self.hi = lo, hi
        else:
            self.lo = [a + b for a, b in zip(self.lo, lo, strict=True)]
            self.hi = [a + b for a, b in zip(self.hi, hi, strict=True)]
        wd["stream"] = _w(self.lo, self.hi)
        self.bits = max(self.bits, wd["stream"])
        return wd


def derive_widths(model):
    """Derive every layer's bit widths from its integers; returns ``(widths list, stream_bits)``.

    Worst cases: a spike input contributes 0 or ``w``; a pixel 0…255 times ``w``; the stream
    range grows by each writer's shifted accumulator range; the head sums ``N`` stream values;
    logits sum ``T`` per-step accumulators. Each kind's part is its record's
    :meth:`Layer.derive`. Does not modify ``model``.
    """
    stream = _StreamRange(int(model.config["embed_dims"]), int(model.config["T"]))
    result = []
    for layer in model.layers:
        wd = layer.derive(stream)
        if "weight" in layer.WIDTHS:
            wmax = _abs_max(layer.weight)
            wd["weight"] = signed_width(-wmax, wmax)
            b = layer.bias.astype(np.int64)
            wd["bias"] = signed_width(int(b.min(initial=0)), int(b.max(initial=0)))
        result.append(wd)
    return result, stream.bits


def finalize(model):
    """Fill ``model``'s layer widths and ``stream_bits`` with the derived values; returns it."""
    widths, stream_bits = derive_widths(model)
    for layer, wd in zip(model.layers, widths, strict=True):
        layer.widths = dict(sorted(wd.items()))
    model.stream_bits = stream_bits
    return model


# ---------------------------------------------------------------------------------------------
# Writing


def _npy_bytes(array):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(model):
    """Serialize ``model`` to the bytes of an ``.sfm`` file (deterministic)."""
    entries = {}
    header_layers = []
    for i, layer in enumerate(model.layers):
        rec = {"kind": layer.KIND, "name": layer.name, "input": layer.input,
               "output": layer.output, "widths": dict(layer.widths), "arrays": {}}
        for key in layer.SCALARS:
            rec[key] = getattr(layer, key)
        for key, (dtype, _) in layer.ARRAYS.items():
            entry = f"layers/{i:03d}/{key}"
            entries[entry] = np.asarray(getattr(layer, key)).astype(dtype, copy=False)
            rec["arrays"][key] = entry
        header_layers.append(rec)
    entries["stream/theta"] = np.asarray(model.stream_theta).astype("int64", copy=False)
    entries["stream/scale"] = np.asarray(model.stream_scale).astype("float64", copy=False)
    header = {
        "format": FORMAT, "version": VERSION, "config": model.config, "layers": header_layers,
        "stream": {"theta": "stream/theta", "scale": "stream/scale", "bits": model.stream_bits},
        "provenance": model.provenance,
    }
    text = json.dumps(_jsonable(header), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)
    entries["header"] = np.frombuffer(text.encode("utf-8"), np.uint8)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, _npy_bytes(entries[name]), compresslevel=6)
    return buf.getvalue()


def save(model, path):
    """Validate ``model`` and write it to ``path`` (``.sfm``); byte-identical for equal models."""
    data = dumps(model)
    loads(data, source=str(path))  # refuse to write a file we would refuse to read
    Path(path).write_bytes(data)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Reading and validation


def load(path):
    """Read and validate an ``.sfm`` file.

    Raises
    ------
    IRError
        If the file is missing, larger than :data:`MAX_FILE_BYTES`, truncated, of another
        format or version, or any field is absent, of the wrong type, shape or dtype, out of its
        range or declared width, inconsistent with the config, or the model is too large for
        the golden model (:data:`MAX_GOLDEN_BYTES`); the message names the field.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded: also for FIFOs and devices
    except OSError as exc:
        raise IRError(f"{path}: cannot read the integer model file ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise IRError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, the largest integer "
                      "model file sdtforge reads (MAX_FILE_BYTES); not an .sfm file")
    return loads(data, source=str(path))


class _Checker:
    def __init__(self, source):
        self.source = source

    def fail(self, where, msg):
        raise IRError(f"{self.source}: field {where!r}: {msg}")

    def get(self, obj, key, types, where):
        if not isinstance(obj, dict) or key not in obj:
            self.fail(f"{where}.{key}" if where else key, "missing")
        value = obj[key]
        if types is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(f"{where}.{key}", f"must be an integer, not {_short(value)}")
        if types is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                self.fail(f"{where}.{key}", "is too large for a float")
        if types is not int and not isinstance(value, types):
            self.fail(f"{where}.{key}", f"has the wrong type ({type(value).__name__})")
        return value


def _short(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_CD_SIGNATURE = b"PK\x01\x02"  # starts every ZIP central directory record


class _Archive:
    """The entries of an ``.sfm`` archive, read only through size-checked, bounded reads.

    ``zipfile`` parses the central directory up front (one object per record: bounded by
    counting record signatures first); entries are opened one at a time, and no read asks the
    decompressor for more than the bytes the entry may still hold (see :meth:`array`).
    """

    def __init__(self, data, source):
        self.source = source
        if not isinstance(data, bytes):
            data = bytes(data)
        if len(data) > MAX_FILE_BYTES:
            self.corrupt(f"larger than {MAX_FILE_BYTES >> 20} MiB (MAX_FILE_BYTES)")
        if data.count(_CD_SIGNATURE) > _MAX_ENTRIES:
            self.corrupt(f"more than {_MAX_ENTRIES} entries")
        try:
            self.zf = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zf.infolist()
        except Exception as exc:  # zip decoding of untrusted bytes: any failure is a bad file
            self.corrupt(f"truncated or corrupted: {type(exc).__name__}")
        if any(info.filename.endswith("/data.pkl") for info in infos):   # torch.save's layout
            raise IRError(f"{source}: a float checkpoint (torch file), not an integer model; "
                          f"make one with `sdtforge quantize {source} --out MODEL.sfm`")
        self.infos = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or len(name) > _MAX_NAME:
                self.corrupt(f"unexpected entry {_short(name)}")
            if name[:-4] in self.infos:
                self.corrupt(f"duplicate entry {_short(name)}")
            if info.flag_bits & 1:
                self.corrupt(f"entry {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.corrupt(f"entry {name!r} uses compression method {info.compress_type}; "
                             ".sfm entries are stored or DEFLATE")
            self.infos[name[:-4]] = info

    def corrupt(self, why):
        raise IRError(f"{self.source}: not a readable .sfm integer model file ({why}); "
                      "re-run `sdtforge quantize`")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def array(self, ck, where, name, dtype, shape):
        """Entry ``name`` as an array of ``dtype`` and ``shape`` (``None``: any 1-d length up to
        :data:`MAX_HEADER_BYTES`), else :class:`IRError` naming ``where``.

        The ``.npy`` header is read first (at most :data:`_MAX_NPY_PREFIX` bytes) and checked;
        the entry's declared size must then be exactly that header plus the array's data (no
        trailing bytes), and the data is read in chunks of at most :data:`_READ_CHUNK` bytes,
        so a forged entry (a zip bomb) never makes the decompressor produce more.
        """
        info = self.infos[name]
        dtype = np.dtype(dtype)
        try:
            with self.zf.open(info) as fh:
                prefix = fh.read(min(info.file_size, _MAX_NPY_PREFIX))
                bio = io.BytesIO(prefix)
                version = np.lib.format.read_magic(bio)
                if version == (1, 0):
                    got_shape, fortran, got_dtype = np.lib.format.read_array_header_1_0(bio)
                elif version == (2, 0):
                    got_shape, fortran, got_dtype = np.lib.format.read_array_header_2_0(bio)
                else:
                    ck.fail(where, f"entry {name}.npy is .npy version {version}; 1.0 or 2.0 "
                            "expected")
                start = bio.tell()
                if got_dtype != dtype:
                    ck.fail(where, f"dtype {got_dtype} but {dtype} expected")
                if shape is None:
                    if len(got_shape) != 1:
                        ck.fail(where, f"shape {got_shape} but a 1-d byte string expected")
                    if got_shape[0] > MAX_HEADER_BYTES:
                        ck.fail(where, f"holds {got_shape[0]} bytes, more than the "
                                f"{MAX_HEADER_BYTES >> 20} MiB limit (MAX_HEADER_BYTES)")
                    shape = got_shape
                elif got_shape != tuple(shape):
                    ck.fail(where, f"shape {got_shape} but {tuple(shape)} expected")
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size != start + nbytes:
                    extra = info.file_size - start - nbytes
                    ck.fail(where, f"entry {name}.npy holds {info.file_size} bytes but its "
                            f".npy header and data take {start + nbytes}: " +
                            (f"{extra} trailing bytes" if extra > 0 else "truncated"))
                buf = bytearray(nbytes)
                view = memoryview(buf)
                pos = len(prefix) - start
                view[:pos] = prefix[start:]
                while pos < nbytes:
                    chunk = fh.read(min(nbytes - pos, _READ_CHUNK))
                    if not chunk:
                        raise EOFError(f"{name}.npy ends early")
                    view[pos:pos + len(chunk)] = chunk
                    pos += len(chunk)
                view.release()
        except IRError:
            raise
        except Exception as exc:  # zip/npy decoding of untrusted bytes: any failure is bad
            ck.fail(where, f"entry {name}.npy is not a readable .npy array (truncated or "
                    f"corrupted: {type(exc).__name__}); re-run `sdtforge quantize`")
        arr = np.frombuffer(buf, dtype)
        arr = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            ck.fail(where, "holds non-finite values")
        return arr


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(data, source="<bytes>"):
    """Parse and validate the bytes of an ``.sfm`` file (see :func:`load`).

    Order: archive directory, header (bounded), config ranges and the resource estimate, every
    header field, the set of entries; only then the arrays, each checked before its data is
    read (docs/integer-semantics.md §10).
    """
    with _Archive(data, source) as ar:
        return _parse(_Checker(source), ar)


def _parse(ck, ar):
    if "header" not in ar.infos:
        ck.fail("header", "missing: not an sdtforge integer model file")
    head = ar.array(ck, "header", "header", "uint8", None)
    try:
        header = json.loads(head.tobytes().decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        ck.fail("header", "is not valid JSON (corrupted file)")
    if not isinstance(header, dict):
        ck.fail("header", "must be a JSON object")
    if header.get("format") != FORMAT:
        ck.fail("format", f"is {_short(header.get('format'))}, expected {FORMAT!r}")
    version = header.get("version")
    if type(version) is not int or version != VERSION:
        ck.fail("version", f"is {_short(version)}; this sdtforge reads version {VERSION}: "
                "re-run `sdtforge quantize` with this version")
    config = _check_config(ck, ck.get(header, "config", dict, ""))
    recs = ck.get(header, "layers", list, "")
    if not 1 <= len(recs) <= _MAX_LAYERS:
        ck.fail("layers", f"holds {len(recs)} layers; a model has 1..{_MAX_LAYERS}")
    layout = [_read_record(ck, i, rec) for i, rec in enumerate(recs)]
    _check_flow(ck, Geometry.of(config), layout, config_encoding(config))
    _check_resources(ck, config, layout)
    refs = {}  # entry name -> (where, dtype, shape, kw dict, field)

    def ref(where, entry_name, dtype, shape, kw, key):
        if not isinstance(entry_name, str) or entry_name not in ar.infos:
            ck.fail(where, f"array {_short(entry_name)} missing from the archive")
        if entry_name in refs:
            ck.fail(where, f"array {entry_name!r} referenced twice")
        refs[entry_name] = (where, dtype, shape, kw, key)

    records = []
    for i, (rec, (kind, name, _, _, kw)) in enumerate(zip(recs, layout, strict=True)):
        cls = LAYER_KINDS[kind]
        where = f"layers[{i}] ({name})"
        widths = ck.get(rec, "widths", dict, where)
        if set(widths) != set(cls.WIDTHS):
            ck.fail(f"{where}.widths", f"keys {_short(sorted(widths))} but "
                    f"{sorted(cls.WIDTHS)} expected")
        for key, value in widths.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= \
                    _MAX_WIDTH:
                ck.fail(f"{where}.widths.{key}", f"must be an integer in 1..{_MAX_WIDTH}")
        kw["widths"] = dict(sorted(widths.items()))
        arrays = ck.get(rec, "arrays", dict, where)
        if set(arrays) != set(cls.ARRAYS):
            ck.fail(f"{where}.arrays", f"keys {_short(sorted(arrays))} but "
                    f"{sorted(cls.ARRAYS)} expected")
        for key, (dtype, dims) in cls.ARRAYS.items():
            shape = tuple(kw[d] if isinstance(d, str) else d for d in dims)
            ref(f"{where}.{key}", arrays[key], dtype, shape, kw, key)
        records.append((cls, where, kw))
    stream = ck.get(header, "stream", dict, "")
    d = int(config["embed_dims"])
    stream_kw = {}
    ref("stream.theta", stream.get("theta"), "int64", (d,), stream_kw, "theta")
    ref("stream.scale", stream.get("scale"), "float64", (d,), stream_kw, "scale")
    bits = ck.get(stream, "bits", int, "stream")
    provenance = ck.get(header, "provenance", dict, "")
    for key, typ in _PROVENANCE_FIELDS.items():
        ck.get(provenance, key, typ, "provenance")
    leftover = set(ar.infos) - set(refs) - {"header"}
    if leftover:
        names = ", ".join(_short(n) for n in sorted(leftover)[:3])
        ck.fail("arrays", f"unreferenced entries {names}" + (" ..." if len(leftover) > 3 else ""))
    # every field of the header is checked and every entry accounted for: read the arrays
    for entry_name, (where, dtype, shape, kw, key) in refs.items():
        kw[key] = ar.array(ck, where, entry_name, dtype, shape)
    layers = []
    for cls, where, kw in records:
        layer = cls(**kw)
        _check_layer_values(ck, where, layer, config)
        layers.append(layer)
    theta, scale = stream_kw["theta"], stream_kw["scale"]
    if theta.min() < 1:
        ck.fail("stream.theta", "thresholds must be >= 1")
    if scale.min() <= 0:
        ck.fail("stream.scale", "scales must be > 0")
    for layer in layers:
        if isinstance(layer, StreamLIF) and not np.array_equal(layer.theta, theta):
            ck.fail(f"{layer.name}.theta", "must equal stream.theta")
    model = IntegerModel(config=config, layers=layers, stream_theta=theta, stream_scale=scale,
                         stream_bits=bits, provenance=provenance)
    derived, derived_stream = derive_widths(model)
    for layer, wd in zip(layers, derived, strict=True):
        for key, need in wd.items():
            if layer.widths[key] < need:
                ck.fail(f"{layer.name}.widths.{key}",
                        f"declares {layer.widths[key]} bits but the values need {need}")
    if bits < derived_stream:
        ck.fail("stream.bits", f"declares {bits} bits but the stream needs {derived_stream}")
    return model


def _read_record(ck, i, rec):
    """The kind, dataflow names and scalar fields of header record ``i``: a layout entry."""
    where = f"layers[{i}]"
    if not isinstance(rec, dict):
        ck.fail(where, "must be an object")
    kind = ck.get(rec, "kind", str, where)
    if kind not in LAYER_KINDS:
        ck.fail(f"{where}.kind", f"is {_short(kind)}, not a layer kind this sdtforge knows "
                f"({', '.join(LAYER_KINDS.kinds())})")
    cls = LAYER_KINDS[kind]
    name, inp, outp = (ck.get(rec, key, str, where) for key in ("name", "input", "output"))
    if not 1 <= len(name) <= _MAX_NAME:
        ck.fail(f"{where}.name", f"must be 1..{_MAX_NAME} characters")
    where = f"layers[{i}] ({name})"
    kw = {"name": name, "input": inp, "output": outp}
    for key, typ in cls.SCALARS.items():
        value = ck.get(rec, key, typ, where)
        lo, hi = _SIZE_FIELDS.get(key, (None, None))
        if lo is not None and not lo <= value <= hi:
            ck.fail(f"{where}.{key}", f"is {value}, outside {lo}..{hi}")
        kw[key] = value
    return kind, name, inp, outp, kw


def _check_flow(ck, geo, layout, encoding="direct"):
    """Refuse a layer sequence whose dataflow does not hold (:meth:`Layer.flow`).

    The first layer, and only it, reads the pixels; every tensor a layer reads was written
    before, with the shape the layer expects; a name is written once (the residual stream,
    of shape ``(D, h, w)``, by every stream writer); token layers run on the config's token
    grid; the last layer, and only it, writes the logits, one per class of the config.
    """
    shapes = {"pixels": geo.pixels}
    names = set()
    for i, (kind, name, inp, outp, kw) in enumerate(layout):
        where = f"layers[{i}] ({name})"
        if name in names:
            ck.fail(f"{where}.name", "is the name of an earlier layer")
        names.add(name)
        if "tokens" in kw and kw["tokens"] != geo.tokens:
            ck.fail(f"{where}.tokens", f"is {kw['tokens']} but the config's token grid has "
                    f"{geo.tokens}")
        reads, writes = LAYER_KINDS[kind].flow(kw, geo)
        if ("pixels" in reads) != (i == 0):
            ck.fail(where, "the first layer, and only it, reads the pixels")
        if i == 0 and (kind == "conv3x3_events") != (encoding == "events"):
            ck.fail(where, f"a {kind} layer cannot read {encoding} input (config.encoding)")
        if inp not in reads or outp not in writes:
            ck.fail(where, f"a {kind} layer reads {', '.join(map(repr, reads))} and writes "
                    f"{', '.join(map(repr, writes))}, not {_short(inp)} -> {_short(outp)}")
        for tensor, shape in reads.items():
            if tensor not in shapes:
                ck.fail(f"{where}.input", f"reads {_short(tensor)} before a layer writes it")
            if shapes[tensor] != shape:
                ck.fail(f"{where}.input", f"reads {_short(tensor)} as {list(shape)} but it "
                        f"is {list(shapes[tensor])}")
        for tensor, shape in writes.items():
            if tensor == "stream" and shape != geo.stream:
                ck.fail(f"{where}.output", f"writes the stream as {list(shape)}; the config's "
                        f"stream is {list(geo.stream)}")
            if tensor != "stream" and tensor in shapes:
                ck.fail(f"{where}.output", f"writes {_short(tensor)}, which exists already")
            shapes[tensor] = shape
        if ("logits" in writes) != (i == len(layout) - 1):
            ck.fail(where, "the last layer, and only it, writes the logits")
    if shapes["logits"] != (geo.classes, 1, 1):
        ck.fail("layers", f"the model has {shapes['logits'][0]} logits but the config "
                f"{geo.classes} classes")


def _check_config(ck, config):
    for key, typ in _CONFIG_FIELDS.items():
        ck.get(config, key, typ, "config")
    for key, (lo, hi) in CONFIG_RANGES.items():
        if key != "img_side" and not lo <= config[key] <= hi:
            ck.fail(f"config.{key}", f"is {config[key]}, outside the supported range {lo}..{hi}")
    if config["embed_dims"] % 8 or config["embed_dims"] % config["num_heads"]:
        ck.fail("config.embed_dims", "must be a multiple of 8 and of num_heads")
    lo, hi = CONFIG_RANGES["img_side"]
    size = config["img_size"]
    if (len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or not
                              lo <= v <= hi for v in size)):
        ck.fail("config.img_size", f"must be [height, width], integers in {lo}..{hi}")
    ps = config["pooling_stat"]
    if len(ps) != 4 or set(ps) - {"0", "1"}:
        ck.fail("config.pooling_stat", "must be four '0'/'1' characters")
    for key in ("mean", "std"):
        vals = config[key]
        if len(vals) != config["in_channels"] or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v)
                for v in vals):
            ck.fail(f"config.{key}", "must hold one finite number per input channel")
    if min(config["std"]) <= 0:
        ck.fail("config.std", "must be positive")
    # Optional (files written before event input have none): "direct" or "events".
    if config_encoding(config) not in ENCODINGS:
        ck.fail("config.encoding", f"must be one of {', '.join(ENCODINGS)}")
    if not isinstance(config.get("dvs", False), bool):  # optional, as "encoding"
        ck.fail("config.dvs", "must be true or false")
    return config


def _finite(v):
    try:
        return math.isfinite(v)
    except OverflowError:  # an int beyond the float range
        return False


def _check_resources(ck, config, layout):
    """Refuse a model whose arrays or golden-model run exceed the loader's limits."""
    need = array_bytes(config, layout)
    if need > MAX_ARRAY_BYTES:
        ck.fail("config", f"the model's arrays would take {need / 2**20:.0f} MiB, above the "
                f"{MAX_ARRAY_BYTES >> 20} MiB limit (MAX_ARRAY_BYTES)")
    need = golden_memory_bytes(config, layout)
    if need > MAX_GOLDEN_BYTES:
        h, w = config["img_size"]
        ck.fail("config", f"the golden model would need about {need / 2**30:.1f} GiB for one "
                f"image (T={config['T']}, {h}x{w} pixels, D={config['embed_dims']}, "
                f"{expected_geometry(config)['tokens']} tokens), above the "
                f"{MAX_GOLDEN_BYTES >> 30} GiB limit (MAX_GOLDEN_BYTES)")


def _check_layer_values(ck, where, layer, config):
    qmax = (1 << (config["weight_bits"] - 1)) - 1
    if "weight" in layer.ARRAYS:
        if _abs_max(layer.weight) > qmax:
            ck.fail(f"{where}.weight", f"exceeds the {config['weight_bits']}-bit range "
                    f"±{qmax}")
    if "theta" in layer.ARRAYS and layer.theta.min(initial=1) < 1:
        ck.fail(f"{where}.theta", "thresholds must be >= 1")
    if "shift" in layer.ARRAYS and layer.shift.max(initial=0) > 32:
        ck.fail(f"{where}.shift", "alignment shifts must be <= 32")
    if "scale" in layer.ARRAYS and layer.scale.min(initial=1.0) <= 0:
        ck.fail(f"{where}.scale", "scales must be > 0")
    for key in ("bias", "theta"):
        if key in layer.ARRAYS:
            arr = getattr(layer, key)
            if np.abs(arr).max(initial=0) >= 1 << (_MAX_WIDTH - 2):
                ck.fail(f"{where}.{key}", "values are implausibly large")
    layer.check_values(lambda key, message: ck.fail(f"{where}.{key}", message))
