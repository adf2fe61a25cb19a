"""store/sealed.py: a private key sealed for the shared store opens only with the Work
hosts' key and only where it was sealed for; anything else is a one-line StoreError."""

from __future__ import annotations

import os

import pytest

from certfleet.errors import StoreError
from certfleet.store.sealed import MAGIC, NONCE, seal, unseal

KEY = bytes(range(32))
PEM = b"-----BEGIN PRIVATE KEY-----\nMIG...\n-----END PRIVATE KEY-----\n"


def test_a_sealed_key_opens_where_it_was_sealed() -> None:
    blob = seal(KEY, PEM, "cert/example.org/3")
    assert blob.startswith(MAGIC)
    assert PEM not in blob
    assert len(blob) == len(MAGIC) + NONCE + len(PEM) + 16  # the nonce, then data and tag
    assert unseal(KEY, blob, "cert/example.org/3") == PEM


def test_each_seal_has_its_own_nonce() -> None:
    one, two = seal(KEY, PEM, "pending/a"), seal(KEY, PEM, "pending/a")
    assert one[len(MAGIC):len(MAGIC) + NONCE] != two[len(MAGIC):len(MAGIC) + NONCE]
    assert unseal(KEY, one, "pending/a") == unseal(KEY, two, "pending/a") == PEM


@pytest.mark.parametrize(("key", "where"), [
    (bytes(32), "cert/example.org/3"),       # another host's key_file
    (KEY, "cert/example.org/4"),             # a row moved to another version
    (KEY, "account/other"),
])
def test_another_key_or_another_place_does_not_open(key: bytes, where: str) -> None:
    blob = seal(KEY, PEM, "cert/example.org/3")
    with pytest.raises(StoreError, match=rf"^{where}: cannot decrypt the private key: this "
                       "host's key_file is not the one it was sealed with"):
        unseal(key, blob, where)


def test_an_altered_row_does_not_open() -> None:
    blob = bytearray(seal(KEY, PEM, "account/x"))
    blob[len(MAGIC) + NONCE + 3] ^= 1
    with pytest.raises(StoreError, match="cannot decrypt"):
        unseal(KEY, bytes(blob), "account/x")


@pytest.mark.parametrize("blob", [
    b"", b"CF1", PEM,                                   # nothing, the magic alone, plain PEM
    MAGIC + os.urandom(NONCE + 15),                     # one byte short of a tag
    b"CF2" + os.urandom(NONCE + 40),                    # another format
], ids=["empty", "magic", "plain-pem", "short", "other-format"])  # no key text in test ids
def test_what_is_not_a_sealed_key_is_named(blob: bytes) -> None:
    with pytest.raises(StoreError, match=r"^pending/a: not a sealed key$"):
        unseal(KEY, blob, "pending/a")


def test_the_shortest_sealed_key_is_an_empty_one() -> None:
    blob = seal(KEY, b"", "pending/a")
    assert len(blob) == len(MAGIC) + NONCE + 16
    assert unseal(KEY, blob, "pending/a") == b""
