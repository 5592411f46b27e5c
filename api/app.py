"""The HTTP layer: FastAPI app factory, middleware and error handlers. No retrieval logic lives here."""

from __future__ import annotations

import functools
import html
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from lsr import __version__
from lsr.api.batching import Batcher
from lsr.api.limits import BodySizeLimit
from lsr.api.metrics import Metrics, MetricsMiddleware
from lsr.api.routers import documents, explain, ops, page, search
from lsr.api.routers.search import search_together
from lsr.api.settings import Settings
from lsr.api.work import ModelThread, Overloaded, WorkQueue
from lsr.errors import IndexFolderError, LsrError
from lsr.indexer.live import WriterLockError
from lsr.retrieval.search import LiveSearcher

WARM_UP_QUERY = "warm up"
log = logging.getLogger(__name__)


def _user_error(request: Request, exc: LsrError) -> JSONResponse:
    return JSONResponse(status_code=400, content={"detail": str(exc)})


def _writer_locked(request: Request, exc: WriterLockError) -> JSONResponse:
    """This server cannot write the index (another process holds its write lock): a conflict, not a bad request."""
    return JSONResponse(status_code=409, content={"detail": _without_paths(request, str(exc))})


def _damaged(request: Request, exc: IndexFolderError) -> JSONResponse:
    """The served index is damaged: the server's fault, not the request's."""
    return JSONResponse(status_code=500, content={"detail": f"the index cannot be read: {_without_paths(request, str(exc))}"})


def _without_paths(request: Request, message: str) -> str:
    """Messages name the index by its folder name only: where it lives on disk is not the caller's business."""
    path = request.app.state.service.live.path
    for prefix in {str(path.resolve().parent), str(path.parent)}:
        if prefix not in ("", "."):
            message = message.replace(prefix + "/", "")
    return message


def _overloaded(request: Request, exc: Overloaded) -> JSONResponse:
    request.app.state.metrics.overloaded.inc()
    retry_after = request.app.state.settings.retry_after_s
    return JSONResponse(
        status_code=503,
        content={"detail": "overloaded: too many requests in progress"},
        headers={"Retry-After": str(retry_after)},
    )


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the reasons, as JSON-safe text (pydantic errors can carry raw bytes of a bad body)."""
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


def create_app(service: LiveSearcher, settings: Settings | None = None, model: ModelThread | None = None) -> FastAPI:
    """``settings`` default to the environment (``Settings.from_env``): no LSR_API_KEY means no writes. ``model``:
    the thread that opened ``service`` (see ``ModelThread``; a new one by default)."""
    settings = settings or Settings.from_env()
    model = model or ModelThread()
    if settings.api_key is None:  # writes are disabled (403): leave the index's write lock to a server that writes
        service.live.release_write_lock("writes are disabled on this server (no API key)")
    elif not service.live.writable:
        log.warning(
            "%s: serving read-only, writes will be answered 409 (another process holds the write lock)", service.live.path
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Warm up off the event loop: the first model call is slow; /ready says when it is done.
        threading.Thread(target=_warm_up, args=(app,), daemon=True).start()
        yield
        app.state.queue.close()
        service.live.close()

    # FastAPI's /docs and /redoc load their scripts from a CDN: only when asked (LSR_DOCS_CDN=1).
    cdn = settings.docs_cdn
    app = FastAPI(
        title="lsr",
        version=__version__,
        description="Learned sparse retrieval search API",
        lifespan=lifespan,
        docs_url="/docs" if cdn else None,
        redoc_url="/redoc" if cdn else None,
    )
    if not cdn:
        app.add_api_route("/docs", lambda: _local_docs(app), include_in_schema=False, response_class=HTMLResponse)
    app.state.service = service
    app.state.settings = settings
    app.state.queue = WorkQueue(settings.workers, settings.max_queue, model)
    app.state.batcher = Batcher(
        functools.partial(search_together, service),
        start=model.submit,
        window_s=settings.batch_window_ms / 1000,
        max_batch=settings.max_batch,
    )
    app.state.metrics = Metrics()
    app.state.ready = threading.Event()
    for module in (search, explain, documents, ops, page):
        app.include_router(module.router)
    app.add_exception_handler(LsrError, _user_error)
    app.add_exception_handler(WriterLockError, _writer_locked)
    app.add_exception_handler(IndexFolderError, _damaged)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def _local_docs(app: FastAPI) -> HTMLResponse:
    """The API's endpoints from its OpenAPI schema, as a page that loads nothing from anywhere."""
    rows = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            summary = operation.get("summary", "")
            description = operation.get("description", "")
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td><b>{html.escape(summary)}</b><br>{html.escape(description)}</td></tr>"
            )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(app.title)} API</title></head><body>"
        f"<h1>{html.escape(app.title)} API {html.escape(app.version)}</h1>"
        "<p>The machine-readable schema is <a href='/openapi.json'>/openapi.json</a>. The interactive Swagger UI "
        "(its scripts come from a CDN) is served when the server runs with <code>LSR_DOCS_CDN=1</code>.</p>"
        f"<table border='1' cellpadding='4'>{''.join(rows)}</table></body></html>"
    )
    return HTMLResponse(body)


def _warm_up(app: FastAPI) -> None:
    app.state.queue.model.call(lambda: app.state.service.searcher().search(WARM_UP_QUERY, 1))
    app.state.ready.set()
