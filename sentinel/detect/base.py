"""Shared base of detectors: river-style parameters, ``clone`` and ``params``.

The constructor of every detector stores only its settings, under the argument
names; learned state is initialised by :meth:`Detector._reset` (called from
``__init__``). ``clone()`` therefore returns a fresh, unlearned detector with the
same parameters, and ``params()`` round-trips through the constructor.

Settings sections name their keys after these parameters, so a section configures a
detector directly (:func:`reconfigured`). ``STRUCTURE`` lists the parameters that shape
the learned state (a sketch's quantile, a tree's height): changing one needs a new
detector; the others change in place and learning goes on.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Self, TypeVar

__all__ = ["Detector", "reconfigured"]


_PARAM_NAMES: dict[type, tuple[str, ...]] = {}


def _param_names(cls: type) -> tuple[str, ...]:
    """The constructor's parameter names (cached per class)."""
    names = _PARAM_NAMES.get(cls)
    if names is None:
        names = _PARAM_NAMES[cls] = tuple(inspect.signature(cls).parameters)
    return names


class Detector:
    """Base class: parameters in ``__init__`` arguments, state in :meth:`_reset`."""

    STRUCTURE: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, values: Mapping[str, Any]) -> Self:
        """A new detector from the constructor parameters that ``values`` names (other keys are ignored)."""
        return cls(**{name: values[name] for name in _param_names(cls) if name in values})

    def params(self) -> dict[str, Any]:
        """The constructor arguments of this detector (its settings, not its state)."""
        return {name: getattr(self, name) for name in _param_names(type(self))}

    def set_params(self, values: Mapping[str, Any]) -> None:
        """Set every constructor parameter that ``values`` names (other keys are ignored); learned state is kept.

        ``dict(settings_section)`` works: the settings sections use the parameters' names.
        """
        for name in _param_names(type(self)):
            if name in values:
                setattr(self, name, values[name])
        self._configure()

    def _configure(self) -> None:
        """Bring state derived from the parameters (a nested sketch's rate, a table's size) in line
        with them after :meth:`set_params`; learned values are kept where the shape allows."""

    def clone(self) -> Self:
        """A fresh detector with the same parameters and no learned state."""
        return type(self)(**self.params())

    def _reset(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


D = TypeVar("D", bound=Detector)


def reconfigured(det: Detector | None, cls: type[D], values: Mapping[str, Any]) -> D:
    """``det`` with ``values`` applied in place, or a new ``cls`` if ``det`` is missing, of another
    type, or differs in a ``STRUCTURE`` parameter."""
    if type(det) is cls and all(getattr(det, k) == values[k] for k in cls.STRUCTURE if k in values):
        assert isinstance(det, cls)
        det.set_params(values)
        return det
    return cls.from_params(values)
