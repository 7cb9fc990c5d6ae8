"""The accelerator's hardware configuration (:class:`AccelConfig`) and its sizing rules.

An :class:`AccelConfig` fixes everything the generated RTL depends on: the lanes ``P``, the spike
word width ``W``, every value width, every memory's depth and the loop-counter widths. The
compiler (:mod:`.compile`) derives the smallest one that runs a model; the gateware, the cycle
model and the host driver read the lane layouts of the memories' rows from it
(:meth:`AccelConfig.lane_layout`), so a row is laid out in one place.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, fields

from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from sdtforge.errors import UserError

from .accel_isa import PROGRAM_WORD_BITS, Target
from .result import RESULT_WORD_BITS

__all__ = ["AccelConfig", "ENGINE_FIELDS", "MEMORIES", "MAX_LANES", "MAX_WIDTH",
           "check_lanes_width", "writeback_cycles", "MAX_WRITEBACK_CYCLES", "ceil_div",
           "counter_bits", "layout_shift", "pow2_at_least", "pixel_layout"]

#: Memories of the planner, in table order: (name, load target or None).
MEMORIES = (("program", Target.PROGRAM), ("weights", Target.WEIGHTS),
            ("biases", Target.BIASES), ("thresholds", Target.THRESHOLDS),
            ("shifts", Target.SHIFTS), ("pixels", Target.PIXELS), ("spikes", None),
            ("stream", None), ("logits", None))


#: The narrowest loop counter the compiler derives: a counter over a single value still
#: needs one bit (an Amaranth signal of width 0 cannot be compared or incremented).
MIN_COUNTER_BITS = 1


def pow2_at_least(n):
    """The smallest power of two holding ``n``."""
    return 1 << ceil_log2(n)


def layout_shift(n):
    """Layout shift of a power-of-two stride holding ``n`` (0 for ``n <= 1``: no shift)."""
    return ceil_log2(n)


def pixel_layout(channels, height, width, frames=1):
    """Where the input lies in the pixel memory: byte ``(t, y, x, c)`` at
    ``t << sht | y << shy | x << shx | c``, then one zero-point row per channel at
    ``pad_base`` (right after the last frame; the engine adds the channel to it). ``frames``
    is 1 for an image, ``T`` for event frames.

    Returns a dict: ``height``, ``width``, ``channels``, ``frames``, ``shx``, ``shy``,
    ``sht``, ``pad_base``.
    """
    shx = layout_shift(channels)
    shy = shx + layout_shift(width)
    sht = shy + layout_shift(height)
    return {"height": height, "width": width, "channels": channels, "frames": frames,
            "shx": shx, "shy": shy, "sht": sht, "pad_base": frames << sht}


def counter_bits(n):
    """Bits of a loop counter over ``n`` values: ``ceil(log2(n))``, at least the minimum."""
    return max(ceil_log2(n), MIN_COUNTER_BITS)


def ceil_div(a, b):
    """``ceil(a / b)`` of two integers."""
    return -(-int(a) // int(b))


#: The configuration fields that choose how the engine works, not what it holds: a model
#: compiles to the same program and memory images whatever their values.
ENGINE_FIELDS = ("events", "stream_latency", "weight_latency")

#: The configuration fields for which 0 is a value (no shift, no prefetch, the default window).
_MAY_BE_ZERO = ("sdsa_shift", "sdsa_or", "pool_or", "weight_tile_rows", "weight_window",
                "event_frames", "dvs_head_channels")


@dataclass(frozen=True)
class AccelConfig:
    """Hardware configuration of one accelerator build (plain data; saved as JSON).

    Parameters
    ----------
    lanes : int
        PE lanes ``P`` (a power of two, at most ``width``).
    width : int
        Spike word width ``W`` in channels (a power of two, at least 8).
    weight_bits, acc_bits, theta_bits, shift_bits, stream_bits, logit_bits : int
        Signed widths of a weight, an accumulator / LIF input / bias, a threshold, an unsigned
        alignment shift, a residual-stream value and a summed logit.
    program_depth, weights_depth, biases_depth, thresholds_depth, shifts_depth, pixels_depth,
    spikes_depth, stream_depth, logits_depth : int
        Rows of each memory (program: 16-bit words, :func:`~.accel_isa.descriptor_words` per
        descriptor). A bias, threshold or logits row holds the lanes the write-back stage
        handles in a cycle (:attr:`chunk_lanes`): group ``g``'s ``P`` values are rows
        ``g·c … g·c + c − 1`` (``c = writeback_cycles``), lowest lanes first.
    sdsa_channels, max_tokens : int
        Largest SDSA width (a multiple of ``width``) and token count the SDSA unit supports.
    sdsa_shift : int
        The SDSA mask shift the SDSA unit is built with.
    sdsa_or : int
        1: the SDSA unit is built in its stateless ``"or"`` mode (:class:`~.sdsa.SDSAUnit`:
        the mask is ``OR_n(K ∧ V)``, one bit per channel, no counts or mask membranes, and a
        ``MASK`` command takes one cycle instead of ``W``), which runs only models whose SDSA
        layers all have that mask (the IR's ``stateless_or``, as the reference's
        ``V_th = 0.5`` gives); 0: the general mask neuron, for every model.
    pool_or : int
        1: the ``POOL_OR`` stage (:class:`~.pool.SpikePoolStage`: a pooled spiking conv's
        spike max-pool, a DVS model's erosions) is built; 0: it is not, and a model with a
        ``POOL_OR`` descriptor is refused. The compiler derives it from the program.
    coord_bits, step_bits, group_bits, word_bits : int
        Widths of the controller's loop counters: a map coordinate (the largest map side is
        at most ``2**coord_bits``), a time step, an output group (or word) and a word index
        within a position. The compiler derives the smallest that run the model; every
        counter, comparator and address-generator input is that wide, and the descriptor's
        count fields are one bit wider (a count of ``2**bits`` iterations).
    channel_bits : int
        Width of the descriptor's channel count (``cin``: a layer's input channels, ``END``'s
        classes) and of the controller's class index. With the counter widths and the memory
        depths it fixes every descriptor field's width (:func:`~.accel_isa.descriptor_widths`),
        so the program encoding is a function of the configuration.
    external_weights : bool
        Weight rows live outside the accelerator (e.g. iCE40 SPRAM), reached through the
        top-level ``w_req`` / ``w_rsp`` weight stream and ``w_write`` port instead of an
        internal memory.
    writeback_cycles : int
        Cycles the write-back stage spends on a row of ``P`` lane values: it handles
        ``lanes / writeback_cycles`` lanes per cycle (one LIF neuron and one residual adder per
        lane it handles), overlapped with the next row's gather (a power of two dividing
        ``lanes``; 1: every lane at once). The cycle model follows it
        (:func:`sdtforge.sim.cycles.predict`). With more than one cycle the write-back adds
        the biases as well (:attr:`writeback_bias`).
    weight_tile_rows : int
        The largest weight tile (one output group's rows, :mod:`.weight_tiles`) that the tile
        prefetch in front of external weights was built for
        (:class:`~.weight_prefetch.WeightPrefetch`'s ``tile_rows``; a board's ``--sdram``
        build); a model with a larger tile would be served wrong rows and is refused. 0: no
        prefetch.
    event_frames : int
        1: the pixel layer can take an event model's input, a frame per step (``PIXEL`` with
        ``per_step``: a frame counter while receiving, the frame's pixel-memory address); 0:
        images only, and none of that logic is built.
    dvs_head_channels : int
        Channels per attention head of a DVS-mode model (the reference's ``dvs_mode``): the
        SDSA stage's erosions over (token, channel within a head) and ``POOL_OR``'s stride 1
        are built for heads of this size (a divisor or a multiple of ``width``); 0: none of
        that logic is built.
    weight_window : int
        The prefetch's window in rows (a power of two holding at least one tile,
        :func:`~.weight_tiles.single_window`); 0: the double buffer
        (:func:`~.weight_tiles.prefetch_window` of ``weight_tile_rows``).
    events : int
        Events per PE command: 1, or 2 (the event encoder hands out a word's events two at a
        time and the PE lanes add two weight rows per cycle, read on the weight memory's two
        block RAM ports, from two copies of the rows in external memory such as the
        iCE40's SPRAM, or from the two ports of the SDRAM prefetch's window). The cycle model
        follows it.
    stream_latency : int
        Cycles from a stream memory read's address to its data: 1, the block RAM's own read;
        or 3 (with ``writeback_cycles = 1``), its address and enable from registers and its
        data into a register, so neither the address's adder nor the read data's route across
        the die shares a clock cycle with the stages' logic (the ECP5's stream memory is
        about 80 block RAMs, ``docs/architecture.md`` §5). The stream's readers ask that much
        earlier (``STREAM_LIF`` and ``HEAD_SUM``) or pipeline their reads (the pooled merge);
        the cycle model follows it.
    weight_latency : int
        Cycles from a PE command's acceptance to its weight row in the lanes' adders: 1, the
        weight source's answer added in the cycle it arrives; or 2, the answer (with two events
        per command, the sum of its two rows) taken into a register first, so the weight block
        RAMs' read and the accumulators' adders do not share a clock cycle. The PE array's
        drain latency grows by a cycle and it holds one command more; the cycle model
        follows it (``docs/accelerator.md`` §9).
    """

    lanes: int = 8
    width: int = 16
    weight_bits: int = 8
    acc_bits: int = 24
    theta_bits: int = 24
    shift_bits: int = 3
    stream_bits: int = 24
    logit_bits: int = 32
    program_depth: int = 512
    weights_depth: int = 4096
    biases_depth: int = 128
    thresholds_depth: int = 128
    shifts_depth: int = 128
    pixels_depth: int = 1024
    spikes_depth: int = 2048
    stream_depth: int = 512
    logits_depth: int = 16
    sdsa_channels: int = 64
    max_tokens: int = 64
    sdsa_shift: int = 1
    sdsa_or: int = 0
    pool_or: int = 1
    coord_bits: int = 8
    step_bits: int = 8
    group_bits: int = 8
    word_bits: int = 8
    channel_bits: int = 12
    external_weights: bool = False
    writeback_cycles: int = 1
    weight_tile_rows: int = 0
    weight_window: int = 0
    event_frames: int = 0
    dvs_head_channels: int = 0
    events: int = 1
    stream_latency: int = 1
    weight_latency: int = 1

    def __post_init__(self):
        # A wrong type is a programming error (TypeError; ``from_json`` turns it into a
        # UserError for a config file); a wrong value is the user's option (UserError).
        if not isinstance(self.external_weights, bool):
            raise TypeError(f"AccelConfig.external_weights must be a bool, not "
                            f"{self.external_weights!r}")
        for f in fields(self):
            if f.name == "external_weights":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AccelConfig.{f.name} must be an integer, not {value!r}")
            if value < (0 if f.name in _MAY_BE_ZERO else 1):
                raise UserError(f"{f.name} must be positive, not {value!r}")
        check_lanes_width(self.lanes, self.width)
        win = self.weight_window
        if win and (win & (win - 1) or win < self.weight_tile_rows or not self.weight_tile_rows):
            raise UserError(f"weight_window must be 0 or a power of two holding a weight tile "
                            f"({self.weight_tile_rows!r} rows), not {win!r}")
        c = self.writeback_cycles
        if c & (c - 1) or self.lanes % c:
            raise UserError(f"writeback_cycles must be a power of two dividing lanes "
                            f"({self.lanes!r}), not {c!r}")
        if self.logit_bits > RESULT_WORD_BITS:
            raise UserError(f"logit_bits ({self.logit_bits!r}) must be at most "
                            f"{RESULT_WORD_BITS}, the result stream's word")
        hd = self.dvs_head_channels
        if hd and hd % self.width and self.width % hd:
            fits = [w for w in (1 << k for k in range(3, MAX_WIDTH.bit_length()))
                    if hd % w == 0 or w % hd == 0]
            hint = (f"build with --width {fits[0]}" if fits else
                    "no word width can (a power of two of at least 8 channels): the heads "
                    "need a power-of-two size, or a multiple of 8 channels")
            raise UserError(f"DVS attention heads of {hd} channels need a word width that "
                            f"divides it or that it divides, not {self.width}; {hint}")
        if self.events not in (1, 2):
            raise UserError(f"events must be 1 or 2, not {self.events!r}")
        if self.stream_latency not in (1, 3):
            raise UserError(f"stream_latency must be 1 or 3, not {self.stream_latency!r}")
        if self.weight_latency not in (1, 2):
            raise UserError(f"weight_latency must be 1 or 2, not {self.weight_latency!r}")
        if self.stream_latency > 1 and self.writeback_cycles > 1:
            raise UserError(f"stream_latency {self.stream_latency} needs writeback_cycles 1 "
                            f"(every lane at once), not {self.writeback_cycles}")
        for name in ("sdsa_or", "pool_or"):
            if getattr(self, name) not in (0, 1):
                raise UserError(f"{name} must be 0 or 1, not {getattr(self, name)!r}")
        if self.sdsa_channels % self.width:
            raise UserError(f"sdsa_channels ({self.sdsa_channels!r}) must be a multiple of the "
                            f"word width ({self.width!r})")

    @property
    def chunk_lanes(self):
        """Lanes the write-back stage handles per cycle: ``lanes / writeback_cycles``; the
        lanes of one bias, threshold or logits row."""
        return self.lanes // self.writeback_cycles

    @property
    def writeback_bias(self):
        """The write-back stage adds each lane's bias (one adder per lane it handles, bias rows
        of :attr:`chunk_lanes`), rather than the PE array loading it into its accumulators
        (a multiplexer input per accumulator bit): true with a lane-serial write-back."""
        return self.writeback_cycles > 1

    def sums_layout(self):
        """The ``P`` lanes' accumulator values (the PE array's sums, the write-back's rows)."""
        return data.ArrayLayout(signed(self.acc_bits), self.lanes)

    def lif_layout(self):
        """A row the controller offers the write-back stage (``PIXEL``, ``HEAD_SUM``,
        ``STREAM_LIF``): its ``P`` lane values; with a lane-serial write-back, which folds the
        head's token sum and the pixel layer's planes itself, a struct of the values (``x``),
        ``first`` (the head's first token) and ``again`` (the folded value to the LIF)."""
        if self.writeback_cycles == 1:
            return self.sums_layout()
        return data.StructLayout({"x": self.sums_layout(), "first": 1, "again": 1})

    @property
    def logit_elem_bits(self):
        """Bits of a logits memory element: ``logit_bits``, or with a lane-serial write-back,
        which also keeps the pixel layer's Horner sums and the head's token sums there, at least
        ``acc_bits``."""
        if self.writeback_cycles == 1:
            return self.logit_bits
        return max(self.logit_bits, self.acc_bits)

    def lane_layout(self, memory):
        """The :class:`~amaranth.lib.data.ArrayLayout` of one row of ``memory``.

        The accelerator builds its memories (and checks its units' memories) with these
        layouts, and the compiler packs every row through them (:func:`pack_memory_row`): lane
        ``l`` of a ``P``-lane row of ``b``-bit values is bits ``[l·b, (l+1)·b)``.
        """
        return _lane_layout(self, memory)

    def lane_format(self, memory):
        """``(lanes, bits per lane, signed)`` of one row of ``memory`` (lowest lane first)."""
        layout = self.lane_layout(memory)
        shape = layout.elem_shape
        return layout.length, shape.width, shape.signed

    def row_bits(self, memory):
        """Width in bits of one row of ``memory``."""
        return self.lane_layout(memory).size

    def depth(self, memory):
        """Rows of ``memory``."""
        return getattr(self, f"{memory}_depth")

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        """The configuration saved by :meth:`to_json`; a malformed one is a :class:`UserError`."""
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise UserError(f"the hardware config is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise UserError("the hardware config must be a JSON object of AccelConfig fields")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"the hardware config has unknown fields {', '.join(unknown)}")
        try:
            return cls(**values)
        except TypeError as exc:
            raise UserError(f"the hardware config is invalid: {exc}") from None


@functools.lru_cache(maxsize=256)
def _lane_layout(config, memory):
    p = config.lanes
    elem, lanes = {
        "program": (unsigned(PROGRAM_WORD_BITS), 1), "weights": (signed(config.weight_bits), p),
        "biases": (signed(config.acc_bits), config.chunk_lanes),
        "thresholds": (signed(config.theta_bits), config.chunk_lanes),
        "shifts": (unsigned(config.shift_bits), p), "pixels": (unsigned(8), 1),
        "spikes": (unsigned(1), config.width), "stream": (signed(config.stream_bits), p),
        "logits": (signed(config.logit_elem_bits), config.chunk_lanes),
    }[memory]
    return data.ArrayLayout(elem, lanes)


#: The largest lane count and word width the generators are run at (``generate`` takes about
#: 20 s at either bound; far larger values build Python expressions too deep to elaborate).
MAX_LANES = 128
MAX_WIDTH = 512


def check_lanes_width(lanes, width):
    """Refuse a lane count / word width the hardware cannot have (:class:`UserError`)."""
    for name, value in (("lanes", lanes), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, not {value!r}")
        if value < 1 or value & (value - 1):
            raise UserError(f"{name} must be a power of two, not {value!r}")
    if width < 8:
        raise UserError(f"width must be at least 8, not {width!r}")
    if lanes > MAX_LANES or width > MAX_WIDTH:
        raise UserError(f"lanes and width are at most {MAX_LANES} and {MAX_WIDTH}, "
                        f"not {lanes!r} and {width!r}")
    if lanes > width:
        raise UserError(f"lanes ({lanes!r}) must not exceed the word width ({width!r})")


#: The most cycles a lane-serial write-back spends on a row: the pixel layer's bit-planes are
#: folded there, one row each, while the next plane gathers (4 + 9 · channels >= 13 cycles),
#: so no plane waits for the one before (``sdtforge.sim.cycles`` counts on it).
MAX_WRITEBACK_CYCLES = 8


def writeback_cycles(lanes, writeback_lanes):
    """``AccelConfig.writeback_cycles`` for a write-back stage of ``writeback_lanes`` lanes
    (``None``: all ``lanes``); refuse a count that is not a power of two dividing ``lanes``
    or one that leaves more than :data:`MAX_WRITEBACK_CYCLES` per row (:class:`UserError`)."""
    if writeback_lanes is None:
        return 1
    if writeback_lanes < 1 or lanes % writeback_lanes or writeback_lanes & (writeback_lanes - 1):
        raise UserError(f"the write-back's lanes must be a power of two dividing the lanes "
                        f"({lanes}), not {writeback_lanes!r}")
    if lanes // writeback_lanes > MAX_WRITEBACK_CYCLES:
        raise UserError(f"{writeback_lanes} write-back lane(s) would take "
                        f"{lanes // writeback_lanes} cycles per row of {lanes} lanes; at most "
                        f"{MAX_WRITEBACK_CYCLES} are supported (use at least "
                        f"{lanes // MAX_WRITEBACK_CYCLES} write-back lanes)")
    return lanes // writeback_lanes
