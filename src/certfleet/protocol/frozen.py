"""``@frozen``: a frozen dataclass, made for less of the start-up's time.

Touches nothing. For each frozen class ``dataclasses`` writes the source of six methods and
compiles each one (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``): for the forty-odd classes a certificate's process imports, about 40 ms, a
tenth of ``certfleet issue``. Under ``@frozen`` one is compiled, on the class's first
instance: the ``__init__`` that sets the class's fields (as fast as the generated one, for
the classes made by the thousand; an ``issue`` makes instances of 27 of the 41 it imports).
``dataclasses`` still reads the fields; the other methods are closures over their names,
behaving as the generated ones do (tests/unit/test_frozen.py compares them). What
``dataclasses`` offers (``fields``, ``replace``, ``asdict``, ``field(repr=False)``,
``field(default_factory=...)``, ``FrozenInstanceError``) works on such a class as on any
frozen dataclass. Not supported, and refused when the class is made: ``InitVar``,
``kw_only``, ``field(init=False)``, ``__post_init__``, subclassing a dataclass.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)``; a method the class defines itself is kept."""
    if hasattr(cls, "__post_init__") or any(
            hasattr(base, "__dataclass_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__qualname__}: @frozen has no __post_init__ or dataclass base")
    undocumented = not cls.__doc__
    if undocumented:  # else dataclasses writes one with inspect.signature: 3 ms at start
        cls.__doc__ = cls.__name__
    made: Any = dataclass(init=False, repr=False, eq=False)(cls)  # cls itself: no slots
    every = fields(made)
    if undocumented:
        made.__doc__ = f"{cls.__name__}({', '.join(f'{f.name}: {f.type}' for f in every)})"
    if any(not f.init or f.kw_only is True for f in every) \
            or len(every) != len(made.__dataclass_fields__):  # an InitVar, a ClassVar
        raise TypeError(f"{cls.__qualname__}: @frozen takes plain fields only (no InitVar, "
                        "ClassVar, kw_only or init=False)")
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

    for method in (_first_init(made, every), __eq__, __hash__, __repr__,
                   _refuse_set, _refuse_delete):
        name = method.__name__
        if name not in made.__dict__:
            method.__qualname__ = f"{made.__qualname__}.{name}"
            setattr(made, name, method)
    return cls


def _refuse_set(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


_refuse_set.__name__, _refuse_delete.__name__ = "__setattr__", "__delattr__"

_FACTORY = object()  # the default of a parameter whose field has a default_factory


def _first_init(made: Any, every: tuple[Field[Any], ...]) -> Any:
    """The class's ``__init__`` until its first call, which compiles the real one and puts
    it in its place: a command makes instances of only some of the classes it imports."""
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _init(made.__qualname__, every)
        init.__qualname__ = f"{made.__qualname__}.__init__"
        made.__init__ = init
        init(self, *args, **kwargs)
    return __init__


def _init(owner: str, every: tuple[Field[Any], ...]) -> Any:
    """The ``__init__`` of fields ``every``, compiled, setting each field as a frozen
    dataclass's does (``object.__setattr__``)."""
    env: dict[str, Any] = {"_set": object.__setattr__, "_FACTORY": _FACTORY}
    params, body = ["self"], []
    for f in every:
        if f.default is not MISSING:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
            value = f.name
        elif f.default_factory is not MISSING:
            env[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_FACTORY")
            value = f"_factory_{f.name}() if {f.name} is _FACTORY else {f.name}"
        else:
            params.append(f.name)
            value = f.name
        body.append(f"    _set(self, {f.name!r}, {value})\n")
    source = f"def __init__({', '.join(params)}):\n{''.join(body) or '    pass'}\n"
    exec(compile(source, f"<{owner}.__init__>", "exec"), env)  # noqa: S102 - our own source
    return env["__init__"]


def _getter(names: tuple[str, ...]) -> Any:
    """The values of ``names`` of an object, as a tuple (as the generated methods compare
    and hash them)."""
    if not names:
        return lambda _obj: ()
    if len(names) == 1:  # attrgetter of one name gives the value itself, not a 1-tuple
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)
