"""base64url without padding (RFC 8555 §6.1, RFC 7515 §2). Touches nothing."""

from __future__ import annotations

import base64
import binascii
import re

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raise ``ValueError`` on anything else."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def is_b64url(text: str) -> bool:
    """True if ``text`` is non-empty unpadded base64url."""
    return bool(text) and _B64URL.fullmatch(text) is not None


def int_to_b64url(value: int, length: int | None = None) -> str:
    """Big-endian unsigned encoding of an integer (JWK ``n``, ``e``, ``x``, ``y``)."""
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(size, "big"))
