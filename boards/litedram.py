"""Generate the ULX3S SDR SDRAM controller (LiteDRAM) as one deterministic Verilog module.

The module (``sdram_ulx3s`` by default) holds:

- LiteDRAM's generic SDR PHY: ``GENSDRPHY`` at rate 1:1 (the SDRAM runs on ``clk``, burst
  length 1, a 16-bit controller word) or ``HalfRateGENSDRPHY`` at 1:2 (the SDRAM runs on
  ``clk2x``, burst length 2, a 32-bit word). Every SDRAM output goes through an ECP5 I/O
  register (``OFS1P3BX``), DQ comes in through ``IFS1P3BX`` and leaves through ``BB``
  tristates, so ``sdram_dq`` is a real ``inout`` port;
- the LiteDRAM controller (4 bank machines, refresher, crossbar; row-bank-column mapping,
  auto-precharge) with one native user port, up-converted when ``data_width`` is wider than
  the controller word;
- :class:`SDRInit`, a hardware power-up sequence on the DFI injector's external DFI (no CPU,
  no CSR bus), which raises ``init_done`` when it hands the bus to the controller;
- the SDRAM clock output, an ``ODDRX1F`` clocked by ``clk_sdram`` (a phase-lagged copy of the
  SDRAM-frequency clock).

Run ``python -m sdtforge.boards.litedram --out DIR``; it writes ``DIR/sdram_ulx3s.v`` and
``DIR/sdram_ulx3s.json`` (the configuration, port widths, timings in cycles, the command and
the versions). The same options give byte-identical files: LiteX's date and git hash are
removed, and so are the duplicate ``assign {..}`` lines Migen writes once per target signal.
The default configuration is committed beside this file (``boards/verilog/``) and used by
:class:`sdtforge.boards.sdram.LiteDRAMNative`, so a build needs neither Migen nor LiteX;
``tests/boards/test_litedram.py`` regenerates it and compares bytes. ``docs/boards.md`` §5d.

``ControllerSettings(cmd_buffer_buffered=True)`` is deliberately not offered: with it the
bank lock comes a cycle late, back-to-back commands to different banks are reordered, and
write data (pulled in ``wdata.ready`` order) lands at the wrong address.
"""

import argparse
import json
import math
import re
import sys
from importlib.metadata import version
from pathlib import Path

from litedram import modules as litedram_modules
from litedram.common import get_default_cl
from litedram.core import LiteDRAMCore
from litedram.core.controller import ControllerSettings
from litedram.phy import GENSDRPHY, HalfRateGENSDRPHY
from litex.build.generic_platform import Pins, Subsignal
from litex.build.io import DDROutput, Tristate
from litex.build.lattice import LatticePlatform
from litex.build.lattice.common import LatticeECP5Tristate
from migen import (
    FSM,
    ClockDomain,
    ClockSignal,
    If,
    Module,
    NextState,
    NextValue,
    Replicate,
    Signal,
)
from migen.fhdl.structure import DUID
from migen.genlib.resetsync import AsyncResetSynchronizer

from sdtforge.errors import UserError

__all__ = ["MODULES", "RATES", "NAME", "DEVICE", "SDRInit", "SDRAMCore", "generate", "main"]

#: SDRAM chips offered (``litedram.modules`` classes). MT48LC16M16: 32 MB, 512 columns, safe on
#: both ULX3S parts; AS4C32M16: 64 MB, 1024 columns (LiteDRAM tracks no tRAS or tRRD for it).
MODULES = ("MT48LC16M16", "AS4C32M16")
#: PHY rates: controller clock to SDRAM clock.
RATES = {"1:1": 1, "1:2": 2}
#: Name of the generated module and of its files.
NAME = "sdram_ulx3s"
#: The FPGA the I/O primitives are for (only the family matters to the Verilog).
DEVICE = "LFE5U-85F-6BG381C"
#: Width of the ULX3S SDRAM data bus, bytes.
BUS_BYTES = 2
#: SDRAM clock range in Hz: LiteDRAM picks CAS latency 2 up to 100 MHz and 3 up to 133 MHz.
SDRAM_CLOCK_RANGE = (10e6, 133e6)
#: Power-up wait before the first command, µs (the chips ask for 100 to 200).
INIT_WAIT_US = 200.0
#: AUTO REFRESH commands of the power-up sequence.
INIT_REFRESHES = 8

# SDR commands as (cs_n, ras_n, cas_n, we_n).
_DESELECT = (1, 1, 1, 1)
_PRECHARGE_ALL = (0, 0, 1, 0)
_REFRESH = (0, 0, 0, 1)
_MODE_REGISTER = (0, 0, 0, 0)


def _encode(command):
    cs_n, ras_n, cas_n, we_n = command
    return (cs_n << 3) | (ras_n << 2) | (cas_n << 1) | we_n


def _wait(fsm, state, count, cycles, next_state):
    """Add ``state``: stay ``cycles`` cycles, then go to ``next_state`` with ``count`` cleared."""
    fsm.act(state,
            If(count == cycles - 1,
               NextValue(count, 0),
               NextState(next_state),
               ).Else(NextValue(count, count + 1)))


class SDRInit(Module):
    """SDR power-up sequence on a DFI interface, then hand the bus over.

    CKE high and DESELECT for ``init_wait_us``; PRECHARGE ALL, wait tRP; ``n_refresh`` times
    AUTO REFRESH, wait tRFC; LOAD MODE REGISTER (burst length = DFI phases, sequential, CAS
    latency ``cl``), wait 4 cycles (tMRD is 2); then ``done`` rises and ``sel`` falls. These
    are the commands of LiteDRAM's BIOS ``init_sequence()`` for SDR, in hardware.

    Parameters
    ----------
    dfi : litedram.phy.dfi.Interface
        The DFI injector's external interface (``LiteDRAMCore.dfii.ext_dfi``).
    clk_freq : float
        Clock of the DFI interface, Hz.
    timing : litedram.common.TimingSettings
        tRP and tRFC in cycles.
    cl : int
        CAS latency written to the mode register.
    init_wait_us : float
        Power-up wait, µs.
    n_refresh : int
        AUTO REFRESH commands.

    Attributes
    ----------
    done : Signal
        1 once the sequence has finished.
    sel : Signal
        1 while the sequence owns the DFI bus (``ext_dfi_sel``).
    """

    def __init__(self, dfi, clk_freq, timing, cl, init_wait_us=INIT_WAIT_US,
                 n_refresh=INIT_REFRESHES):
        self.done = Signal()
        self.sel = Signal(reset=1)
        phases = len(dfi.phases)
        # Commands go out on phase 0; the others (rate 1:2) stay DESELECT with CKE high.
        for q in dfi.phases[1:]:
            self._drive(q, _encode(_DESELECT), 0)
        p = dfi.phases[0]
        cmd = Signal(4)
        addr = Signal(len(p.address))
        self._drive(p, cmd, addr)

        t_wait = max(1, math.ceil(init_wait_us * 1e-6 * clk_freq))
        t_rp = max(2, timing.tRP + 1)
        t_rfc = max(2, timing.tRFC + 1)
        t_mrd = 4
        burst = {1: 0b000, 2: 0b001}[phases]
        mode = (cl << 4) | burst
        count = Signal(max=max(t_wait, t_rp, t_rfc, t_mrd) + 1)
        refreshes = Signal(max=n_refresh + 1)

        self.comb += cmd.eq(_encode(_DESELECT))
        self.submodules.fsm = fsm = FSM(reset_state="WAIT-POWERUP")
        _wait(fsm, "WAIT-POWERUP", count, t_wait, "PRECHARGE-ALL")
        fsm.act("PRECHARGE-ALL",
                cmd.eq(_encode(_PRECHARGE_ALL)), addr.eq(1 << 10),
                NextState("WAIT-TRP"))
        _wait(fsm, "WAIT-TRP", count, t_rp, "REFRESH")
        fsm.act("REFRESH",
                cmd.eq(_encode(_REFRESH)),
                NextValue(refreshes, refreshes + 1),
                NextState("WAIT-TRFC"))
        fsm.act("WAIT-TRFC",
                If(count == t_rfc - 1,
                   NextValue(count, 0),
                   If(refreshes == n_refresh, NextState("MODE-REGISTER"))
                   .Else(NextState("REFRESH")),
                   ).Else(NextValue(count, count + 1)))
        fsm.act("MODE-REGISTER",
                cmd.eq(_encode(_MODE_REGISTER)), addr.eq(mode),
                NextState("WAIT-TMRD"))
        _wait(fsm, "WAIT-TMRD", count, t_mrd, "DONE")
        fsm.act("DONE", self.done.eq(1))
        self.comb += self.sel.eq(~self.done)

    def _drive(self, phase, cmd, addr):
        self.comb += [
            phase.cke.eq(Replicate(1, len(phase.cke))),
            phase.odt.eq(0),
            phase.reset_n.eq(1),
            phase.bank.eq(0),
            phase.address.eq(addr),
            phase.we_n.eq(cmd & 1),
            phase.cas_n.eq((cmd >> 1) & 1),
            phase.ras_n.eq((cmd >> 2) & 1),
            phase.cs_n.eq(Replicate((cmd >> 3) & 1, len(phase.cs_n))),
            phase.wrdata_en.eq(0),
            phase.rddata_en.eq(0),
        ]


def _ios(module_cls, addr_width, data_width, phases):
    """LiteX I/O list of the top module's ports."""
    ios = [
        ("clk", 0, Pins(1)),
        ("rst", 0, Pins(1)),
        ("clk_sdram", 0, Pins(1)),
        ("sdram_clk", 0, Pins(1)),
        ("init_done", 0, Pins(1)),
        ("sdram", 0,
            Subsignal("a", Pins(int(math.log2(module_cls.nrows)))),
            Subsignal("ba", Pins(int(math.log2(module_cls.nbanks)))),
            Subsignal("cs_n", Pins(1)),
            Subsignal("cke", Pins(1)),
            Subsignal("ras_n", Pins(1)),
            Subsignal("cas_n", Pins(1)),
            Subsignal("we_n", Pins(1)),
            Subsignal("dm", Pins(BUS_BYTES)),
            Subsignal("dq", Pins(8 * BUS_BYTES))),
        ("user", 0,
            Subsignal("cmd_valid", Pins(1)),
            Subsignal("cmd_ready", Pins(1)),
            Subsignal("cmd_we", Pins(1)),
            Subsignal("cmd_addr", Pins(addr_width)),
            Subsignal("wdata_valid", Pins(1)),
            Subsignal("wdata_ready", Pins(1)),
            Subsignal("wdata_data", Pins(data_width)),
            Subsignal("wdata_we", Pins(data_width // 8)),
            Subsignal("rdata_valid", Pins(1)),
            Subsignal("rdata_ready", Pins(1)),
            Subsignal("rdata_data", Pins(data_width))),
    ]
    if phases == 2:
        ios.append(("clk2x", 0, Pins(1)))
    return ios


class SDRAMCore(Module):
    """The controller, PHY, power-up sequence and user port, on a LiteX platform's pins.

    Parameters
    ----------
    platform : litex.build.lattice.LatticePlatform
        Receives the top module's I/O list.
    module : str
        One of :data:`MODULES`.
    sys_clk_freq : int
        Controller clock, Hz.
    rate : str
        One of :data:`RATES`.
    data_width : int or None
        User port width in bits (a power-of-two multiple of the controller word); ``None``
        for the controller word (16 at 1:1, 32 at 1:2).
    init_wait_us : float
        Power-up wait, µs.

    Attributes
    ----------
    info : dict
        Configuration, port widths and timings in controller cycles (written as JSON).
    """

    def __init__(self, platform, module, sys_clk_freq, rate="1:1", data_width=None,
                 init_wait_us=INIT_WAIT_US):
        phases = RATES[rate]
        module_cls = getattr(litedram_modules, module)
        chip = module_cls(sys_clk_freq, rate)
        geom = chip.geom_settings
        native_aw = geom.bankbits + geom.rowbits + geom.colbits  # in 16-bit words
        native_dw = 8 * BUS_BYTES * phases
        data_width = data_width or native_dw
        ratio = data_width // native_dw
        addr_width = native_aw - int(math.log2(phases * ratio))
        platform.add_extension(_ios(module_cls, addr_width, data_width, phases))

        self._clocks(platform, phases)
        # HalfRateGENSDRPHY would take CAS latency from the controller clock; choose it from
        # the SDRAM clock (2 up to 100 MHz, 3 up to 133 MHz).
        cl = get_default_cl(memtype="SDR", tck=1.0 / (sys_clk_freq * phases))
        phy_cls = HalfRateGENSDRPHY if phases == 2 else GENSDRPHY
        self.submodules.phy = phy = phy_cls(platform.request("sdram"), sys_clk_freq, cl=cl)
        self.submodules.core = core = LiteDRAMCore(
            phy=phy, geom_settings=geom, timing_settings=chip.timing_settings,
            clk_freq=sys_clk_freq, controller_settings=ControllerSettings())
        self.submodules.init = init = SDRInit(core.dfii.ext_dfi, sys_clk_freq,
                                              chip.timing_settings, phy.settings.cl,
                                              init_wait_us)
        self.comb += core.dfii.ext_dfi_sel.eq(init.sel)
        init_done = Signal()
        self.sync += init_done.eq(init.done)
        self.comb += platform.request("init_done").eq(init_done)
        self._user_port(core.crossbar.get_port(data_width=data_width),
                        platform.request("user"), init_done)

        timing = chip.timing_settings
        self.info = {
            "module": module, "rate": rate, "sys_clk_freq": sys_clk_freq,
            "sdram_clk_freq": sys_clk_freq * phases, "cas_latency": phy.settings.cl,
            "burst_length": phases, "read_latency": phy.settings.read_latency,
            "data_width": data_width, "addr_width": addr_width,
            "column_bits": geom.colbits, "bank_bits": geom.bankbits, "row_bits": geom.rowbits,
            "size_bytes": (1 << native_aw) * BUS_BYTES, "init_wait_us": init_wait_us,
            "timing_cycles": {k: getattr(timing, k) for k in
                              ("tRP", "tRCD", "tWR", "tWTR", "tREFI", "tRFC", "tRAS", "tRRD",
                               "tCCD")},
        }

    def _clocks(self, platform, phases):
        self.clock_domains.cd_sys = ClockDomain()
        self.comb += self.cd_sys.clk.eq(platform.request("clk"))
        rst = platform.request("rst")
        self.specials += AsyncResetSynchronizer(self.cd_sys, rst)
        if phases == 2:
            self.clock_domains.cd_sys2x = ClockDomain()
            self.comb += self.cd_sys2x.clk.eq(platform.request("clk2x"))
            self.specials += AsyncResetSynchronizer(self.cd_sys2x, rst)
        # The SDRAM clock: ODDRX1F(D0=1, D1=0) on the phase-lagged SDRAM-frequency clock.
        self.clock_domains.cd_sys_ps = ClockDomain(reset_less=True)
        self.comb += self.cd_sys_ps.clk.eq(platform.request("clk_sdram"))
        self.specials += DDROutput(1, 0, platform.request("sdram_clk"), ClockSignal("sys_ps"))

    def _user_port(self, port, user, init_done):
        # Nothing passes before init_done.
        self.comb += [
            port.cmd.valid.eq(user.cmd_valid & init_done),
            user.cmd_ready.eq(port.cmd.ready & init_done),
            port.cmd.we.eq(user.cmd_we),
            port.cmd.addr.eq(user.cmd_addr),
            port.wdata.valid.eq(user.wdata_valid & init_done),
            user.wdata_ready.eq(port.wdata.ready & init_done),
            port.wdata.data.eq(user.wdata_data),
            port.wdata.we.eq(user.wdata_we),
            user.rdata_valid.eq(port.rdata.valid & init_done),
            port.rdata.ready.eq(user.rdata_ready & init_done),
            user.rdata_data.eq(port.rdata.data),
        ]


def _normalise(text):
    """Remove what changes from run to run, and Migen's duplicate drivers."""
    text = re.sub(r"^// Date       : .*$", "// Date       : (omitted)", text, flags=re.M)
    text = re.sub(r"^// LiteX sha1 : .*$", "// LiteX sha1 : (omitted)", text, flags=re.M)
    text = re.sub(r"Auto-Generated by LiteX on .*\.", "Auto-Generated by LiteX.", text)
    # With regular_comb=False Migen writes `assign {a, b} = x;` once per target signal:
    # identical drivers that Yosys reports as conflicting. Keep one.
    lines = []
    for line in text.split("\n"):
        if not (line.startswith("assign {") and lines and lines[-1] == line):
            lines.append(line)
    return "\n".join(lines)


def _check(module, sys_clk_freq, rate, data_width):
    if module not in MODULES:
        raise UserError(f"unknown SDRAM module {module!r} (known: {', '.join(MODULES)})")
    if rate not in RATES:
        raise UserError(f"unknown rate {rate!r} (known: {', '.join(RATES)})")
    phases = RATES[rate]
    low, high = SDRAM_CLOCK_RANGE
    if not (isinstance(sys_clk_freq, int) and low <= sys_clk_freq * phases <= high):
        raise UserError(f"system clock {sys_clk_freq} Hz gives an SDRAM clock outside "
                        f"{low / 1e6:g}-{high / 1e6:g} MHz at rate {rate}")
    native = 8 * BUS_BYTES * phases
    if data_width is not None and not (isinstance(data_width, int) and data_width >= native
                                       and data_width % native == 0
                                       and (data_width // native).bit_count() == 1):
        raise UserError(f"data width {data_width} is not a power-of-two multiple of the "
                        f"controller word ({native} bits at rate {rate})")


def command_line(module, sys_clk_freq, rate, data_width):
    """The generator's command line for a configuration (written into its files)."""
    line = (f"python -m sdtforge.boards.litedram --module {module} "
            f"--sys-clk-freq {sys_clk_freq} --rate {rate}")
    return line + (f" --data-width {data_width}" if data_width is not None else "")


def generate(out, module="MT48LC16M16", sys_clk_freq=50_000_000, rate="1:1", data_width=None,
             init_wait_us=INIT_WAIT_US):
    """Write ``out/sdram_ulx3s.v`` and ``out/sdram_ulx3s.json`` for one configuration.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    module : str
        One of :data:`MODULES`.
    sys_clk_freq : int
        Controller clock, Hz; the SDRAM clock (``sys_clk_freq`` times the rate) must lie in
        :data:`SDRAM_CLOCK_RANGE`.
    rate : str
        ``"1:1"`` or ``"1:2"``.
    data_width : int or None
        User port width in bits; ``None`` for the controller word.
    init_wait_us : float
        Power-up wait, µs (shorter than the chip asks only to test the chip model's check).

    Returns
    -------
    (Path, dict)
        The Verilog file and the configuration written to the JSON file.

    Raises
    ------
    UserError
        For an unknown module or rate, an SDRAM clock out of range, a bad data width, or an
        output folder that is a file or cannot be written.
    """
    _check(module, sys_clk_freq, rate, data_width)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {out} is an existing file")
    # Migen hashes signals by a global creation counter, and the Verilog's statement order
    # follows set order: restart the counter so that a second call in one process writes the
    # same bytes as the first.
    DUID._DUID__next_uid = 0
    platform = LatticePlatform(DEVICE, io=[], toolchain="trellis")
    top = SDRAMCore(platform, module, sys_clk_freq, rate, data_width, init_wait_us)
    # BB (io_B) instead of TRELLIS_IO (i_B) so that sdram_dq is an inout port.
    verilog = platform.get_verilog(top, name=NAME,
                                   special_overrides={Tristate: LatticeECP5Tristate},
                                   regular_comb=False)
    versions = {name: version(name) for name in ("litex", "litedram", "migen")}
    made_by = command_line(module, sys_clk_freq, rate, data_width)
    if init_wait_us != INIT_WAIT_US:
        made_by += f"  (generate(init_wait_us={init_wait_us}))"
    header = (f"// Made by: {made_by}\n"
              f"// with {', '.join(f'{k} {v}' for k, v in versions.items())}\n")
    info = dict(top.info, command=made_by, versions=versions)
    path = out / f"{NAME}.v"
    try:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(header + _normalise(str(verilog)))
        (out / f"{NAME}.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror}") from None
    return path, info


def _frequency(text):
    """``50e6`` or ``50000000`` → 50000000 (whole hertz)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a frequency in Hz: {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number of Hz: {text!r}")
    return int(value)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, exit code 2 (argparse would print the usage first).
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser():
    parser = _Parser(prog="python -m sdtforge.boards.litedram",
                     description="Generate the ULX3S SDR SDRAM controller (LiteDRAM) as one "
                                 "Verilog module and a JSON description.")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--module", default="MT48LC16M16",
                        help=f"SDRAM chip, one of {', '.join(MODULES)} (default: %(default)s)")
    parser.add_argument("--sys-clk-freq", type=_frequency, default=50_000_000, metavar="HZ",
                        help="controller clock in Hz, e.g. 50e6; the SDRAM clock (this times "
                             "the rate) must be 10-133 MHz (default: %(default)s)")
    parser.add_argument("--rate", default="1:1",
                        help="controller to SDRAM clock, 1:1 or 1:2 (default: %(default)s)")
    parser.add_argument("--data-width", type=int, default=None, metavar="N",
                        help="user port width in bits, a power-of-two multiple of the "
                             "controller word (16 at 1:1, 32 at 1:2; default: that word)")
    return parser


def main(argv=None):
    """Command line; returns the exit code (2 and one line on stderr for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        path, info = generate(args.out, args.module, args.sys_clk_freq, args.rate,
                              args.data_width)
    except UserError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {path} ({info['module']}, {info['sdram_clk_freq'] / 1e6:g} MHz SDRAM clock, "
          f"CL{info['cas_latency']}, {info['data_width']}-bit port, "
          f"{info['addr_width']}-bit word address)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
