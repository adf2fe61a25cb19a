"""An account session at one CA, shared by issuance, registration and revocation.

Touches nothing: it holds the client, the key holder and the account URL, and turns CA
answers into parsed messages (a malformed one becomes a ``ProtocolError`` naming its URL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .account_key import AccountKey
from .acme_client import AcmeClient, Response, Signer
from .errors import ProtocolError, safe_text
from .protocol.messages import MalformedMessage

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass
class Session:
    """An account at one CA: the client, the key holder and the account URL (``kid``)."""

    client: AcmeClient
    key: AccountKey
    kid: str
    sleep: Sleep = field(default=asyncio.sleep)
    validation_timeout: float = 300.0
    clock: Clock = field(default=time.monotonic)  # what the validation deadline is read on
    orders_placed: int = 0     # new orders the CA took in this run (for the order ledger)

    def signer(self) -> Signer:
        key, kid = self.key, self.kid
        return lambda url, nonce, payload: key.sign(url, nonce, payload, kid=kid)


def parse_response(parse: Callable[[Any], T], response: Response) -> T:
    try:
        return parse(response.json())
    except MalformedMessage as exc:
        raise ProtocolError(f"{safe_text(response.url)}: {exc}") from None


