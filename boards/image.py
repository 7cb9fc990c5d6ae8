"""What the host sends to a board for one model: the load image, its id, the pixel order.

The model id is the first bytes of the SHA-256 of the load image, so it names exactly what is
in the board's memories (the same model compiled for other lanes has another image and id).
"""

import hashlib
from dataclasses import dataclass

from sdtforge.hdl.compile import image_order, load_stream_bytes

from .protocol import MODEL_ID_BYTES

__all__ = ["ModelImage", "model_image"]


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
    """

    load: bytes
    model_id: bytes
    image_bytes: int
    num_classes: int

    def pixels(self, image):
        """uint8 ``[C, H, W]`` (or ``[H, W]``) → the ``CLASSIFY`` payload."""
        data = image_order(image)
        if len(data) != self.image_bytes:
            raise ValueError(f"image of {len(data)} pixels, the model takes {self.image_bytes}")
        return data


def model_image(compiled):
    """The :class:`ModelImage` of a :class:`~sdtforge.hdl.compile.Compiled` model."""
    load = load_stream_bytes(compiled)
    layout = compiled.pixel_layout
    return ModelImage(load=load, model_id=hashlib.sha256(load).digest()[:MODEL_ID_BYTES],
                      image_bytes=layout["height"] * layout["width"] * layout["channels"],
                      num_classes=compiled.num_classes)
