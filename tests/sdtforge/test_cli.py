import subprocess
import sys

from sdtforge.cli import COMMANDS, build_parser, main


def test_help_lists_commands(capsys):
    parser = build_parser()
    text = parser.format_help()
    assert "sdtforge" in text
    assert "presets" in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) <= set(COMMANDS)
    for name in sub.choices:
        out = subprocess.run([sys.executable, "-m", "sdtforge.cli", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "usage: sdtforge " + name in out.stdout


def test_presets_table(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "digits-tiny" in out and "imagenet-8-512" in out and "28,870" in out


def test_presets_json(capsys):
    import json

    assert main(["presets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["digits-tiny"]["params"] == 28_870
    assert rows["cifar10-2-512"]["tokens"] == 64 and rows["imagenet-8-512"]["tokens"] == 196


def test_train_unknown_preset_is_user_error(capsys, tmp_path):
    assert main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_eval_not_a_checkpoint_is_user_error(capsys, tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"junk")
    assert main(["eval", str(bad)]) == 2
    assert "error" in capsys.readouterr().err
