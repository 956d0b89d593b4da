"""Shared base of detectors: river-style parameters, ``clone`` and ``params``.

The constructor of every detector stores only its settings, under the argument
names; learned state is initialised by :meth:`Detector._reset` (called from
``__init__``). ``clone()`` therefore returns a fresh, unlearned detector with the
same parameters, and ``params()`` round-trips through the constructor.
"""

from __future__ import annotations

import inspect
from typing import Any, Self

__all__ = ["Detector"]


class Detector:
    """Base class: parameters in ``__init__`` arguments, state in :meth:`_reset`."""

    def params(self) -> dict[str, Any]:
        """The constructor arguments of this detector (its settings, not its state)."""
        sig = inspect.signature(type(self).__init__)
        return {name: getattr(self, name) for name in sig.parameters if name != "self"}

    def clone(self) -> Self:
        """A fresh detector with the same parameters and no learned state."""
        return type(self)(**self.params())

    def _reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"
