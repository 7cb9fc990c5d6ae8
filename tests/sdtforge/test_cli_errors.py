"""Every mistake a user can make on the command line ends in one error line and exit code 2.

Each case runs ``sdtforge.cli.main`` in-process in a scratch directory (so that relative default
outputs would land there too) and checks: exit code 2, no traceback, exactly one ``error:``
line, the last line of stderr being it and naming the cause, and no file written or changed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sdtforge.boards.targets import BOARDS
from sdtforge.cli import COMMANDS, main
from sdtforge.model import SHIPPED_CHECKPOINTS
from sdtforge.quantize import ir
from sdtforge.quantize.synthetic import random_model, tiny_config

CKPT = str(SHIPPED_CHECKPOINTS["digits-tiny"])
NO_PORT = ["--port", "/dev/no-such-tty-sdtforge"]


@pytest.fixture(scope="module")
def sfm(tmp_path_factory):
    """A small integer model (fits the ULX3S; compiles in well under a second)."""
    path = tmp_path_factory.mktemp("model") / "m.sfm"
    ir.save(random_model(tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3),
                         seed=1), path)
    return str(path)


def _workspace(tmp_path):
    """Inputs of every kind of mistake, in ``tmp_path`` (``{name}`` in a case's argv)."""
    (tmp_path / "file.txt").write_text("not a directory\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "locked").mkdir()
    (tmp_path / "garbage.npy").write_bytes(b"garbage\n")
    (tmp_path / "garbage.sfm").write_bytes(b"garbage\n")
    (tmp_path / "garbage.pt").write_bytes(b"garbage\n")
    (tmp_path / "fake.png").write_text("not a png\n")
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff")
    np.save(tmp_path / "empty.npy", np.zeros((0,), np.uint8))
    np.save(tmp_path / "nan.npy", np.full((4, 4), np.nan))
    np.save(tmp_path / "big.npy", np.full((4, 4), 300))
    np.save(tmp_path / "flat.npy", np.zeros(16, np.uint8))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]\n")
    (tmp_path / "lanes3.json").write_text(json.dumps({"lanes": 3}))
    (tmp_path / "run" / "checkpoint.pt").mkdir(parents=True)      # a directory in the way
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "rtl").write_text("a file where the demo writes a directory\n")
    for name in ("rtl/config.json", "asic/asic.json", "build/report.json", "r/report.md"):
        (tmp_path / "taken" / name).mkdir(parents=True)      # directories where files go
    return {n: str(tmp_path / n) for n in (
        "file.txt", "dir", "dir.npy", "locked", "garbage.npy", "garbage.sfm", "garbage.pt",
        "fake.png", "x.jpg", "empty.npy", "nan.npy", "big.npy", "flat.npy", "text.npy",
        "junk.json", "list.json", "lanes3.json", "run", "demo", "taken")} | {"tmp": str(tmp_path)}


def _lock(path, monkeypatch):
    """Make the directory ``path`` unwritable (root writes anywhere: then make it look so)."""
    if os.geteuid() != 0:
        path.chmod(0o500)
        return
    real = os.access

    def access(p, mode, **kw):
        if mode & os.W_OK and Path(p).resolve() == path.resolve():
            return False
        return real(p, mode, **kw)

    monkeypatch.setattr(os, "access", access)


# (id, argv with {placeholders}, text the error line must contain)
CASES = [
    ("no-command", [], "no command"),
    ("unknown-command", ["bogus"], "invalid choice"),
    # presets
    ("presets-unknown-option", ["presets", "--bogus"], "unrecognized arguments"),
    # train
    ("train-out-is-file", ["train", "--out", "{file.txt}"], "is an existing file"),
    ("train-out-under-file", ["train", "--out", "{file.txt}/run"], "is a file"),
    ("train-out-unwritable", ["train", "--out", "{locked}/run"], "not writable"),
    ("train-checkpoint-is-dir", ["train", "--out", "{run}"], "is a directory"),
    ("train-threads-0", ["train", "--out", "{tmp}/r", "--threads", "0"], "--threads"),
    ("train-threads-neg", ["train", "--out", "{tmp}/r", "--threads", "-1"], "--threads"),
    ("train-epochs-0", ["train", "--out", "{tmp}/r", "--epochs", "0"], "--epochs"),
    ("train-epochs-text", ["train", "--out", "{tmp}/r", "--epochs", "many"], "not an integer"),
    ("train-seed-neg", ["train", "--out", "{tmp}/r", "--seed", "-1"], "--seed"),
    ("train-seed-huge", ["train", "--out", "{tmp}/r", "--seed", str(2**70)], "--seed"),
    ("train-preset", ["train", "--out", "{tmp}/r", "--preset", "nope"], "unknown preset"),
    ("train-data-dir", ["train", "--out", "{tmp}/r", "--data-dir", "{tmp}/none"],
     "does not exist"),
    # convert
    ("convert-missing", ["convert", "{tmp}/nope.pth", "--preset", "digits-tiny", "--out",
                         "{tmp}/o.pt"], "does not exist"),
    ("convert-out-is-dir", ["convert", CKPT, "--preset", "digits-tiny", "--out", "{dir}"],
     "is a directory"),
    ("convert-out-under-file", ["convert", CKPT, "--preset", "digits-tiny", "--out",
                                "{file.txt}/o.pt"], "is a file"),
    ("convert-out-unwritable", ["convert", CKPT, "--preset", "digits-tiny", "--out",
                                "{locked}/o.pt"], "not writable"),
    ("convert-preset", ["convert", CKPT, "--preset", "nope", "--out", "{tmp}/o.pt"],
     "unknown preset"),
    ("convert-no-preset", ["convert", CKPT, "--out", "{tmp}/o.pt"], "does not say its --img-size"),
    # quantize
    ("quantize-limit-0", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--limit", "0"], "--limit"),
    ("quantize-limit-neg", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--limit", "-5"],
     "--limit"),
    ("quantize-qat-epochs-neg", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--qat-epochs", "-1"],
     "--qat-epochs"),
    ("quantize-qat-lr-0", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--qat-lr", "0"],
     "--qat-lr"),
    ("quantize-qat-lr-nan", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--qat-lr", "nan"],
     "--qat-lr"),
    ("quantize-weight-bits", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--weight-bits", "9"],
     "--weight-bits"),
    ("quantize-out-is-dir", ["quantize", CKPT, "--out", "{dir}"], "is a directory"),
    ("quantize-out-parent-missing", ["quantize", CKPT, "--out", "{tmp}/none/m.sfm"],
     "does not exist"),
    ("quantize-out-under-file", ["quantize", CKPT, "--out", "{file.txt}/m.sfm"], "is a file"),
    ("quantize-out-unwritable", ["quantize", CKPT, "--out", "{locked}/m.sfm"], "not writable"),
    ("quantize-missing", ["quantize", "{tmp}/none.pt", "--out", "{tmp}/m.sfm"],
     "does not exist"),
    ("quantize-data-dir", ["quantize", CKPT, "--out", "{tmp}/m.sfm", "--data-dir", "{file.txt}"],
     "not a directory"),
    # eval
    ("eval-threads-0", ["eval", CKPT, "--threads", "0"], "--threads"),
    ("eval-threads-neg", ["eval", CKPT, "--threads", "-1"], "--threads"),
    ("eval-missing", ["eval", "{tmp}/none.pt"], "does not exist"),
    ("eval-missing-sfm", ["eval", "{tmp}/none.sfm"], "does not exist"),
    ("eval-dir", ["eval", "{dir}"], "not a regular file"),
    ("eval-garbage-pt", ["eval", "{garbage.pt}"], "garbage.pt"),
    ("eval-garbage-sfm", ["eval", "{garbage.sfm}"], "garbage.sfm"),
    ("eval-data-dir", ["eval", CKPT, "--data-dir", "{tmp}/none"], "does not exist"),
    # generate
    ("generate-out-is-file", ["generate", "{sfm}", "--out", "{file.txt}"], "is an existing file"),
    ("generate-out-under-file", ["generate", "{sfm}", "--out", "{file.txt}/rtl"], "is a file"),
    ("generate-out-unwritable", ["generate", "{sfm}", "--out", "{locked}/rtl"], "not writable"),
    ("generate-out-file-is-dir", ["generate", "{sfm}", "--out", "{taken}/rtl"],
     "is a directory"),
    ("generate-width-0", ["generate", "{sfm}", "--out", "{tmp}/o", "--width", "0"], "--width"),
    ("generate-width-4096", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "1",
                             "--width", "4096"], "at most 128 and 512"),
    ("generate-lanes-1024", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "1024",
                             "--width", "1024"], "at most"),
    ("generate-width-4", ["generate", "{sfm}", "--out", "{tmp}/o", "--width", "4"],
     "at least 8"),
    ("generate-width-12", ["generate", "{sfm}", "--out", "{tmp}/o", "--width", "12"],
     "power of two"),
    ("generate-lanes-0", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "0"], "--lanes"),
    ("generate-lanes-3", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "3"],
     "power of two"),
    ("generate-lanes-over-width", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "32"],
     "must not exceed"),
    ("generate-writeback-3", ["generate", "{sfm}", "--out", "{tmp}/o", "--writeback-lanes", "3"],
     "power of two"),
    ("generate-writeback-over-lanes", ["generate", "{sfm}", "--out", "{tmp}/o", "--lanes", "4",
                                       "--writeback-lanes", "8"], "dividing the lanes (4)"),
    ("generate-stream-latency-serial", ["generate", "{sfm}", "--out", "{tmp}/o",
                                        "--writeback-lanes", "1", "--stream-latency", "3"],
     "drop --writeback-lanes 1"),
    ("generate-stream-latency-2", ["generate", "{sfm}", "--out", "{tmp}/o", "--stream-latency",
                                   "2"], "invalid choice"),
    ("generate-weight-latency-3", ["generate", "{sfm}", "--out", "{tmp}/o", "--weight-latency",
                                   "3"], "invalid choice"),
    ("generate-missing", ["generate", "{tmp}/none.sfm", "--out", "{tmp}/o"], "does not exist"),
    ("generate-garbage", ["generate", "{garbage.sfm}", "--out", "{tmp}/o"], "garbage.sfm"),
    ("generate-config-missing", ["generate", "{sfm}", "--out", "{tmp}/o", "--config",
                                 "{tmp}/none.json"], "does not exist"),
    ("generate-config-junk", ["generate", "{sfm}", "--out", "{tmp}/o", "--config",
                              "{junk.json}"], "hardware config"),
    ("generate-config-list", ["generate", "{sfm}", "--out", "{tmp}/o", "--config",
                              "{list.json}"], "hardware config"),
    ("generate-config-lanes", ["generate", "{sfm}", "--out", "{tmp}/o", "--config",
                               "{lanes3.json}"], "power of two"),
    # synth
    ("synth-rate-0", ["synth", "--preset", "digits-tiny", "--firing-rate", "0", "--out",
                      "{tmp}/s.sfm"], "above 0"),
    ("synth-rate-1", ["synth", "--preset", "digits-tiny", "--firing-rate", "1", "--out",
                      "{tmp}/s.sfm"], "--firing-rate"),
    ("synth-rate-unreachable", ["synth", "--preset", "digits-tiny", "--firing-rate", "0.9",
                                "--out", "{tmp}/s.sfm"], "does not fire at 0.9"),
    ("synth-preset", ["synth", "--preset", "resnet", "--firing-rate", "0.1", "--out",
                      "{tmp}/s.sfm"], "--preset"),
    ("synth-out-dir", ["synth", "--preset", "digits-tiny", "--firing-rate", "0.1", "--out",
                       "{tmp}"], "is a directory"),
    ("synth-out-unwritable", ["synth", "--preset", "digits-tiny", "--firing-rate", "0.1",
                              "--out", "{locked}/s.sfm"], "not writable"),
    # cosim
    ("cosim-out-is-file", ["cosim", "{sfm}", "--out", "{file.txt}"], "is an existing file"),
    ("cosim-out-unwritable", ["cosim", "{sfm}", "--out", "{locked}/c"], "not writable"),
    ("cosim-images-0", ["cosim", "{sfm}", "--images", "0"], "--images"),
    ("cosim-images-too-many", ["cosim", "{sfm}", "--images", "100000"], "exceeds"),
    ("cosim-stall-1", ["cosim", "{sfm}", "--stall", "1"], "--stall"),
    ("cosim-stall-neg", ["cosim", "{sfm}", "--stall", "-0.1"], "--stall"),
    ("cosim-lanes-3", ["cosim", "{sfm}", "--lanes", "3"], "power of two"),
    ("cosim-writeback-over-lanes", ["cosim", "{sfm}", "--writeback-lanes", "16"],
     "dividing the lanes (8)"),
    ("cosim-stream-latency-serial", ["cosim", "{sfm}", "--writeback-lanes", "2",
                                     "--stream-latency", "3"], "needs every lane"),
    ("cosim-width-0", ["cosim", "{sfm}", "--width", "0"], "--width"),
    ("cosim-no-prefetch-alone", ["cosim", "{sfm}", "--no-prefetch"], "needs --sdram"),
    ("cosim-window-alone", ["cosim", "{sfm}", "--window", "1024"], "--window needs --sdram"),
    ("cosim-window-3", ["cosim", "{sfm}", "--sdram", "--window", "3"], "power of two"),
    ("cosim-no-prefetch-two-events", ["cosim", "{sfm}", "--sdram", "--no-prefetch", "--events",
                                      "2"], "drop --no-prefetch or --events"),
    ("cosim-sdram-spikes", ["cosim", "{sfm}", "--sdram", "--sim", "icarus", "--dump-spikes"],
     "--dump-spikes"),
    ("cosim-lanes-over-width", ["cosim", "{sfm}", "--lanes", "16", "--width", "8"],
     "must not exceed"),
    ("cosim-seed-neg", ["cosim", "{sfm}", "--seed", "-1"], "--seed"),
    ("cosim-sim", ["cosim", "{sfm}", "--sim", "modelsim"], "invalid choice"),
    ("cosim-missing", ["cosim", "{tmp}/none.sfm"], "does not exist"),
    ("cosim-data-dir", ["cosim", "{sfm}", "--data-dir", "{tmp}/none"], "does not exist"),
    # build
    ("build-baud-0", ["build", "{sfm}", "--out", "{tmp}/b", "--baud", "0"], "--baud"),
    ("build-baud-neg", ["build", "{sfm}", "--out", "{tmp}/b", "--baud", "-9600"], "--baud"),
    ("build-baud-too-fast", ["build", "{sfm}", "--board", "ulx3s-85f", "--out", "{tmp}/b",
                             "--baud", "100000000"], "divisor"),
    ("build-freq-0", ["build", "{sfm}", "--out", "{tmp}/b", "--freq", "0"], "--freq"),
    ("build-freq-500", ["build", "{sfm}", "--out", "{tmp}/b", "--freq", "500"], "out of range"),
    ("build-freq-nan", ["build", "{sfm}", "--out", "{tmp}/b", "--freq", "nan"], "--freq"),
    ("build-lanes-3", ["build", "{sfm}", "--out", "{tmp}/b", "--lanes", "3"], "power of two"),
    ("build-width-4", ["build", "{sfm}", "--out", "{tmp}/b", "--width", "4"], "at least 8"),
    ("build-lanes-over-width", ["build", "{sfm}", "--out", "{tmp}/b", "--lanes", "32"],
     "must not exceed"),
    ("build-asic-lanes-over-width", ["build", "{sfm}", "--target", "asic", "--out", "{tmp}/b",
                                     "--lanes", "16", "--width", "8"], "must not exceed"),
    ("build-seed-neg", ["build", "{sfm}", "--out", "{tmp}/b", "--seed", "-1"], "--seed"),
    ("build-board", ["build", "{sfm}", "--board", "nope"], "invalid choice"),
    ("build-sdram-icebreaker", ["build", "{sfm}", "--sdram", "--out", "{tmp}/b"],
     "has no SDRAM"),
    ("build-sdram-asic", ["build", "{sfm}", "--sdram", "--target", "asic", "--out", "{tmp}/b"],
     "does not apply to --target asic"),
    ("build-out-is-file", ["build", "{sfm}", "--out", "{file.txt}"], "is an existing file"),
    ("build-out-unwritable", ["build", "{sfm}", "--out", "{locked}/b"], "not writable"),
    ("build-report-is-dir", ["build", "{sfm}", "--out", "{taken}/build"], "is a directory"),
    ("build-asic-json-is-dir", ["build", "{sfm}", "--target", "asic", "--out", "{taken}/asic"],
     "is a directory"),
    ("build-missing", ["build", "{tmp}/none.sfm", "--out", "{tmp}/b"], "no model file"),
    # run
    ("run-image-dir", ["run", "{dir.npy}", "--board", "ulx3s-85f", *NO_PORT],
     "not a regular file"),
    ("run-image-garbage", ["run", "{garbage.npy}", "--board", "ulx3s-85f", *NO_PORT],
     "cannot read image"),
    ("run-image-fake-png", ["run", "{fake.png}", "--board", "ulx3s-85f", *NO_PORT],
     "cannot read image"),
    ("run-image-jpg", ["run", "{x.jpg}", "--board", "ulx3s-85f", *NO_PORT],
     "unknown image format"),
    ("run-image-missing", ["run", "{tmp}/none.npy", "--board", "ulx3s-85f", *NO_PORT],
     "does not exist"),
    ("run-image-empty", ["run", "{empty.npy}", "--board", "ulx3s-85f", *NO_PORT], "[H, W]"),
    ("run-image-flat", ["run", "{flat.npy}", "--board", "ulx3s-85f", *NO_PORT], "[H, W]"),
    ("run-image-nan", ["run", "{nan.npy}", "--board", "ulx3s-85f", *NO_PORT], "0..255"),
    ("run-image-300", ["run", "{big.npy}", "--board", "ulx3s-85f", *NO_PORT], "0..255"),
    ("run-image-text", ["run", "{text.npy}", "--board", "ulx3s-85f", *NO_PORT],
     "must be numbers"),
    ("run-baud-0", ["run", "--board", "ulx3s-85f", *NO_PORT, "--baud", "0"], "--baud"),
    ("run-timeout-0", ["run", "--board", "ulx3s-85f", *NO_PORT, "--timeout", "0"], "--timeout"),
    ("run-digits-test-neg", ["run", "--board", "ulx3s-85f", *NO_PORT, "--digits-test", "-1"],
     "--digits-test"),
    ("run-lanes-3", ["run", "--board", "ulx3s-85f", *NO_PORT, "--lanes", "3"], "power of two"),
    ("run-lanes-over-width", ["run", "--board", "ulx3s-85f", *NO_PORT, "--lanes", "64"],
     "must not exceed"),
    ("run-model-missing", ["run", "--board", "ulx3s-85f", *NO_PORT, "--model",
                           "{tmp}/none.sfm"], "no model file"),
    ("run-lanes-1024", ["run", "--board", "ulx3s-85f", *NO_PORT, "--lanes", "1024",
                        "--width", "1024"], "at most 128"),
    ("run-config-missing", ["run", "--board", "ulx3s-85f", *NO_PORT, "--config",
                            "{tmp}/none.json"], "--config"),
    ("run-config-and-lanes", ["run", "--board", "ulx3s-85f", *NO_PORT, "--model", "{sfm}",
                              "--config", "{junk.json}", "--lanes", "2"], "drop --lanes"),
    ("run-config-and-sdram", ["run", "--board", "ulx3s-85f", *NO_PORT, "--model", "{sfm}",
                              "--config", "{junk.json}", "--sdram"],
     "drop --lanes/--width/--sdram"),
    ("run-sdram-icebreaker", ["run", "--board", "icebreaker", *NO_PORT, "--model", "{sfm}",
                              "--sdram"], "has no SDRAM"),
    ("run-config-junk", ["run", "--board", "ulx3s-85f", *NO_PORT, "--model", "{sfm}",
                         "--config", "{junk.json}"], "JSON"),
    ("run-config-lanes3", ["run", "--board", "ulx3s-85f", *NO_PORT, "--model", "{sfm}",
                           "--config", "{lanes3.json}"], "power of two"),
    ("run-no-port", ["run", "--board", "ulx3s-85f"], "required"),
    ("run-no-such-port", ["run", "--board", "ulx3s-85f", *NO_PORT], "cannot open serial port"),
    # report
    ("report-lanes-3", ["report", "{sfm}", "--out", "{tmp}/r", "--lanes", "3"], "power of two"),
    ("report-width-0", ["report", "{sfm}", "--out", "{tmp}/r", "--width", "0"], "--width"),
    ("report-lanes-over-width", ["report", "{sfm}", "--out", "{tmp}/r", "--lanes", "32"],
     "must not exceed"),
    ("report-images-0", ["report", "{sfm}", "--out", "{tmp}/r", "--images", "0"], "--images"),
    ("report-out-is-file", ["report", "{sfm}", "--out", "{file.txt}"], "is an existing file"),
    ("report-out-unwritable", ["report", "{sfm}", "--out", "{locked}/r"], "not writable"),
    ("report-default-out-unwritable", ["report", "{sfm}"], "not writable"),
    ("report-md-is-dir", ["report", "{sfm}", "--out", "{taken}/r"], "is a directory"),
    ("report-cosim-missing", ["report", "{sfm}", "--out", "{tmp}/r", "--cosim",
                              "{tmp}/none.json"], "does not exist"),
    ("report-cosim-junk", ["report", "{sfm}", "--out", "{tmp}/r", "--cosim", "{junk.json}"],
     "not readable JSON"),
    ("report-cosim-list", ["report", "{sfm}", "--out", "{tmp}/r", "--cosim", "{list.json}"],
     "JSON object"),
    ("report-build-dir", ["report", "{sfm}", "--out", "{tmp}/r", "--build", "{dir}"],
     "not a regular file"),
    ("report-asic-junk", ["report", "{sfm}", "--out", "{tmp}/r", "--asic", "{junk.json}"],
     "not readable JSON"),
    ("report-data-dir", ["report", "{sfm}", "--out", "{tmp}/r", "--data-dir", "{tmp}/none"],
     "does not exist"),
    ("report-missing", ["report", "{tmp}/none.sfm", "--out", "{tmp}/r"], "does not exist"),
    # demo
    ("demo-out-is-file", ["demo", "--out", "{file.txt}"], "is an existing file"),
    ("demo-out-unwritable", ["demo", "--out", "{locked}/d"], "not writable"),
    ("demo-stage-dir-is-file", ["demo", "--out", "{demo}"], "is an existing file"),
    ("demo-images-0", ["demo", "--out", "{tmp}/d", "--images", "0"], "--images"),
    ("demo-board", ["demo", "--out", "{tmp}/d", "--board", "nope"], "invalid choice"),
]


def _snapshot(root):
    return {str(p.relative_to(root)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_mistake_is_one_error_line(argv, message, sfm, tmp_path, monkeypatch, capsys):
    names = _workspace(tmp_path) | {"sfm": sfm}
    argv = [re.sub(r"\{([^}]+)\}", lambda m: names[m.group(1)], a) for a in argv]
    _lock(tmp_path / "locked", monkeypatch)
    monkeypatch.chdir(tmp_path)
    if argv[:1] == ["report"] and "--out" not in argv:
        _lock(tmp_path, monkeypatch)     # the default out/report lands here
    before = _snapshot(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert sum(bool(re.search(r"\berror:", line)) for line in lines) == 1, err
    assert "error:" in lines[-1] and message in lines[-1], err
    assert _snapshot(tmp_path) == before, "files were written"


def test_table_covers_every_command():
    assert {c[1][0] for c in CASES if c[1]} >= set(COMMANDS)


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", text, re.M), name


def test_build_help_states_the_boards_defaults(capsys):
    assert main(["build", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())   # argparse wraps lines
    for name, board in BOARDS.items():
        assert f"{board.default_lanes} on {name}" in text
        assert f"{board.default_width} on {name}" in text
        assert f"{board.f_sync / 1e6:g} on {name}" in text
    assert "default: None" not in text


def test_every_help_states_real_defaults(capsys):
    """No help shows ``default: None``; a stated default is the parser's value."""
    from sdtforge.hdl.compile import AccelConfig

    for name in COMMANDS:
        assert main([name, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "default: None" not in text, name
        if name in ("generate", "cosim", "report"):
            assert re.search(rf"--lanes LANES [^-]*\(default: {AccelConfig.lanes}\)", text)
            assert re.search(rf"--width WIDTH [^-]*\(default: {AccelConfig.width}\)", text)


def test_broken_pipe_is_quiet(tmp_path):
    """``sdtforge presets | head -0``: the reader is gone before the first write."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, "-m", "sdtforge.cli", "presets"], stdout=write,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
