"""Service configuration, from environment variables (how docker-compose and systemd configure it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import LsrError


def _number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise LsrError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if not value >= minimum:
        raise LsrError(f"{name} must be ≥ {minimum}, got {value}")
    return value


def _int(name: str, default: int, minimum: int = 1) -> int:
    return int(_number(name, default, int, minimum))


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    return _number(name, default, float, minimum)


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise LsrError(f"{name} must be 1 or 0 (true or false), got {raw!r}")


def _api_key() -> str | None:
    key = os.environ.get("LSR_API_KEY")
    path = os.environ.get("LSR_API_KEY_FILE")
    if key and path:
        raise LsrError("set LSR_API_KEY or LSR_API_KEY_FILE, not both")
    if path:
        try:
            key = Path(path).read_text().strip()
        except OSError as exc:
            raise LsrError(f"LSR_API_KEY_FILE: cannot read {path}: {exc}") from exc
        if not key:
            raise LsrError(f"LSR_API_KEY_FILE: {path} is empty")
    return key or None


@dataclass(frozen=True)
class Settings:
    api_key: str | None = None  # None: write endpoints answer 403, they are never open
    max_body_bytes: int = 1 << 20
    # Threads that run blocking work that needs no model off the event loop (deletes). Searches wait for their batch
    # without a thread (see lsr.api.batching), and model calls run on the one model thread.
    workers: int = 32
    max_queue: int = 64  # requests admitted (running + waiting); more are answered 503
    retry_after_s: int = 1
    batch_window_ms: float = 2.0  # how long a search that starts a batch waits for concurrent ones to join
    max_batch: int = 64  # queries searched together at most
    docs_cdn: bool = False  # /docs as Swagger UI, whose scripts come from a CDN; off: a local page without scripts

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            api_key=_api_key(),
            max_body_bytes=_int("LSR_MAX_BODY_BYTES", cls.max_body_bytes),
            workers=_int("LSR_WORKERS", cls.workers),
            max_queue=_int("LSR_MAX_QUEUE", cls.max_queue),
            retry_after_s=_int("LSR_RETRY_AFTER_S", cls.retry_after_s),
            batch_window_ms=_float("LSR_BATCH_WINDOW_MS", cls.batch_window_ms),
            max_batch=_int("LSR_MAX_BATCH", cls.max_batch),
            docs_cdn=_bool("LSR_DOCS_CDN", cls.docs_cdn),
        )
