"""The HTTP layer: FastAPI app factory, middleware and error handlers. No retrieval logic lives here."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lsr import __version__
from lsr.api.limits import BodySizeLimit
from lsr.api.metrics import Metrics, MetricsMiddleware
from lsr.api.routers import documents, explain, ops, page, search
from lsr.api.settings import Settings
from lsr.api.work import Overloaded, WorkQueue
from lsr.errors import IndexFolderError, LsrError
from lsr.indexer.live import WriterLockError
from lsr.retrieval.live import LiveSearcher
from lsr.retrieval.search import Searcher

WARM_UP_QUERY = "warm up"


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
        status_code=503, content={"detail": "overloaded: too many requests in progress"}, headers={"Retry-After": str(retry_after)}
    )


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with the reasons, as JSON-safe text (pydantic errors can carry raw bytes of a bad body)."""
    errors = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


def create_app(service: LiveSearcher | Searcher, settings: Settings | None = None) -> FastAPI:
    """``settings`` default to the environment (``Settings.from_env``): no LSR_API_KEY means no writes."""
    if isinstance(service, Searcher):
        service = LiveSearcher.from_searcher(service)
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Warm up off the event loop: the first model call is slow; /ready says when it is done.
        threading.Thread(target=_warm_up, args=(app,), daemon=True).start()
        yield
        app.state.queue.close()
        service.live.close()

    app = FastAPI(title="lsr", version=__version__, description="Learned sparse retrieval search API", lifespan=lifespan)
    app.state.service = service
    app.state.settings = settings
    app.state.queue = WorkQueue(settings.workers, settings.max_queue)
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


def _warm_up(app: FastAPI) -> None:
    app.state.service.searcher().search(WARM_UP_QUERY, 1)
    app.state.ready.set()
