"""What the store keeps about each issued version, as values. Touches nothing."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import StoreError
from ..protocol.frozen import frozen

PEM_FILES = ("cert.pem", "chain.pem", "fullchain.pem", "privkey.pem")


@frozen
class VersionMeta:
    """What ``meta.json`` records about one issued version."""

    version: int
    names: tuple[str, ...]
    key_type: str
    serial: int
    not_before: str
    not_after: str
    issuer: str
    aki: str
    issued_at: str
    directory: str
    order_url: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["names"] = list(self.names)
        data["serial"] = f"{self.serial:x}"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> VersionMeta:
        try:
            meta = cls(
                version=int(data["version"]), names=tuple(str(n) for n in data["names"]),
                key_type=str(data["key_type"]), serial=int(str(data["serial"]), 16),
                not_before=str(data["not_before"]), not_after=str(data["not_after"]),
                issuer=str(data["issuer"]), aki=str(data.get("aki", "")),
                issued_at=str(data["issued_at"]), directory=str(data["directory"]),
                order_url=str(data.get("order_url", "")),
            )
            meta.not_before_dt, meta.not_after_dt  # noqa: B018 - damaged times fail here
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{where}: damaged metadata: {exc}") from None
        return meta

    @property
    def not_after_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_after)

    @property
    def not_before_dt(self) -> datetime:
        return datetime.fromisoformat(self.not_before)


@frozen
class StoredCert:
    """The active version of one certificate."""

    name: str
    path: Path
    meta: VersionMeta

    def file(self, pem: str) -> Path:
        return self.path / "versions" / str(self.meta.version) / pem


def ca_id(directory_url: str) -> str:
    """A directory name for one CA: host, port and a short hash of the full URL."""
    parts = urlsplit(directory_url)
    host = (parts.hostname or "ca").replace(":", "_")
    port = f"_{parts.port}" if parts.port else ""
    import hashlib  # noqa: PLC0415 - not for `status` (start-up time)

    digest = hashlib.sha256(directory_url.encode()).hexdigest()[:8]
    return f"{host}{port}-{digest}"
