"""Dependencies shared by the routers: the service, settings, the work queue, and the write key check.

The lookups are ``async def``: FastAPI runs a plain ``def`` dependency on its thread pool, a thread round trip
(~0.1–0.15 ms per dependency in a FastAPI probe here) per request for reading an attribute."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from lsr.api.batching import Batcher
from lsr.api.settings import Settings
from lsr.api.work import WorkQueue
from lsr.retrieval.search.live import LiveSearcher

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="required by write endpoints")


async def get_service(request: Request) -> LiveSearcher:
    return request.app.state.service


async def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_queue(request: Request) -> WorkQueue:
    return request.app.state.queue


async def require_api_key(key: str | None = Security(_api_key_header), settings: Settings = Depends(get_settings)) -> None:
    """No key configured means writes are disabled (403), never open; a wrong or missing key is 401."""
    if settings.api_key is None:
        raise HTTPException(403, "writes disabled: the server has no API key (set LSR_API_KEY or LSR_API_KEY_FILE)")
    if key is None or not hmac.compare_digest(key.encode(), settings.api_key.encode()):
        raise HTTPException(401, "a valid X-API-Key header is required for writes", headers={"WWW-Authenticate": "X-API-Key"})
