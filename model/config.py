"""Configuration of the Spike-Driven Transformer (no torch import, so presets list fast).

:class:`SDTConfig` is plain data; it is stored in every checkpoint as ``dataclasses.asdict`` and
restored with :meth:`SDTConfig.from_dict`.
"""

from dataclasses import dataclass, fields

__all__ = ["SDTConfig", "ENCODINGS"]

#: Input encodings (:attr:`SDTConfig.encoding`).
ENCODINGS = ("direct", "events")


@dataclass(frozen=True)
class SDTConfig:
    """Shape and input normalization of one Spike-Driven Transformer (SDT v1).

    Parameters
    ----------
    in_channels : int
        Input image channels (1 for digits, 3 for CIFAR/ImageNet).
    img_size : tuple of int
        Input ``(height, width)`` in pixels.
    embed_dims : int
        Width ``D`` of the residual stream; the SPS stem stages have ``D/8, D/4, D/2, D``
        channels, so ``D`` must be a multiple of 8 and of ``num_heads``.
    depths : int
        Number of transformer blocks (SDSA + MLP).
    T : int
        Time steps: the static image is repeated ``T`` times (``encoding="direct"``), or the
        input holds ``T`` event frames (``encoding="events"``).
    pooling_stat : str
        Four characters ``"0"``/``"1"``: MaxPool(3, 2, 1) after SPS stage ``i`` when ``"1"``.
    num_classes : int
        Classifier outputs.
    mean, std : tuple of float
        Per input channel normalization in the ``u8/255`` domain: the model computes
        ``(x/255 - mean) / std`` from uint8 pixels. Event input is not normalized (the
        reference feeds event counts as they are): ``mean`` must then be all 0 and ``std``
        all 1.
    num_heads : int
        Attention heads; they only regroup channels, except in ``dvs`` mode, where the
        attention's pools stop at head boundaries.
    mlp_ratio : int
        MLP hidden width is ``mlp_ratio * D``.
    encoding : str
        ``"direct"``: a uint8 image ``[B, C, H, W]``, repeated every time step. ``"events"``:
        event frames ``[B, T, C, H, W]`` (per-polarity event counts per time step,
        :mod:`sdtforge.model.events`), as the reference takes DVS datasets.
    dvs : bool
        The reference's ``dvs_mode``: weight-free 3×3 max-pools (stride 1) inside the
        attention, on K, V, K·V and the masked Q (``docs/model.md``). The reference turns it
        on for CIFAR10-DVS, not for DVS128 Gesture.
    """

    in_channels: int
    img_size: tuple[int, int]
    embed_dims: int
    depths: int
    T: int
    pooling_stat: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_heads: int = 8
    mlp_ratio: int = 4
    encoding: str = "direct"
    dvs: bool = False

    def __post_init__(self):
        # Normalize containers that come back from JSON or torch.load as lists.
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        for name in ("in_channels", "embed_dims", "depths", "T", "num_classes", "num_heads",
                     "mlp_ratio"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SDTConfig.{name} must be a positive integer, not {value!r}")
        if self.mlp_ratio == 1:
            # With hidden == D the reference MLP adds an inner residual around fc1; that
            # variant is not part of the integer contract.
            raise ValueError("SDTConfig.mlp_ratio must be at least 2, not 1 (the reference "
                             "MLP then has an extra inner residual that is not supported)")
        if len(self.img_size) != 2 or min(self.img_size) < 1:
            raise ValueError(f"SDTConfig.img_size must be (height, width), not {self.img_size!r}")
        if self.embed_dims % 8 or self.embed_dims % self.num_heads:
            raise ValueError(f"SDTConfig.embed_dims must be a multiple of 8 and of num_heads "
                             f"({self.num_heads}), not {self.embed_dims!r}")
        if len(self.pooling_stat) != 4 or set(self.pooling_stat) - {"0", "1"}:
            raise ValueError(f"SDTConfig.pooling_stat must be four '0'/'1' characters, "
                             f"not {self.pooling_stat!r}")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != self.in_channels:
                raise ValueError(f"SDTConfig.{name} must have one value per input channel "
                                 f"({self.in_channels}), not {getattr(self, name)!r}")
        if min(self.std) <= 0:
            raise ValueError(f"SDTConfig.std must be positive, not {self.std!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"SDTConfig.encoding must be one of {', '.join(ENCODINGS)}, "
                             f"not {self.encoding!r}")
        if self.encoding == "events" and (set(self.mean) != {0.0} or set(self.std) != {1.0}):
            raise ValueError("SDTConfig with event input is not normalized: mean must be all 0 "
                             f"and std all 1, not {self.mean!r} and {self.std!r}")
        if not isinstance(self.dvs, bool):
            raise ValueError(f"SDTConfig.dvs must be True or False, not {self.dvs!r}")

    @classmethod
    def from_dict(cls, data):
        """Build a config from ``dataclasses.asdict`` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SDTConfig fields {unknown!r}")
        return cls(**data)

    @property
    def token_grid(self):
        """``(h, w)`` of the token grid after the SPS stem's pools."""
        h, w = self.img_size
        for flag in self.pooling_stat:
            if flag == "1":
                h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        return h, w

    @property
    def num_tokens(self):
        """Tokens ``N = h * w`` seen by the transformer blocks."""
        h, w = self.token_grid
        return h * w

    @property
    def num_parameters(self):
        """Trainable parameter count (convs, BN affine, head), computed without torch."""
        d, c = self.embed_dims, self.in_channels
        widths = [c, d // 8, d // 4, d // 2, d]
        n = 0
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            n += 9 * cin * cout + 2 * cout  # conv3x3 (no bias) + BN
        n += 9 * d * d + 2 * d  # rpe
        hidden = self.mlp_ratio * d
        per_block = (3 * (d * d + 2 * d)  # q, k, v: conv1x1 no bias + BN
                     + d * d + d + 2 * d  # attn proj (bias) + BN
                     + d * hidden + hidden + 2 * hidden  # fc1 + BN
                     + hidden * d + d + 2 * d)  # fc2 + BN
        n += self.depths * per_block
        n += d * self.num_classes + self.num_classes
        return n
