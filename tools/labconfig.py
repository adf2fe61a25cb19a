"""Write a certfleet.toml for a local lab (Pebble and friends). Used by tests, the seed lab
script and the benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, lab: Any, state: Path, domains: Path, *,
                 sections: dict[str, dict[str, Any]] | None = None, **top: Any) -> Path:
    """A certfleet.toml for ``lab`` (a PebbleLab) with the built-in responder."""
    lines = [f"state_dir = {toml_value(str(state))}", f"domains = {toml_value(str(domains))}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in top.items()]
    base = {
        "ca": {"directory": lab.directory_url, "ca_bundle": str(lab.ca_bundle)},
        "challenge": {"http_listen": f"127.0.0.1:{lab.http_port}"},
    }
    for name, values in {**base, **(sections or {})}.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
