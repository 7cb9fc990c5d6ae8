import subprocess
import sys

from spikeforge.cli import COMMANDS, build_parser, main


def test_help_lists_commands(capsys):
    parser = build_parser()
    text = parser.format_help()
    assert "spikeforge" in text
    assert "presets" in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= set(COMMANDS)
    for name in sub.choices:
        out = subprocess.run([sys.executable, "-m", "spikeforge.cli", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "usage: spikeforge " + name in out.stdout
