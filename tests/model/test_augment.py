"""The paper's CIFAR augmentation (``model/augment.py``) against PIL, the library timm applies
it with (PIL comes with matplotlib), and its use in training."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from sdtforge.cli import main
from sdtforge.model import SDTConfig, SpikeDrivenTransformer, augment, training

RNG = np.random.default_rng(7)
IMG = torch.as_tensor(RNG.integers(0, 256, (3, 16, 16), dtype=np.uint8))
# A low-contrast image, so AutoContrast and Equalize have something to do.
DULL = torch.as_tensor(RNG.integers(60, 140, (3, 16, 16), dtype=np.uint8))
FILL = (125, 123, 114)


def _pil(img):
    return Image.fromarray(img.permute(1, 2, 0).numpy())


def _back(pil):
    return torch.as_tensor(np.array(pil)).permute(2, 0, 1)


def _sign(seed):
    """The sign the first draw of ``torch.Generator().manual_seed(seed)`` gives ``_signed``."""
    return -1 if float(torch.rand((), generator=torch.Generator().manual_seed(seed))) < 0.5 else 1


def _op(name, img, m, seed=0):
    return augment.OPERATIONS[name](img, m, torch.Generator().manual_seed(seed), FILL)


@pytest.mark.parametrize("name, reference", [
    ("AutoContrast", ImageOps.autocontrast),
    ("Equalize", ImageOps.equalize),
    ("Invert", ImageOps.invert),
    ("PosterizeIncreasing", lambda im: ImageOps.posterize(im, 4 - int(9 / 10 * 4))),
    ("SolarizeIncreasing", lambda im: ImageOps.solarize(im, 256 - int(9 / 10 * 256))),
])
@pytest.mark.parametrize("img", [IMG, DULL], ids=["full", "dull"])
def test_pixel_operations_equal_pil(name, reference, img):
    assert torch.equal(_op(name, img, 9.0), _back(reference(_pil(img))))


def test_solarize_add_adds_below_128():
    out = _op("SolarizeAdd", IMG, 9.0).int()
    low = IMG < 128
    assert torch.equal(out[low], (IMG.int()[low] + 99).clamp(max=255))
    assert torch.equal(out[~low], IMG.int()[~low])


@pytest.mark.parametrize("name, enhancer", [
    ("ColorIncreasing", ImageEnhance.Color), ("ContrastIncreasing", ImageEnhance.Contrast),
    ("BrightnessIncreasing", ImageEnhance.Brightness),
    ("SharpnessIncreasing", ImageEnhance.Sharpness)])
@pytest.mark.parametrize("seed", [0, 3])
def test_enhancements_equal_pil(name, enhancer, seed):
    factor = 1.0 + _sign(seed) * 9 / 10 * 0.9
    ours = _op(name, DULL, 9.0, seed)
    assert torch.equal(ours, _back(enhancer(_pil(DULL)).enhance(factor)))
    assert not torch.equal(ours, DULL)


@pytest.mark.parametrize("seed", [0, 3])
def test_geometric_operations_follow_pil(seed):
    """Shear, rotation and translation against PIL's bilinear transforms (timm applies them
    with PIL): about one level apart on average (bilinear weights, and PIL's own handling of
    the filled border)."""
    big = torch.as_tensor(RNG.integers(0, 256, (3, 32, 32), dtype=np.uint8))
    pil, s = _pil(big), _sign(seed)
    affine = lambda *m: pil.transform(pil.size, Image.AFFINE, m, Image.BILINEAR,  # noqa: E731
                                      fillcolor=FILL)
    theirs = {"ShearX": affine(1, s * 0.27, 0, 0, 1, 0), "ShearY": affine(1, 0, 0, s * 0.27, 1, 0),
              "Rotate": pil.rotate(s * 27.0, resample=Image.BILINEAR, fillcolor=FILL),
              "TranslateXRel": affine(1, 0, s * 0.405 * 32, 0, 1, 0)}
    for name, image in theirs.items():
        ours = augment.OPERATIONS[name](big, 9.0, torch.Generator().manual_seed(seed), FILL)
        diff = (ours.int() - _back(image).int()).abs().float().mean()
        assert diff < 1.5, (name, float(diff))


def test_translation_by_whole_pixels_shifts_and_fills():
    """A translation of 0.25 of the width is 4 whole pixels at width 16: an exact shift, the
    uncovered columns filled with the mean colour."""
    img = IMG
    out = _op("TranslateXRel", img, 10 * 0.25 / 0.45, seed=0)
    s = _sign(0) * 4
    if s > 0:
        assert torch.equal(out[..., :-4], img[..., 4:])
        uncovered = out[..., -4:]
    else:
        assert torch.equal(out[..., 4:], img[..., :-4])
        uncovered = out[..., :4]
    assert torch.equal(uncovered, torch.tensor(FILL, dtype=torch.uint8).view(3, 1, 1)
                       .expand_as(uncovered))


@pytest.mark.parametrize("name", ["Rotate", "ShearX", "ShearY", "TranslateXRel"])
def test_geometric_operations_at_magnitude_zero_are_the_identity(name):
    assert torch.equal(_op(name, IMG, 0.0), IMG)


def test_rotation_keeps_the_centre_and_a_quarter_turn_is_a_transpose():
    img = IMG[:, :15, :15]  # odd size: the centre is a pixel
    out = _op("Rotate", img, 10.0 * 90 / 30, seed=0)  # 90 degrees, either way
    assert torch.equal(out[:, 7, 7], img[:, 7, 7])
    assert torch.equal(out, img.rot90(1, (1, 2))) or torch.equal(out, img.rot90(-1, (1, 2)))


def test_paper_images_is_seeded_and_changes_images():
    x = torch.as_tensor(RNG.integers(0, 256, (32, 3, 16, 16), dtype=np.uint8))
    a = augment.paper_images(x, torch.Generator().manual_seed(1), (0.49, 0.48, 0.45))
    b = augment.paper_images(x, torch.Generator().manual_seed(1), (0.49, 0.48, 0.45))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape
    changed = sum(not torch.equal(a[i], x[i]) for i in range(len(x)))
    assert 16 <= changed < 32  # flip 1/2, an operation 1/2: 3/4 changed on average


def test_mixup_blends_images_and_smoothed_targets_by_one_lambda():
    x = torch.as_tensor(RNG.integers(0, 256, (6, 3, 4, 4), dtype=np.uint8))
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    mixed, target = augment.mixup(x, y, torch.Generator().manual_seed(2), 10, 0.1)
    assert torch.allclose(target.sum(1), torch.ones(6))
    lam = (target[0, 0] - 0.01) / 0.9  # image 0 keeps λ of class 0, gets 1-λ of class 5
    assert torch.isclose(target[0, 5], 0.01 + 0.9 * (1 - lam))
    want = (x.float() * lam + x.flip(0).float() * (1 - lam)).round()
    assert torch.allclose(mixed.float(), want, atol=1)
    lams = [float(augment.mixup(x, y, torch.Generator().manual_seed(s), 10, 0.0)[1][0, 0])
            for s in range(400)]
    # Beta(1/2, 1/2): mean 1/2, variance 1/8.
    assert abs(np.mean(lams) - 0.5) < 0.05 and abs(np.var(lams) - 0.125) < 0.02


RGB = SDTConfig(img_size=(16, 16), in_channels=3, num_classes=10, embed_dims=16, num_heads=1,
                depths=1, T=2, pooling_stat="0011", mean=(0.49, 0.48, 0.45),
                std=(0.25, 0.24, 0.26))


X = torch.as_tensor(RNG.integers(0, 256, (24, 3, 16, 16), dtype=np.uint8))
Y = torch.as_tensor(RNG.integers(0, 10, 24))


def _fit(epochs, aug, **kw):
    settings = training.TrainSettings(epochs=epochs, batch_size=8, lr=1e-3, weight_decay=0.06,
                                      label_smoothing=0.1, augment=aug)
    torch.manual_seed(0)
    return training._fit(SpikeDrivenTransformer(RGB), X, Y, settings, seed=0, **kw)


def test_training_with_the_paper_recipe_is_reproducible_and_differs():
    a, b = _fit(3, "paper").state_dict(), _fit(3, "paper").state_dict()
    plain = _fit(3, "none").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], plain[k]) for k in a if k.endswith("weight"))
    assert all(torch.isfinite(v).all() for v in a.values() if v.is_floating_point())


def test_augment_paper_is_refused_for_digits_and_unknown_names(tmp_path, capsys):
    assert main(["train", "--preset", "digits-tiny", "--augment", "paper",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RGB images" in err and "1-channel images" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(Exception, match="unknown augmentation"):
        training.train("digits-tiny", augment="cutout", epochs=1, progress=False)


def test_the_cli_choices_are_the_library_s():
    from sdtforge.commands import train as cmd

    assert cmd.PRECISIONS == training.PRECISIONS
    assert cmd.AUGMENTATIONS == training.AUGMENTATIONS
