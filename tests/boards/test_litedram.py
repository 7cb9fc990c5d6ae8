"""The SDRAM controller: LiteDRAM generator, committed Verilog, chip-model co-simulation, component.

The committed ``boards/verilog/sdram_ulx3s.v`` must be what the generator writes today (byte
for byte, so also deterministic); the controller must pass the testbench against the chip
model (every read returns what was written, no timing rule broken, refreshes issued), and the
chip model must flag a controller that breaks a rule (a power-up wait that is too short).
"""

import json
import re
import subprocess
import sys

import pytest
from amaranth import C, Cat, ClockDomain, Elaboratable, Module, Mux, Signal
from amaranth.back import rtlil, verilog

from sdtforge.boards import litedram
from sdtforge.boards.sdram import CORE_VERILOG, LiteDRAMNative, core_info
from sdtforge.errors import UserError
from sdtforge.sim.cosim import ICARUS_ARGS
from sdtforge.sim.sdram_chip import VERILOG_DIR, parse_report, run_testbench
from sdtforge.sim.toolchain import have_iverilog

needs_icarus = pytest.mark.skipif(not have_iverilog(), reason="iverilog not installed")

#: AUTO REFRESH commands of the power-up sequence (the controller's own come after).
INIT_REFRESHES = litedram.INIT_REFRESHES


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sdtforge.boards.litedram", *args],
                          capture_output=True, text=True)


def test_committed_verilog_is_what_the_generator_writes(tmp_path):
    run = _cli("--out", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "sdram_ulx3s.v").read_bytes() == CORE_VERILOG.read_bytes()
    assert ((tmp_path / "sdram_ulx3s.json").read_bytes()
            == CORE_VERILOG.with_suffix(".json").read_bytes())
    head = CORE_VERILOG.read_text().splitlines()[:2]
    assert head[0] == "// Made by: " + litedram.command_line("MT48LC16M16", 50_000_000, "1:1",
                                                              None)
    assert "litex 2024.12, litedram 2024.12, migen 0.10.0" in head[1]


def test_generating_twice_in_one_process_gives_the_same_bytes(tmp_path):
    a, _ = litedram.generate(tmp_path / "a")
    litedram.generate(tmp_path / "b", rate="1:2")
    c, _ = litedram.generate(tmp_path / "c")
    assert a.read_bytes() == c.read_bytes()


def _ports(verilog):
    head = verilog.read_text().split(");", 1)[0]
    return {line.split()[-1].rstrip(","): line.split()[0]
            for line in head.splitlines() if line.strip().startswith(("input", "output", "inout"))}


@pytest.mark.parametrize("kw, expect", [
    ({}, dict(addr_width=24, data_width=16, column_bits=9, size_bytes=32 << 20, cas_latency=2,
              sdram_clk_freq=50_000_000)),
    ({"module": "AS4C32M16"}, dict(addr_width=25, data_width=16, column_bits=10,
                                   size_bytes=64 << 20)),
    ({"rate": "1:2"}, dict(addr_width=23, data_width=32, burst_length=2, cas_latency=2,
                           sdram_clk_freq=100_000_000)),
    ({"data_width": 64}, dict(addr_width=22, data_width=64)),
    ({"sys_clk_freq": 100_000_000}, dict(cas_latency=2, sdram_clk_freq=100_000_000)),
    ({"sys_clk_freq": 125_000_000}, dict(cas_latency=3)),
])
def test_options_set_the_ports_and_the_configuration(tmp_path, kw, expect):
    path, info = litedram.generate(tmp_path, **kw)
    assert json.loads(path.with_suffix(".json").read_text()) == info
    for key, value in expect.items():
        assert info[key] == value, key
    ports = _ports(path)
    assert ports["sdram_dq"] == "inout" and ports["sdram_clk"] == "output"
    assert ("clk2x" in ports) == (kw.get("rate") == "1:2")
    text = path.read_text()
    aw, dw = info["addr_width"], info["data_width"]
    assert f"input  wire   [{aw - 1}:0] user_cmd_addr" in text
    assert f"output wire   [{dw - 1}:0] user_rdata_data" in text
    # tRFC (66 ns on the MT48LC16M16) in controller cycles, rounded up.
    if kw.get("sys_clk_freq") == 100_000_000:
        assert info["timing_cycles"]["tRFC"] == 7


@needs_icarus
def test_controller_passes_the_chip_model(tmp_path):
    result = run_testbench(CORE_VERILOG, tmp_path)
    assert result.passed, result.log
    assert result.commands["errors"] == 0 and result.model_errors == []
    assert result.reads_ok == 2052 and result.mismatches == 0
    assert result.sequential_mismatches == 0
    # The testbench's 40 µs idle alone spans 5 refresh intervals (7.8 µs).
    assert result.commands["REF"] >= INIT_REFRESHES + 5, result.commands
    assert result.commands["MRS"] == 1
    assert result.commands["WR"] == 2048 + 512 + 2048
    assert "sequential: 2048 reads of 16 bit" in result.log
    lo, hi = map(int, re.search(r"single reads: 4, (\d+) to (\d+) cycles", result.log).groups())
    assert 6 <= lo <= hi <= 24, (lo, hi)  # a closed row at best, a refresh first at worst


@needs_icarus
@pytest.mark.slow
def test_verilator_agrees_with_icarus(tmp_path):
    icarus = run_testbench(CORE_VERILOG, tmp_path / "icarus")
    result = run_testbench(CORE_VERILOG, tmp_path / "verilator", simulator="verilator")
    assert result.passed, result.log
    assert result.commands == icarus.commands and result.commands["errors"] == 0
    assert result.reads_ok == icarus.reads_ok == 2052


@needs_icarus
@pytest.mark.parametrize("kw", [{"rate": "1:2"}, {"module": "AS4C32M16"}])
def test_other_configurations_pass_the_chip_model(tmp_path, kw):
    path, info = litedram.generate(tmp_path, **kw)
    params = {"AW": info["addr_width"], "DW": info["data_width"],
              "COL_BITS": info["column_bits"]}
    result = run_testbench(path, tmp_path, half_rate=info["rate"] == "1:2", params=params)
    assert result.passed, result.log
    assert result.commands["errors"] == 0 and result.reads_ok == 2052
    assert result.commands["REF"] >= INIT_REFRESHES + 5


@needs_icarus
def test_chip_model_flags_a_too_short_power_up_wait(tmp_path):
    path, _ = litedram.generate(tmp_path, init_wait_us=50)  # the chip model asks for 100 µs
    result = run_testbench(path, tmp_path)
    assert not result.passed
    assert result.commands["errors"] > 0
    assert result.model_errors
    assert all("command before power-up wait" in line for line in result.model_errors)


def test_report_parser_reads_failures():
    log = ("SDRAM-MODEL ERROR @1.0 ns: PRE: tRAS violated (cmd ...)\n"
           "model: ACT=3 RD=1 WR=2 PRE=1 REF=9 MRS=1 errors=1\n"
           "reads ok=1 mismatches=2 sequential mismatches=3\nTEST FAILED\n")
    r = parse_report(log)
    assert not r.passed and r.commands["REF"] == 9 and r.commands["errors"] == 1
    assert (r.reads_ok, r.mismatches, r.sequential_mismatches) == (1, 2, 3)
    assert len(r.model_errors) == 1
    assert not parse_report("").passed


@pytest.mark.parametrize("args, message", [
    (["--module", "MT48LC32M8"], "unknown SDRAM module 'MT48LC32M8'"),
    (["--sys-clk-freq", "fast"], "not a frequency in Hz: 'fast'"),
    (["--sys-clk-freq", "150e6"], "outside 10-133 MHz"),
    (["--sys-clk-freq", "75e6", "--rate", "1:2"], "outside 10-133 MHz at rate 1:2"),
    (["--rate", "2:1"], "unknown rate '2:1'"),
    (["--data-width", "24"], "data width 24 is not a power-of-two multiple"),
    ([], "the following arguments are required: --out"),
])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    argv = args if not args else ["--out", str(tmp_path), *args]
    assert litedram.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith("python -m sdtforge.boards.litedram: error: ")
    assert not (tmp_path / "sdram_ulx3s.v").exists()


def test_cli_refuses_a_file_as_output_folder(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert litedram.main(["--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is an existing file" in err, err
    assert target.read_text() == "x"


def test_cli_help_names_every_option():
    run = _cli("--help")
    assert run.returncode == 0
    for option in ("--out", "--module", "--sys-clk-freq", "--rate", "--data-width"):
        assert option in run.stdout
    assert "MT48LC16M16, AS4C32M16" in run.stdout


def test_generate_refuses_bad_input_from_python(tmp_path):
    with pytest.raises(UserError, match="whole|outside"):
        litedram.generate(tmp_path, sys_clk_freq=50e6)  # a float: not whole Hz


class _Platform:
    def __init__(self):
        self.files = {}

    def add_file(self, name, text):
        self.files[name] = text


def test_component_signature_and_instance():
    dut = LiteDRAMNative()
    info = core_info()
    assert info["addr_width"] == 24 and info["data_width"] == 16
    assert dut.cmd.payload.addr.shape().width == 24
    assert dut.wdata.payload.data.shape().width == 16
    assert dut.wdata.payload.we.shape().width == 2
    assert len(dut.rdata.payload) == 16
    platform = _Platform()
    dut.elaborate(platform)
    assert platform.files == {"sdram_ulx3s.v": CORE_VERILOG.read_text()}
    assert dut.elaborate(None) is not None
    text = rtlil.convert(dut)
    assert "cell \\sdram_ulx3s" in text
    for port in ("user_cmd_addr", "user_rdata_data", "sdram_dq", "clk_sdram", "init_done"):
        assert f"connect \\{port} " in text, port


def test_component_takes_board_pins_and_other_configurations(tmp_path):
    class Pin:
        def __init__(self, width):
            from amaranth.hdl import IOPort
            self.io = IOPort(width)

    class Pins:
        pass

    pins = Pins()
    for sub, width in [("clk", 1), ("clk_en", 1), ("cs", 1), ("we", 1), ("ras", 1),
                       ("cas", 1), ("ba", 2), ("a", 13), ("dqm", 2), ("dq", 16)]:
        setattr(pins, sub, Pin(width))
    dut = LiteDRAMNative(pins)
    assert dut.pins["sdram_dq"] is pins.dq.io and dut.pins["sdram_cs_n"] is pins.cs.io
    pins.a = Pin(12)
    with pytest.raises(UserError, match="sdram_a must be 13 bits"):
        LiteDRAMNative(pins)
    path, _ = litedram.generate(tmp_path / "w", data_width=64)
    with pytest.raises(UserError, match="16-bit port"):
        LiteDRAMNative(verilog=path)
    path, _ = litedram.generate(tmp_path / "h", rate="1:2")
    with pytest.raises(UserError, match="rate 1:1 controller, not 1:2"):
        LiteDRAMNative(verilog=path)


class _Memtest(Elaboratable):
    """Through :class:`LiteDRAMNative`: writes ``words`` words at scattered addresses, then
    overwrites the high byte of each (byte enables 0b10), reads them back and counts the
    reads that match (``good``; an X never matches) and those that do not (``bad``)."""

    def __init__(self, words):
        self.words = words
        self.sdram = LiteDRAMNative()
        self.done = Signal()
        self.good = Signal(16)
        self.bad = Signal(16)
        self.cd_sync = ClockDomain("sync")
        self.cd_sdram_ps = ClockDomain("sdram_ps", reset_less=True)

    @staticmethod
    def address(i):
        return (i * 40503 + 0x1234)[:24]  # odd multiplier: distinct addresses

    @staticmethod
    def word(i):
        return (i * 0x6F4B)[:16] ^ 0xA5C3

    def _commands(self, m, n, we, state, following):
        s = self.sdram
        with m.State(state):
            m.d.comb += [s.cmd.valid.eq(1), s.cmd.payload.we.eq(we)]
            with m.If(s.cmd.ready):
                m.d.sync += n.eq(n + 1)
                with m.If(n == self.words - 1):
                    m.d.sync += n.eq(0)
                    m.next = following

    def elaborate(self, platform):
        m = Module()
        m.domains += [self.cd_sync, self.cd_sdram_ps]
        m.submodules.sdram = s = self.sdram
        n, wptr, reads = Signal(16), Signal(17), Signal(16)
        first = wptr < self.words
        # Each write's data is presented before its command and held until wdata.ready.
        m.d.comb += [s.wdata.payload.data.eq(Mux(first, self.word(wptr), 0xEEEE)),
                     s.wdata.payload.we.eq(Mux(first, 0b11, 0b10)),
                     s.wdata.valid.eq(wptr < 2 * self.words), s.rdata.ready.eq(1),
                     s.cmd.payload.addr.eq(self.address(n))]
        with m.If(s.wdata.ready):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(s.rdata.valid):
            m.d.sync += reads.eq(reads + 1)
            with m.If(s.rdata.payload == Cat(self.word(reads)[:8], C(0xEE, 8))):
                m.d.sync += self.good.eq(self.good + 1)
            with m.Else():
                m.d.sync += self.bad.eq(self.bad + 1)
        with m.FSM():
            self._commands(m, n, 1, "WRITE", "MASK")
            self._commands(m, n, 1, "MASK", "WAIT-WRITES")
            with m.State("WAIT-WRITES"):
                with m.If(wptr == 2 * self.words):
                    m.next = "READ"
            self._commands(m, n, 0, "READ", "WAIT-READS")
            with m.State("WAIT-READS"):
                with m.If(reads == self.words):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
        return m


_MEMTEST_TB = """`timescale 1ns / 1ps
module tb_memtest;
    reg clk = 0, clk_ps = 0, rst = 1;
    always #10 clk = ~clk;                 // 50 MHz
    always @(clk) clk_ps <= #5 clk;        // SDRAM clock 90 degrees behind
    wire done, init_done;
    wire [15:0] good, bad;
    wire [12:0] a; wire [1:0] ba, dm; wire [15:0] dq;
    wire sclk, cke, cs_n, ras_n, cas_n, we_n;
    top dut (.clk(clk), .rst(rst), .sdram_ps_clk(clk_ps), .done(done), .good(good),
             .bad(bad), .init_done(init_done), .sdram_clk(sclk), .sdram_cke(cke),
             .sdram_cs_n(cs_n), .sdram_ras_n(ras_n), .sdram_cas_n(cas_n), .sdram_we_n(we_n),
             .sdram_ba(ba), .sdram_a(a), .sdram_dm(dm), .sdram_dq(dq));
    sdram_chip #(.T_AC(10.4), .T_OH(7.7)) chip (.clk(sclk), .cke(cke), .cs_n(cs_n),
        .ras_n(ras_n), .cas_n(cas_n), .we_n(we_n), .ba(ba), .a(a), .dqm(dm), .dq(dq));
    initial begin
        #200 rst = 0;
        wait (done);
        #100 $display("memtest: good=%0d bad=%0d model: RD=%0d WR=%0d errors=%0d",
                      good, bad, chip.n_rd, chip.n_wr, chip.errors);
        $finish;
    end
    initial begin #1000000 $display("memtest: TIMEOUT"); $finish; end
endmodule
"""


@needs_icarus
def test_component_writes_and_reads_back_through_the_chip_model(tmp_path):
    top = _Memtest(words=512)
    text = verilog.convert(top, name="top", ports=[
        top.cd_sync.clk, top.cd_sync.rst, top.cd_sdram_ps.clk, top.done, top.good, top.bad,
        top.sdram.init_done])
    (tmp_path / "top.v").write_text(text)
    (tmp_path / "tb.v").write_text(_MEMTEST_TB)
    sources = [tmp_path / "tb.v", tmp_path / "top.v", CORE_VERILOG,
               VERILOG_DIR / "sdram_chip.v", VERILOG_DIR / "ecp5_prims.v"]
    subprocess.run(["iverilog", *ICARUS_ARGS, "-o", str(tmp_path / "tb.vvp"), "-s", "tb_memtest",
                    *map(str, sources)], check=True, capture_output=True, text=True)
    log = subprocess.run(["vvp", "-n", str(tmp_path / "tb.vvp")], check=True,
                         capture_output=True, text=True).stdout
    assert "memtest: good=512 bad=0 model: RD=512 WR=1024 errors=0" in log, log
