"""Per-pass registries of layer-kind handlers.

Every pass of the flow — quantize, IR record, golden model, compile, cycle model — keeps one
:class:`Registry`: a table from a layer kind (``"conv1x1"``, ``"sdsa"`` …) to the function (or
class) that handles that kind in the pass, filled by a decorator next to the handler::

    COMPILERS = Registry("compile")

    @COMPILERS.register("conv1x1")
    def _conv1x1(builder, layer):
        ...

A pass looks its handler up by kind (``COMPILERS[layer.KIND]``); a kind without a handler is a
:class:`~sdtforge.errors.UserError` naming the pass and the kinds it knows. Adding a layer kind
is one handler per pass in the pass's own module (``docs/extending.md`` lists the files), and
``tests/test_kinds.py`` checks that every kind the IR knows has a handler in every pass.
"""

from sdtforge.errors import UserError

__all__ = ["Registry"]


class Registry:
    """The handlers of one pass, one per layer kind.

    Parameters
    ----------
    name : str
        The pass, for messages (``"golden model"``).
    """

    def __init__(self, name):
        self.name = name
        self._handlers = {}

    def register(self, *kinds):
        """Decorator: register the decorated object as the handler of each of ``kinds``.

        Registering a kind twice is a programming error (:class:`ValueError`): a pass has one
        handler per kind.
        """
        if not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise TypeError(f"{self.name}: register() needs one or more kind names")

        def decorate(handler):
            for kind in kinds:
                if kind in self._handlers:
                    raise ValueError(f"{self.name}: layer kind {kind!r} is registered twice")
                self._handlers[kind] = handler
            return handler
        return decorate

    def __getitem__(self, kind):
        try:
            return self._handlers[kind]
        except KeyError:
            raise UserError(f"the {self.name} pass has no handler for layer kind {kind!r} "
                            f"(it knows {', '.join(sorted(self._handlers)) or 'none'})") from None

    def __contains__(self, kind):
        return kind in self._handlers

    def __iter__(self):
        return iter(self._handlers)

    def __len__(self):
        return len(self._handlers)

    def kinds(self):
        """The registered kinds, in registration order."""
        return tuple(self._handlers)

    def items(self):
        """``(kind, handler)`` pairs, in registration order."""
        return self._handlers.items()

    def __repr__(self):
        return f"Registry({self.name!r}, {list(self._handlers)})"
