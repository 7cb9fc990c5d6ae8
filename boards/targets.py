"""Supported boards, their capacities, and the pre-synthesis fit check.

A board build starts from the model's memory plan (:func:`sdtforge.hdl.compile.compile_model`)
and maps every memory onto the device's block RAM the way Yosys does — the cheapest
aspect ratio of the block, tiny memories in logic — so a model or lane count that cannot fit is
refused in a second, with the numbers, instead of after minutes of synthesis and placement.
Depths are then rounded up to whole blocks: the bitstream accepts every model that fits the
blocks it already pays for.
"""

import dataclasses
import importlib
from dataclasses import dataclass

from sdtforge.errors import UserError
from sdtforge.hdl.accel_config import MAX_WRITEBACK_CYCLES
from sdtforge.hdl.compile import MEMORIES, compile_model, derive_config
from sdtforge.hdl.sdsa_sequencer import sdsa_membranes
from sdtforge.hdl.weights import DUAL_PORT_ASPECTS, dual_port_column
from sdtforge.hdl.writeback import lif_membranes

from .spram import SPRAM_BITS, SPRAM_ROWS, spram_banks, spram_blocks

__all__ = ["Board", "BOARDS", "get_board", "BoardPlan", "plan_board", "block_ram_usage",
           "memory_blocks"]

# Block RAM aspect ratios (rows, bits): iCE40 SB_RAM40_4K and ECP5 DP16KD (true dual port
# modes; the accelerator's memories have one read and one write port).
_EBR_MODES = ((256, 16), (512, 8), (1024, 4), (2048, 2))
_DP16KD_MODES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
# Which memories Yosys leaves in logic. ECP5: at most 16 rows (LUT RAM; measured: 64-bit
# memories of up to 32 rows stay in LUT RAM, so 16 is on the safe side). iCE40: flip-flops when
# the memory has fewer than 80 bits per block RAM it would take, measured with synth_ice40 on
# one-read one-write memories (5 x 26, 5 x 40, 4 x 64 bits: flip-flops; 5 x 16, 5 x 48, 5 x 64,
# 8 x 26 bits: block RAM).
_LOGIC_ROWS = {"ecp5": 16}
_ICE40_FF_BITS_PER_BLOCK = 80
#: The engine's memories (``MEMORIES``, all marked: :mod:`sdtforge.hdl.ram`) of at most this
#: many rows go to LUT RAM (``TRELLIS_DPR16X4``: 16 rows x 4 bits) on the ECP5:
#: the build sets Yosys' ``ram_style`` on them (:data:`DISTRIBUTED_COMMANDS`). The bias,
#: threshold and shift memories hold a row of ``P`` values per output group, so they are wide
#: and shallow: in block RAM they took a DP16KD per 36 bits for a few dozen rows (digits-small
#: at P = 64: 78 of 205 blocks), and a block RAM's 5.8 ns clock-to-out began the ULX3S's
#: critical path (the thresholds into the LIF's compare, ``docs/boards.md`` §4). Up to 32 rows
#: (two cells deep): at 64 the 64-lane digits-small took 81 % of the ECP5-85F's slices.
DISTRIBUTED_ROWS = {"ecp5": 32}
#: The memories that Yosys' selections below reach: the marked ones.
MARKED = tuple(name for name, _ in MEMORIES)
#: Yosys commands (after :data:`sdtforge.hdl.ram.YOSYS_COMMANDS`, which collect the marked
#: memories into ``$mem_v2`` cells) that put them in LUT RAM, per family.
DISTRIBUTED_COMMANDS = {
    family: (f'setattr -set ram_style "distributed" t:$mem_v2 a:no_rw_check %i '
             f'r:SIZE<={rows} %i',)
    for family, rows in DISTRIBUTED_ROWS.items()}
#: Yosys commands that put the marked memories in block RAM, per family. iCE40: Yosys maps a
#: memory of fewer than about 80 bits per block it would take to flip-flops
#: (:data:`_ICE40_FF_BITS_PER_BLOCK`), where each bit takes a logic cell of its own (its D input
#: is the shared write data) and the read adds a multiplexer: the logits of digits-tiny at
#: P = 2 (5 rows x 26 bits) took 188 flip-flops and 105 LUT4s. The fit check counts the blocks.
BLOCK_COMMANDS = {"ice40": ('setattr -set ram_style "block" t:$mem_v2 a:no_rw_check %i',)}
#: LUT4s counted per ``TRELLIS_DPR16X4`` in the logic estimate (its RAM-mode slice and a share
#: of the write-port slice; the read multiplexer over the 16-row blocks comes on top).
_LUT4_PER_DPR16X4 = 3
# Calibrated logic model of the accelerator + host link (a fixed controller, SDSA, loader and
# link cost plus a per-lane datapath), from measured builds of digits-tiny / digits-small
# (docs/boards.md §4). iCE40 logic cells packed by nextpnr (digits-tiny, seed 1): with the
# SDSA unit in its OR mode (``AccelConfig.sdsa_or``, every shipped model), no POOL_OR stage
# (``AccelConfig.pool_or``: no shipped model has a spike max-pool), the register queues and
# the lane-serial write-back's biases, one-chunk parameter and logits rows, shifting sums
# register and its own fold of the pixel planes and head tokens (docs/architecture.md §5),
# 4 628 at P = 4 and 5 257 at P = 8 (`bench/board_fit.py`; the line through both); before
# the fold 4 114 at P = 1, 4 346 at P = 2, 4 938 at P = 4 and 5 839 at P = 8; before those
# three cuts 4 463 at P = 2 and 5 192 at P = 4; with the POOL_OR stage and before the
# queues, 4 783 and 5 577 (4 636 and 5 461 without the stage); with the serial mask neuron
# too, 4 868 at P = 1, 5 233 at P = 2, 6 063 at P = 4.
# ECP5 LUT4s mapped by Yosys (digits-small, the mask neuron and the POOL_OR stage): 4 601 at
# P = 2, 7 598 at P = 8. ``_SDSA_NEURON`` is what the mask neuron adds to the OR unit and
# ``_POOL_STAGE`` what the POOL_OR stage adds: on the iCE40 the measured differences at P = 2,
# on the ECP5 the units' LUT4s at digits-small's D = 64, W = 32
# (``sdtforge.hdl.synth.ecp5_stats``).
_LOGIC_MODEL = {"ice40": (4_000, 157), "ecp5": (2_920, 500)}
_SDSA_NEURON = {"ice40": 459, "ecp5": 572}
_POOL_STAGE = {"ice40": 147, "ecp5": 109}
# A design over the estimate by more than the margin is refused; nextpnr decides the rest.
# The iCE40 estimate is within 1.2 % of the builds above, and the UP5K is the board where a
# refusal saves a failed placement.
_LOGIC_MARGIN = {"ice40": 1.03, "ecp5": 1.1}


@dataclass(frozen=True)
class Board:
    """A supported board.

    Attributes
    ----------
    name : str
        CLI name (``--board``).
    family : str
        ``"ice40"`` or ``"ecp5"``.
    device : str
        FPGA part.
    luts, brams, sprams, dsps : int
        Capacities: logic cells / LUT4s, block RAMs, SPRAM blocks, DSP blocks.
    bram_name : str
        Block RAM primitive.
    default_lanes, default_width : int
        Default ``P`` and ``W``.
    f_sync : float
        Default system clock request in Hz (the PLL gives the closest one not above).
    spram_weights : bool
        Weights in SPRAM rather than block RAM.
    sdram : bool
        The board carries SDR SDRAM that can hold the weights (``--sdram``,
        :mod:`sdtforge.boards.sdram_engine`).
    writeback_lanes : int or None
        Lanes the write-back stage handles per cycle (``AccelConfig.writeback_cycles`` =
        ``P / writeback_lanes``, at most ``MAX_WRITEBACK_CYCLES``); ``None``: all ``P``. One on
        the iCE40, where logic is the scarce resource: a lane then costs a PE accumulator, not
        a LIF neuron and a residual adder as well (docs/architecture.md §5).
    events : int
        Events per PE command (``AccelConfig.events``) where the weight memory can read two
        rows per cycle: 2 on the ECP5, whose ``DP16KD`` reads two weight rows on its two
        ports, and on the iCE40 where two copies of the rows fit its SPRAM (8 lanes of 4-bit
        weights), and with ``--sdram``, whose prefetch window reads two rows on its block
        RAMs' two ports; 1 where the copies do not fit.
    stream_latency : int
        The stream memory's read latency (``AccelConfig.stream_latency``): 3 on the ECP5,
        whose stream memory is tens of block RAMs spread over the die, so its address's
        adder and its read data's route each get a clock cycle of their own
        (``docs/architecture.md`` §5); 1 on the iCE40, whose lane-serial write-back reads it
        in the cycle it asks.
    weight_latency : int
        ``AccelConfig.weight_latency``: 2 on the ECP5, whose weight rows come out of block RAMs
        (or the SDRAM prefetch's window) across the lanes into a register before the
        accumulators' adders; 1 on the iCE40.
    platform_class, top_class : str
        ``"module:Class"`` of the amaranth-boards platform and of the board top (imported
        when first used, so the fit check needs neither).
    """

    name: str
    family: str
    device: str
    luts: int
    brams: int
    sprams: int
    dsps: int
    bram_name: str
    default_lanes: int
    default_width: int
    f_sync: float
    spram_weights: bool
    platform_class: str
    top_class: str
    writeback_lanes: int | None = None
    sdram: bool = False
    events: int = 1
    stream_latency: int = 1
    weight_latency: int = 1

    def platform(self):
        """A fresh amaranth-boards platform instance (toolchain: Yosys + nextpnr)."""
        return _import(self.platform_class)()

    def top(self, config, *, image_bytes, num_classes, f_sync=None, baud=115200,
            accelerator=None):
        """The board top for an accelerator configuration (``accelerator``: a stand-in)."""
        f_sync = self.f_sync if f_sync is None else f_sync
        return _import(self.top_class)(config, image_bytes=image_bytes, num_classes=num_classes,
                                       f_sync=f_sync, baud=baud, accelerator=accelerator)


def _import(ref):
    """The object named by ``"module:attribute"``."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


BOARDS = {b.name: b for b in [
    # P = 8: digits-tiny takes 5 193 of the UP5K's 5 280 LC with eight lanes (its 14 068 weight
    # rows of 64 bits take four SPRAMs side by side); 24 MHz (an exact PLL setting from 12 MHz,
    # 12 · 64 / 32), met on the bench's three placer seeds since the stream address's map was
    # registered (25.46–25.84 MHz; 22.5 MHz, 12 · 60 / 32, before): docs/boards.md §4b.
    Board("icebreaker", "ice40", "iCE40UP5K-SG48", luts=5280, brams=30, sprams=4, dsps=8,
          bram_name="SB_RAM40_4K", default_lanes=8, default_width=16, f_sync=24e6,
          spram_weights=True, platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
          top_class="sdtforge.boards.icebreaker:ICEBreakerTop", writeback_lanes=1, events=2),
    Board("ulx3s-85f", "ecp5", "LFE5U-85F-6BG381C", luts=83640, brams=208, sprams=0, dsps=156,
          # P = 32 with 32-bit spike words and two events per command: digits-small in 49.8 k
          # cycles per image (8 lanes, one event: 298 k). 50 MHz (25 MHz x 2): the measured
          # Fmax at 32 lanes is 63.7-66.7 MHz over the last bench's seeds, and cifar10-2-256
          # at 16 lanes with --sdram places at 56.7-60.5 MHz (docs/boards.md §4b, §5f).
          bram_name="DP16KD", default_lanes=32, default_width=32, f_sync=50e6,
          spram_weights=False, platform_class="amaranth_boards.ulx3s:ULX3S_85F_Platform",
          top_class="sdtforge.boards.ulx3s:ULX3STop", sdram=True, events=2,
          stream_latency=3, weight_latency=2),
]}


def get_board(name):
    """The :class:`Board` called ``name``; an unknown name is a :class:`UserError`."""
    try:
        return BOARDS[name]
    except KeyError:
        raise UserError(f"unknown board {name!r}; choose one of "
                        f"{', '.join(sorted(BOARDS))}") from None


def _blocks(rows, bits, family, *, marked=False):
    """``(blocks, rows held)`` of one memory on the family's block RAM (0 blocks: logic);
    ``marked``: one of the engine's memories (:data:`DISTRIBUTED_ROWS` on the ECP5; never
    flip-flops on the iCE40, :data:`BLOCK_COMMANDS`)."""
    if rows <= (DISTRIBUTED_ROWS if marked else _LOGIC_ROWS).get(family, 0):
        return 0, rows
    modes = _EBR_MODES if family == "ice40" else _DP16KD_MODES
    best = None
    for depth, width in modes:
        n = -(-bits // width) * -(-rows // depth)
        held = -(-rows // depth) * depth
        if best is None or n < best[0] or (n == best[0] and held > best[1]):
            best = (n, held)
    if family == "ice40" and not marked and rows * bits < _ICE40_FF_BITS_PER_BLOCK * best[0]:
        return 0, rows
    return best


#: Host-link frame buffer bytes (also the host's largest ``LOAD`` chunk).
LINK_PAYLOAD = 256


def memory_blocks(rows, bits, family):
    """Block RAMs of one memory of ``rows`` × ``bits`` on ``family`` (``"ice40"``: EBR,
    ``"ecp5"``: DP16KD), in the aspect that needs the fewest; 0 where it stays in logic."""
    return _blocks(rows, bits, family)[0]


def _window_blocks(rows, bits, config, board):
    """Block RAMs of the SDRAM prefetch's window: with two events per command its two reads
    take both ports of true dual-port blocks (at most 18 bits a port on the ECP5, not the
    36-bit pseudo dual-port aspect), in whichever aspect needs the fewest."""
    if config.events == 2 and board.family == "ecp5":
        return min(-(-rows // depth) * -(-bits // width) for depth, width in DUAL_PORT_ASPECTS)
    return _blocks(rows, bits, board.family)[0]


def block_ram_usage(config, board, window=None):
    """``{memory: (rows, row bits, blocks)}`` of an accelerator + host link on ``board``; with
    ``window`` (rows) the weights are in SDRAM behind a prefetch window of that many rows."""
    usage = {}
    for name, _ in MEMORIES:
        rows, bits = config.depth(name), config.row_bits(name)
        if name == "weights" and (board.spram_weights or window is not None):
            usage[name] = (rows, bits, 0)
            if window is not None:
                usage["weight window"] = (window, bits, _window_blocks(window, bits, config,
                                                                       board))
            continue
        if name == "weights" and config.events == 2:
            # Columns one 16-Kbit block deep, each read on both ports (hdl.weights).
            col, deep = dual_port_column(rows)
            usage[name] = (rows, bits, -(-bits // col) * deep)
            continue
        usage[name] = (rows, bits, _blocks(rows, bits, board.family,
                                           marked=name in MARKED)[0])
    # The units' own memories: the SDSA unit's mask membranes (one row per channel; the OR
    # unit has none) and, with a lane-serial write-back, the LIF's membranes (a row per
    # chunk; the iCE40 builds eight lanes' as 8 rows x 21 bits in two blocks).
    for name, membranes in (("sdsa membranes", sdsa_membranes(config)),
                            ("lif membranes", lif_membranes(config))):
        if membranes is not None:
            rows, bits = membranes
            usage[name] = (rows, bits, _blocks(rows, bits, board.family)[0])
    usage["link buffer"] = (LINK_PAYLOAD, 8, _blocks(LINK_PAYLOAD, 8, board.family)[0])
    return usage


def distributed_luts(config, board):
    """LUT4s of the engine's memories in LUT RAM (:data:`DISTRIBUTED_ROWS`) on ``board``: their
    ``TRELLIS_DPR16X4`` cells and the read multiplexers over the 16-row blocks."""
    luts = 0
    for name in MARKED:
        rows, bits = config.depth(name), config.row_bits(name)
        if _LOGIC_ROWS.get(board.family, 0) < rows <= DISTRIBUTED_ROWS.get(board.family, 0):
            if name == "weights" and (board.spram_weights or config.external_weights):
                continue
            cells = -(-rows // 16) * -(-bits // 4)
            luts += _LUT4_PER_DPR16X4 * cells + (-(-rows // 16) - 1) * bits
    return luts


@dataclass
class BoardPlan:
    """The accelerator build for one model on one board (after the fit check).

    Attributes
    ----------
    board : Board
    compiled : Compiled
        The model compiled for ``config`` (the load image comes from it).
    config : AccelConfig
        Depths rounded up to whole blocks; ``external_weights`` on SPRAM boards.
    usage : dict
        ``{memory: (rows, row bits, blocks)}``.
    brams, sprams, luts_estimate : int
    events_note : str
        Why the engine takes one event per command on a board that can take two (empty
        where it takes what the board can).
    """

    board: Board
    compiled: object
    config: object
    usage: dict
    brams: int
    sprams: int
    luts_estimate: int
    events_note: str = ""

    @property
    def sdram_tiles(self):
        """With the weights in SDRAM: the largest weight tile in rows (the configuration's
        ``weight_tile_rows``, the prefetch's ``tile_rows``; its window is
        ``usage["weight window"]``); else ``None``."""
        return self.config.weight_tile_rows or None

    def table(self):
        """Memory-to-block table as text."""
        kind = self.board.bram_name
        out = [f"{'memory':<15}{'rows':>7}{'row bits':>10}{kind:>13}"]
        for name, (rows, bits, blocks) in self.usage.items():
            where = blocks
            if blocks == 0 and name == "weights":
                where = "SDRAM" if self.sdram_tiles else "SPRAM" if self.sprams else blocks
            out.append(f"{name:<15}{rows:>7}{bits:>10}{where!s:>13}")
        out.append(f"{'total':<15}{'':>7}{'':>10}{self.brams:>13}  "
                   f"(of {self.board.brams}; SPRAM {self.sprams} of {self.board.sprams})")
        return "\n".join(out) + "\n"


def _block_ram_advice(model, board, lanes, width, worst, sdram=False):
    """What helps a model over the board's block RAM: the weights in the board's SDRAM, other
    lane counts (the memories' row widths follow the lanes, and block RAM comes in fixed aspect
    ratios), both, else what does not depend on the lanes."""
    def fits(other, with_sdram):
        try:
            plan_board(model, board, lanes=other, width=width, sdram=with_sdram, _advise=False,
                       _compile=False)
        except UserError:
            return False
        return True

    if board.sdram and not sdram and fits(lanes, True):
        return "it fits with the weights in the board's SDRAM (--sdram)"
    others = [1 << k for k in range(width.bit_length()) if 1 << k != lanes]
    for with_sdram in dict.fromkeys((sdram, True) if board.sdram else (sdram,)):
        fitting = [other for other in others if fits(other, with_sdram)]
        if fitting:
            counts = ", ".join(map(str, fitting[:-1])) + " or " if fitting[:-1] else ""
            return (f"it fits at --lanes {counts}{fitting[-1]}"
                    + (" with --sdram" if with_sdram else ""))
    name, (_, _, blocks) = worst
    return (f"no lane count at W = {width} fits{' even with --sdram' if board.sdram else ''} "
            f"(the {name} alone take {blocks} blocks); use a smaller model or a board with more "
            f"block RAM")


def plan_board(model, board, *, lanes=None, width=None, sdram=False, _advise=True,
               _compile=True):
    """Compile ``model`` for ``board`` and check that it fits, before any synthesis.

    With ``sdram`` the weights go to the board's SDRAM (``external_weights``) and only the tile
    prefetch's window takes block RAM: the double buffer
    (:func:`~sdtforge.hdl.weight_tiles.prefetch_window`), or where that is over the board's
    block RAM the single tile (:func:`~sdtforge.hdl.weight_tiles.single_window`, the
    configuration's ``weight_window``; the engine then waits for part of each large tile).

    Raises
    ------
    UserError
        A bad lane count or word width, a model the compiler refuses, or the lane count, a
        memory, the block RAM total, the SPRAM or the LUT estimate is over the board's
        capacity; the message names the resource, the need and the capacity.
    """
    lanes = board.default_lanes if lanes is None else lanes
    width = board.default_width if width is None else width
    # The configuration alone sizes the memories (milliseconds); the model is compiled into
    # its images only once it fits (seconds to a minute for a paper-scale model).
    if sdram and not board.sdram:
        raise UserError(f"the {board.name} has no SDRAM for the weights; drop --sdram")
    # (at least lanes / MAX_WRITEBACK_CYCLES: the write-back's longest row)
    wb_lanes = (None if board.writeback_lanes is None
                else min(max(board.writeback_lanes, lanes // MAX_WRITEBACK_CYCLES), lanes))
    events = board.events
    cfg = derive_config(model, lanes=lanes, width=width, writeback_lanes=wb_lanes, events=events,
                        stream_latency=board.stream_latency if wb_lanes in (None, lanes) else 1,
                        weight_latency=board.weight_latency)
    sprams = 0
    changes = {}
    tiles = window = None
    events_note = ""
    if sdram:
        from sdtforge.hdl.compile import plan_memories
        from sdtforge.hdl.weight_tiles import max_tile_rows, prefetch_window, single_window
        try:
            tiles = max_tile_rows(plan_memories(model, cfg, rows=False))
        except ValueError as exc:
            raise UserError(f"the weights cannot be streamed from SDRAM: {exc}") from None
        window = prefetch_window(tiles)
        changes.update(external_weights=True, weight_tile_rows=tiles)
    if board.spram_weights:
        row_bits = cfg.row_bits("weights")
        sprams = spram_blocks(row_bits)
        if sprams > board.sprams:
            raise UserError(
                f"{lanes} lanes of {cfg.weight_bits}-bit weights need {row_bits}-bit weight "
                f"rows, {sprams} SPRAM blocks side by side, but the {board.name} has "
                f"{board.sprams} ({board.sprams * SPRAM_BITS} bits per cycle); use "
                f"--lanes {board.sprams * SPRAM_BITS // cfg.weight_bits} or fewer")
        banks = spram_banks(cfg.weights_depth)
        copies = 1
        if events == 2:
            # Two reads per cycle need a copy of the rows per read (SPRAM has one port):
            # where two copies do not fit (8 lanes of 8-bit weights take all four blocks)
            # the engine takes one event per command.
            copies = 2 if 2 * sprams * banks <= board.sprams else 1
            changes["events"] = copies
            if copies == 1:
                fits = [b for b in range(cfg.weight_bits - 1, 3, -1)
                        if 2 * spram_blocks(lanes * b) * banks <= board.sprams]
                events_note = (
                    f"one event per PE command: two copies of the {row_bits}-bit weight rows "
                    f"would need {2 * sprams * banks} SPRAM blocks"
                    + (f"; with {fits[0]}-bit weights (sdtforge quantize --weight-bits "
                       f"{fits[0]}, with --qat-epochs to keep the accuracy) two fit and the "
                       f"engine takes two" if fits else ""))
        if sprams * banks > board.sprams:
            # The weights' bits are the same at any lane count: fewer lanes do not help.
            raise UserError(
                f"the model needs {cfg.weights_depth} weight rows of {row_bits} bits, "
                f"{sprams * banks} SPRAM blocks, but the {board.name} has {board.sprams} "
                f"({board.sprams // sprams * SPRAM_ROWS} rows of {row_bits} bits); use a "
                f"smaller model or a board with more memory")
        sprams *= banks * copies
        changes["weights_depth"] = SPRAM_ROWS * banks
        changes["external_weights"] = True
    for name, _ in MEMORIES:
        if name == "weights" and (board.spram_weights or sdram):
            continue
        blocks, held = _blocks(cfg.depth(name), cfg.row_bits(name), board.family,
                               marked=name in MARKED)
        if blocks:
            changes[f"{name}_depth"] = held
    cfg = dataclasses.replace(cfg, **changes)
    usage = block_ram_usage(cfg, board, window)
    brams = sum(b for _, _, b in usage.values())
    if sdram and brams > board.brams and single_window(tiles) < window:
        # Short of block RAM: a window of one tile (and what is left of its power of two).
        window = single_window(tiles)
        cfg = dataclasses.replace(cfg, weight_window=window)
        usage = block_ram_usage(cfg, board, window)
        brams = sum(b for _, _, b in usage.values())
    fixed, per_lane = _LOGIC_MODEL[board.family]
    if not cfg.sdsa_or:
        fixed += _SDSA_NEURON[board.family]
    if cfg.pool_or:
        fixed += _POOL_STAGE[board.family]
    luts = fixed + per_lane * cfg.lanes + distributed_luts(cfg, board)
    margin = _LOGIC_MARGIN[board.family]
    plan = BoardPlan(board=board, compiled=None, config=cfg, usage=usage, brams=brams,
                     sprams=sprams, luts_estimate=luts, events_note=events_note)
    if brams > board.brams:
        worst = max(usage.items(), key=lambda kv: kv[1][2])
        raise UserError(
            f"the model at {lanes} lanes needs {brams} {board.bram_name} block RAMs but the "
            f"{board.name} has {board.brams} (largest: {worst[0]}, {worst[1][0]} rows x "
            f"{worst[1][1]} bits in {worst[1][2]} blocks)"
            + (f"; {_block_ram_advice(model, board, lanes, width, worst, sdram)}" if _advise
               else ""))
    if luts > margin * board.luts:
        unit = "logic cells" if board.family == "ice40" else "LUT4s"
        one_lane = fixed + per_lane
        advice = ("use fewer lanes or a larger board" if one_lane <= margin * board.luts
                  else f"use a larger board (even one lane needs about {one_lane} {unit}; "
                  f"docs/boards.md §9)")
        raise UserError(
            f"the accelerator at {lanes} lanes needs about {luts} {unit} but the {board.name} "
            f"has {board.luts}; {advice}")
    if _compile:
        plan.compiled = compile_model(model, cfg)
    return plan
