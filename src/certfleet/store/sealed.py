"""Private keys as the shared store keeps them: AES-256-GCM under the Work hosts' local key.

Touches nothing. The key is in a local file (``[store] key_file``, 0600) and never enters
the database, so a copy of the database (a backup, a replica, its administrator) holds
no usable private key. The associated data binds each ciphertext to where it belongs
(``cert/<name>/<version>``, ``pending/<name>``, ``account/<ca-id>``): a ciphertext moved
to another row does not decrypt.
"""

from __future__ import annotations

import os

from ..errors import StoreError

MAGIC = b"CF1"
NONCE = 12


def seal(key: bytes, data: bytes, where: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, where.encode())


def unseal(key: bytes, blob: bytes, where: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE + 16:
        raise StoreError(f"{where}: not a sealed key")
    nonce = blob[len(MAGIC):len(MAGIC) + NONCE]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE:], where.encode())
    except InvalidTag:
        raise StoreError(f"{where}: cannot decrypt the private key: this host's key_file "
                         "is not the one it was sealed with (or the row was altered)") from None
