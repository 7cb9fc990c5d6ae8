import torch

from sdtforge.cli import main
from sdtforge.model import load_checkpoint
from sdtforge.model.presets import get_preset
from sdtforge.model.sdt import SpikeDrivenTransformer


def test_convert_reference_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = SpikeDrivenTransformer(get_preset("digits-tiny").config).eval()
    # As the reference training script saves it: DataParallel prefix, a "model" wrapper and the
    # unused talking-heads weight.
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    sd["module.block.0.attn.talking_heads.weight"] = torch.zeros(8, 8, 1)
    ref = tmp_path / "ref.pth"
    torch.save({"model": sd, "epoch": 3}, ref)
    out = tmp_path / "ckpt.pt"
    assert main(["convert", str(ref), "--preset", "digits-tiny", "--out", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    loaded, ckpt = load_checkpoint(out)
    assert ckpt["preset"] == "digits-tiny" and ckpt["dataset"] == "digits"
    assert 0.0 <= ckpt["metrics"]["test_accuracy"] <= 1.0
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(loaded(x), model(x))


def test_convert_errors(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "nope.pth"), "--preset", "digits-tiny",
                 "--out", str(tmp_path / "o.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"head.weight": torch.zeros(10, 32)}}, bad)
    assert main(["convert", str(bad), "--preset", "digits-tiny", "--out",
                 str(tmp_path / "o.pt"), "--no-eval"]) == 2
