"""What the host sends to a board for one model: the load image, its id, the pixel order.

The model id is the first bytes of the SHA-256 of the load image, so it names exactly what is
in the board's memories (the same model compiled for other lanes has another image and id).
The configuration digest names the hardware configuration a model was compiled for; a board
reports its bitstream's in ``INFO``, and a host loads a model only where the two are equal.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from sdtforge.errors import UserError
from sdtforge.hdl.accel_config import ENGINE_FIELDS
from sdtforge.hdl.accel_isa import RECORD_HEADER_BYTES
from sdtforge.hdl.compile import MEMORIES, image_order, load_stream_bytes

from .protocol import DIGEST_BYTES, MAX_PAYLOAD, MODEL_ID_BYTES, sum16

__all__ = ["ModelImage", "model_image", "config_digest", "max_load_bytes"]


#: ``AccelConfig`` fields added after the first boards were built, with the value that gives
#: the hardware those boards have: a configuration at that value leaves the field out of its
#: digest, so the boards built before it keep theirs.
_ADDED_FIELDS = {"weight_tile_rows": 0, "weight_window": 0, "event_frames": 0,
                 "dvs_head_channels": 0, "sdsa_or": 0, "pool_or": 1}


def config_digest(config):
    """``DIGEST_BYTES`` naming an :class:`~sdtforge.hdl.compile.AccelConfig`.

    The first bytes of the SHA-256 of its JSON, less ``external_weights`` and the
    :data:`~sdtforge.hdl.accel_config.ENGINE_FIELDS` (where the weights live, how many rows a
    cycle reads and how many cycles a read takes do not change what a model compiles to) and
    less each field of
    :data:`_ADDED_FIELDS` at its value from before it existed (a ``weight_tile_rows``,
    ``weight_window``, ``event_frames``, ``dvs_head_channels`` or ``sdsa_or`` of 0, a
    ``pool_or`` of 1): the configurations made before they existed keep their digest. A
    lane-serial write-back's configuration (``writeback_cycles`` over 1) is marked as having
    bias and threshold rows of one write-back chunk (``AccelConfig.chunk_lanes``) and the
    biases in the write-back: the boards built before that change had the same fields with
    ``P``-lane rows, and load no image made since.
    """
    fields = dataclasses.asdict(config)
    fields.pop("external_weights")
    for name in ENGINE_FIELDS:
        fields.pop(name)
    for name, before in _ADDED_FIELDS.items():
        if fields[name] == before:
            fields.pop(name)
    if config.writeback_cycles > 1:
        fields["param_rows"] = "chunk"
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).digest()[:DIGEST_BYTES]


def max_load_bytes(config):
    """The longest load stream ``config`` can take: one whole record per loadable memory."""
    return sum(RECORD_HEADER_BYTES + config.depth(name) * ((config.row_bits(name) + 7) // 8)
               for name, target in MEMORIES if target is not None)


@dataclass(frozen=True)
class ModelImage:
    """A compiled model as the host link sees it.

    Attributes
    ----------
    load : bytes
        The accelerator's load stream.
    model_id : bytes
        ``MODEL_ID_BYTES`` identifying ``load``.
    image_bytes, num_classes : int
        ``CLASSIFY`` payload size and logits per result.
    config_digest : bytes
        :func:`config_digest` of the configuration the model was compiled for.
    """

    load: bytes
    model_id: bytes
    image_bytes: int
    num_classes: int
    config_digest: bytes

    @property
    def sum16(self):
        """The byte sum of ``load`` modulo 2^16 (what ``LOAD_END`` checks)."""
        return sum16(self.load)

    def pixels(self, image):
        """uint8 ``[C, H, W]`` (or ``[H, W]``; an event model's ``[T, C, H, W]``) → the
        ``CLASSIFY`` payload."""
        data = image_order(image)
        if len(data) != self.image_bytes:
            raise ValueError(f"image of {len(data)} pixels, the model takes {self.image_bytes}")
        return data


def model_image(compiled):
    """The :class:`ModelImage` of a :class:`~sdtforge.hdl.compile.Compiled` model."""
    layout = compiled.pixel_layout
    image_bytes = layout["frames"] * layout["height"] * layout["width"] * layout["channels"]
    if image_bytes > MAX_PAYLOAD:
        raise UserError(f"the model's input is {image_bytes} bytes per sample "
                        f"({layout['frames']} frame(s) of {layout['channels']}×"
                        f"{layout['height']}×{layout['width']}); one board-link frame carries "
                        f"at most {MAX_PAYLOAD}")
    load = load_stream_bytes(compiled)
    return ModelImage(load=load, model_id=hashlib.sha256(load).digest()[:MODEL_ID_BYTES],
                      image_bytes=image_bytes,
                      num_classes=compiled.num_classes,
                      config_digest=config_digest(compiled.config))
