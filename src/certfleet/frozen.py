"""``@frozen``: a frozen dataclass, made for less of the start-up's time.

Touches nothing. ``dataclasses`` writes the source of six methods for each frozen class and
compiles each one (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``): for the forty-odd classes a certificate's process imports, about 40 ms,
a tenth of ``certfleet issue``. Under ``@frozen``, ``dataclasses`` compiles only what must
be compiled for each class (the ``__init__`` that sets its fields, and the two methods
that keep it frozen); ``__eq__``, ``__hash__`` and ``__repr__`` are closures over the
names of its fields, behaving as the generated ones do. Everything ``dataclasses`` offers
(``fields``, ``replace``, ``asdict``, ``field(repr=False)``, ``FrozenInstanceError``)
works on such a class as on any frozen dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)``, with equality, hash and repr as closures over the field
    names: no source compiled for them. A method the class defines itself is kept."""
    made: Any = dataclass(frozen=True, eq=False, repr=False)(cls)  # cls itself (no slots)
    every = fields(made)
    compared = _getter(tuple(f.name for f in every if f.compare))
    hashed = _getter(tuple(f.name for f in every if (f.compare if f.hash is None else f.hash)))
    shown = tuple(f.name for f in every if f.repr)

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return bool(compared(self) == compared(other))

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{self.__class__.__qualname__}({inner})"

    for method in (__eq__, __hash__, __repr__):
        if method.__name__ not in made.__dict__:
            method.__qualname__ = f"{made.__qualname__}.{method.__name__}"
            setattr(made, method.__name__, method)
    return cls


def _getter(names: tuple[str, ...]) -> Any:
    """The values of ``names`` of an object, as a tuple (as the generated methods compare
    and hash them)."""
    if not names:
        return lambda _obj: ()
    if len(names) == 1:  # attrgetter of one name gives the value itself, not a 1-tuple
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)
