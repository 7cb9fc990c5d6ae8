"""The paper's CIFAR training augmentation (``sdtforge train --augment paper``), on uint8 tensors.

The reference trains CIFAR-10/100 with timm's pipeline (its ``conf/cifar10/*.yml``): a random
resized crop with scale and ratio 1 (the whole 32×32 image, so nothing), a horizontal flip with
probability 0.5, RandAugment ``rand-m9-n1-mstd0.4-inc1``, and batch mixup with α 0.5 (always
on, cutmix off) until epoch 200 of 300, the targets label-smoothed by 0.1. This module is that
recipe written on torch tensors: timm and torchvision work on PIL images and would pull
torchvision (and a second image stack) into the install for one training option; the project
keeps neither. Every draw comes from the caller's ``torch.Generator``, so a run is
reproducible and resumes exactly.

RandAugment, as timm's ``rand-m9-n1-mstd0.4-inc1`` defines it: per image one operation, chosen
uniformly from the 15 "increasing" ones below, applied with probability 0.5 at a magnitude
drawn from N(9, 0.4²) clipped to [0, 10] (of 10). Geometric operations fill with the dataset's
mean colour. Differences to timm: resampling is bilinear (the reference's config asks timm
for bicubic; against PIL's bilinear the geometric operations differ by about one level on
average, more only along the filled border), and mixup rounds the mixed image to uint8 pixels
(the model's input contract).
"""

import math

import torch
from torch.nn import functional as F

__all__ = ["OPERATIONS", "rand_augment", "paper_images", "mixup", "MIXUP_ALPHA",
           "MIXUP_FRACTION"]

#: Mixup's Beta(α, α) parameter (:func:`mixup` samples this α only) and the share of the epochs
#: it is on (200 of 300).
MIXUP_ALPHA = 0.5
MIXUP_FRACTION = 2 / 3
_MAGNITUDE, _MAGNITUDE_STD, _PROB = 9.0, 0.4, 0.5


def _uniform(gen):
    return float(torch.rand((), generator=gen))


def _signed(value, gen):
    """``value`` with a random sign (timm's ``_randomly_negate``)."""
    return -value if _uniform(gen) < 0.5 else value


def _gray(img):
    """ITU-R 601 luma as PIL's ``convert("L")`` computes it, ``float [1, H, W]``."""
    if img.shape[0] == 1:
        return img.float()
    r, g, b = img.float()
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 0x8000) / 65536)[None]


def _blend(degenerate, img, factor):
    """PIL ``ImageEnhance``: ``degenerate + factor·(img - degenerate)``, truncated and clipped
    to pixels as PIL's ``Image.blend`` does."""
    out = degenerate + factor * (img.float() - degenerate)
    return torch.trunc(out).clamp(0, 255).to(torch.uint8)


def _affine(img, matrix, fill):
    """Resample ``img`` so output pixel ``(x, y)`` takes input ``matrix @ (x, y, 1)`` (pixel
    centres), bilinear, ``fill`` outside the image."""
    c, h, w = img.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    (a, b, tx), (d, e, ty) = matrix
    sx, sy = a * xs + b * ys + tx, d * xs + e * ys + ty
    grid = torch.stack([(sx + 0.5) / w * 2 - 1, (sy + 0.5) / h * 2 - 1], -1)[None]
    src = torch.cat([img.float(), torch.ones(1, h, w)])[None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[0]
    inside = out[-1:]
    fill = torch.as_tensor(fill, dtype=torch.float32).view(-1, 1, 1)
    return (out[:-1] + (1 - inside) * fill).round().clamp(0, 255).to(torch.uint8)


def _rotate(img, m, gen, fill):
    angle = math.radians(_signed(m / 10 * 30.0, gen))
    h, w = img.shape[1:]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = math.cos(angle), math.sin(angle)
    return _affine(img, ((cos, -sin, cx - cos * cx + sin * cy),
                         (sin, cos, cy - sin * cx - cos * cy)), fill)


def _shear(axis):
    def op(img, m, gen, fill):
        s = _signed(m / 10 * 0.3, gen)
        # PIL's affine matrix is in pixel-edge coordinates: about centres it gains s/2.
        return _affine(img, ((1, s, s / 2), (0, 1, 0)) if axis == "x"
                       else ((1, 0, 0), (s, 1, s / 2)), fill)
    return op


def _translate(axis):
    def op(img, m, gen, fill):
        pct = _signed(m / 10 * 0.45, gen)
        h, w = img.shape[1:]
        return _affine(img, ((1, 0, pct * w), (0, 1, 0)) if axis == "x"
                       else ((1, 0, 0), (0, 1, pct * h)), fill)
    return op


def _auto_contrast(img, m, gen, fill):
    """PIL's ``ImageOps.autocontrast`` per channel: ``lo..hi`` stretched to ``0..255``,
    truncated as PIL's table is."""
    x = img.double()
    lo, hi = x.amin((1, 2), keepdim=True), x.amax((1, 2), keepdim=True)
    scale = 255.0 / (hi - lo).clamp(min=1)
    out = torch.floor(x * scale - lo * scale).clamp(0, 255).to(torch.uint8)
    return torch.where(hi > lo, out, img)


def _equalize(img, m, gen, fill):
    """PIL's ``ImageOps.equalize`` per channel."""
    out = []
    for ch in img:
        hist = torch.bincount(ch.flatten().long(), minlength=256)
        last = int(hist[hist.nonzero().max()])
        step = (int(hist.sum()) - last) // 255
        if step == 0:
            out.append(ch)
            continue
        lut = ((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp(max=255)
        out.append(lut[ch.long()].to(torch.uint8))
    return torch.stack(out)


def _invert(img, m, gen, fill):
    return 255 - img


def _posterize(img, m, gen, fill):
    bits = 4 - int(m / 10 * 4)
    if bits >= 8:
        return img
    return img & ((0xFF << (8 - bits)) & 0xFF)


def _solarize(img, m, gen, fill):
    threshold = 256 - int(m / 10 * 256)
    return torch.where(img >= threshold, 255 - img, img)


def _solarize_add(img, m, gen, fill):
    add = int(m / 10 * 110)
    return torch.where(img < 128, (img.int() + add).clamp(max=255).to(torch.uint8), img)


def _enhance(degenerate):
    def op(img, m, gen, fill):
        return _blend(degenerate(img), img, 1.0 + _signed(m / 10 * 0.9, gen))
    return op


def _smooth(img):
    """PIL's ``ImageFilter.SMOOTH`` (kernel 1 1 1 / 1 5 1 / 1 1 1, ÷13); borders kept."""
    kernel = torch.tensor([[1., 1, 1], [1, 5, 1], [1, 1, 1]]) / 13
    c = img.shape[0]
    out = img.float().clone()
    inner = F.conv2d(img.float()[None], kernel.expand(c, 1, 3, 3), groups=c)[0]
    out[:, 1:-1, 1:-1] = inner.round()
    return out


#: The RandAugment operations of timm's ``inc1`` set: name → ``op(img, magnitude, gen, fill)``.
OPERATIONS = {
    "AutoContrast": _auto_contrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Rotate": _rotate,
    "PosterizeIncreasing": _posterize,
    "SolarizeIncreasing": _solarize,
    "SolarizeAdd": _solarize_add,
    "ColorIncreasing": _enhance(lambda img: _gray(img).expand_as(img)),
    "ContrastIncreasing": _enhance(lambda img: torch.floor(_gray(img).mean() + 0.5)),
    "BrightnessIncreasing": _enhance(lambda img: torch.zeros(())),
    "SharpnessIncreasing": _enhance(_smooth),
    "ShearX": _shear("x"),
    "ShearY": _shear("y"),
    "TranslateXRel": _translate("x"),
    "TranslateYRel": _translate("y"),
}
_NAMES = tuple(OPERATIONS)


def rand_augment(img, gen, fill):
    """RandAugment ``rand-m9-n1-mstd0.4-inc1`` on one uint8 image ``[C, H, W]``."""
    op = _NAMES[int(torch.randint(len(_NAMES), (), generator=gen))]
    if _uniform(gen) > _PROB:
        return img
    m = _MAGNITUDE + _MAGNITUDE_STD * float(torch.randn((), generator=gen))
    return OPERATIONS[op](img, min(max(m, 0.0), 10.0), gen, fill)


def paper_images(x, gen, mean):
    """Flip (p 0.5) and RandAugment each image of a uint8 batch ``[B, C, H, W]``.

    ``mean`` is the dataset's per-channel mean in [0, 1]; geometric operations fill with it.
    """
    fill = [min(255, round(255 * v)) for v in mean]
    out = []
    for img in x:
        if _uniform(gen) < 0.5:
            img = img.flip(-1)
        out.append(rand_augment(img, gen, fill))
    return torch.stack(out)


def mixup(x, y, gen, num_classes, smoothing):
    """timm's batch mixup (α 0.5, every batch): each image blended with the batch's mirror
    image (``x.flip(0)``) by one ``λ ~ Beta(α, α)``, rounded to uint8 pixels.

    Returns ``(x_mixed, targets)``: ``targets`` are ``float [B, num_classes]``, the
    label-smoothed one-hot targets blended by the same λ.
    """
    # Beta(1/2, 1/2) is the arcsine law: sin²(πU/2) for uniform U, drawn from ``gen`` (torch's
    # Beta sampler takes no generator).
    lam = math.sin(math.pi * _uniform(gen) / 2) ** 2
    mixed = (x.float() * lam + x.flip(0).float() * (1 - lam)).round().to(torch.uint8)
    off = smoothing / num_classes
    onehot = torch.full((len(y), num_classes), off)
    onehot.scatter_(1, y.long().view(-1, 1), 1.0 - smoothing + off)
    return mixed, onehot * lam + onehot.flip(0) * (1 - lam)

