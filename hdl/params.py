"""Parameter checks shared by the ``hdl`` units: one-line errors naming the parameter."""

__all__ = ["check_positive", "check_pow2"]


def check_positive(name, value):
    """Raise unless ``value`` is an ``int`` (not a ``bool``) of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def check_pow2(name, value):
    """Raise unless ``value`` is a positive power of two (an ``int``)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a positive power of two, not {value!r}")
