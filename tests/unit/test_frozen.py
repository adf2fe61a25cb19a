"""``@frozen`` behaves as ``@dataclass(frozen=True)``: the same equality, hash, repr and
frozenness, field by field, for the options the code uses and those it may."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from certfleet.frozen import frozen


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
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.port = 80
    with pytest.raises(dataclasses.FrozenInstanceError):
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
    assert hash(Shown("x")) == hash(Shown("x"))
    assert Empty() == Empty()
    assert hash(Empty()) == hash(())
