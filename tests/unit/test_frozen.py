"""``@frozen`` behaves as ``@dataclass(frozen=True)``: the same equality, hash, repr and
frozenness, field by field, for the options the code uses and those it may."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

import pytest

from certfleet.protocol import frozen as frozen_module
from certfleet.protocol.frozen import frozen


def _pair() -> tuple[type, type]:
    def body() -> dict[str, object]:
        return {"__annotations__": {"name": "str", "port": "int", "secret": "str | None",
                                    "note": "str", "cache": "int"},
                "port": 443, "secret": field(default=None, repr=False),
                "note": field(default="", compare=False),
                "cache": field(default=0, hash=False)}
    ours = frozen(type("Target", (), body()))
    theirs = dataclass(frozen=True)(type("Target", (), body()))
    return ours, theirs


VALUES = [("a.example", 443, None, "", 0), ("a.example", 443, "s3cret", "x", 1),
          ("b.example", 8443, None, "", 0), ("a.example", 443, None, "other", 0),
          ("a.example", 443, None, "", 7)]


def test_equality_hash_and_repr_are_the_dataclass_ones() -> None:
    ours, theirs = _pair()
    for left in VALUES:
        assert repr(ours(*left)) == repr(theirs(*left))
        assert "s3cret" not in repr(ours(*left))  # a field(repr=False) is never shown
        assert hash(ours(*left)) == hash(theirs(*left))
        for right in VALUES:
            assert (ours(*left) == ours(*right)) == (theirs(*left) == theirs(*right))
            assert (ours(*left) != ours(*right)) == (theirs(*left) != theirs(*right))
    assert ours(*VALUES[0]) != theirs(*VALUES[0])  # another class is never equal
    assert ours(*VALUES[0]).__eq__(object()) is NotImplemented


def test_frozen_fields_replace_and_a_method_of_its_own() -> None:
    ours, _ = _pair()
    target = ours("a.example")
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"^cannot assign to field 'port'$"):
        target.port = 80
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"^cannot delete field 'port'$"):
        del target.port
    assert dataclasses.replace(target, port=80).port == 80
    assert [f.name for f in dataclasses.fields(target)] == ["name", "port", "secret", "note",
                                                            "cache"]
    assert dataclasses.asdict(target)["port"] == 443

    @frozen
    class Shown:
        name: str

        def __repr__(self) -> str:
            return "<shown>"

    @frozen
    class Empty:
        pass

    assert repr(Shown("x")) == "<shown>"
    assert Shown("x") == Shown("x")
    assert Shown("x") != Shown("y")  # one field: compared as a 1-tuple, as dataclass does
    assert hash(Shown("x")) == hash(("x",))
    assert Empty() == Empty()
    assert hash(Empty()) == hash(())


def test_a_class_without_a_docstring_gets_one_without_inspect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_signature(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("inspect.signature called")  # ~3 ms at start-up, tokenizing

    _, theirs = _pair()
    monkeypatch.setattr(inspect, "signature", no_signature)
    ours = frozen(type("Target", (), {"__annotations__": theirs.__annotations__}))
    assert ours.__doc__ == "Target(name: str, port: int, secret: str | None, note: str, " \
        "cache: int)"

    @frozen
    class Documented:
        """Its own words."""
        name: str

    assert Documented.__doc__ == "Its own words."


def test_the_init_is_the_dataclass_one() -> None:
    """Positional and keyword arguments, defaults, a fresh default_factory value for each
    instance, and the same TypeError for a missing or unknown argument."""
    def body() -> dict[str, object]:
        return {"__annotations__": {"name": "str", "tags": "list[str]", "port": "int"},
                "tags": field(default_factory=list), "port": 443}
    ours = frozen(type("Spec", (), body()))
    theirs = dataclass(frozen=True)(type("Spec", (), body()))
    for args, kwargs in (((), {"name": "a"}), (("a", ["x"], 80), {}), (("a",), {"port": 1}),
                         (("a",), {"tags": ["y"]})):
        assert repr(ours(*args, **kwargs)) == repr(theirs(*args, **kwargs))
    assert ours("a").tags is not ours("a").tags  # not one shared list
    assert ours.port == theirs.port == 443  # the default stays a class attribute
    for args, kwargs in (((), {}), (("a",), {"bogus": 1}), (("a", [], 1, 2), {})):
        with pytest.raises(TypeError):
            theirs(*args, **kwargs)
        with pytest.raises(TypeError):
            ours(*args, **kwargs)


def test_the_init_is_compiled_on_the_first_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """A class never instantiated costs no compile; the first instance compiles the
    ``__init__`` and puts it in the class, for every later one (and a subclass's)."""
    compiled: list[str] = []
    real = frozen_module._init

    def counting(owner: str, every: Any) -> Any:
        compiled.append(owner)
        return real(owner, every)

    monkeypatch.setattr(frozen_module, "_init", counting)
    ours, theirs = _pair()
    assert compiled == []
    placeholder = ours.__init__
    first = ours("a.example", 80)
    assert compiled == ["Target"]
    assert ours.__init__ is not placeholder
    assert ours.__init__.__qualname__ == "Target.__init__"
    assert repr(ours("b.example", port=8443)) == repr(theirs("b.example", port=8443))
    assert repr(first) == repr(theirs("a.example", 80))
    assert compiled == ["Target"]

    class Sub(ours):  # type: ignore[valid-type, misc]
        pass

    assert Sub("c.example").name == "c.example"
    assert compiled == ["Target"]
    fresh, _ = _pair()
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
        fresh()  # a first call with wrong arguments says what the compiled one says
    assert fresh("d.example").port == 443


def test_a_copy_and_a_pickle_are_equal() -> None:
    import copy
    import pickle

    from certfleet.spec import Target

    target = Target(host="web1", path="/srv/certs")
    assert copy.copy(target) == target
    assert copy.deepcopy(target) == target
    assert pickle.loads(pickle.dumps(target)) == target


def test_what_it_does_not_support_is_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="__post_init__"):
        @frozen
        class Checked:
            name: str

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError, match="plain fields only"):
        @frozen
        class Derived:
            name: str = field(default="", init=False)
