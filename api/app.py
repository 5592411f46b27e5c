"""The HTTP layer: FastAPI app factory and routes. No retrieval logic lives here."""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from lsr import __version__
from lsr.api.schemas import ErrorBody, Health, HitOut, IndexInfo, SearchRequest, SearchResponse
from lsr.errors import LsrError
from lsr.retrieval.search import Searcher

router = APIRouter()


def get_searcher(request: Request) -> Searcher:
    return request.app.state.searcher


# Plain `def` endpoints run in FastAPI's thread pool, keeping model calls off the event loop.
@router.post("/search", response_model=SearchResponse, responses={400: {"model": ErrorBody}})
def search(body: SearchRequest, searcher: Searcher = Depends(get_searcher)) -> SearchResponse:
    mode = body.mode or searcher.default_mode
    fusion = searcher.default_fusion
    if body.fusion is not None:
        fusion = dataclasses.replace(fusion, **body.fusion.model_dump(exclude_none=True))
    started = time.perf_counter()
    hits = searcher.search(body.query, body.k, mode=mode, fusion=fusion)
    took_ms = (time.perf_counter() - started) * 1000
    hits_out = [HitOut(**dataclasses.asdict(hit)) for hit in hits]
    return SearchResponse(query=body.query, k=body.k, mode=mode, hits=hits_out, took_ms=took_ms)


@router.get("/health", response_model=Health)
def health(searcher: Searcher = Depends(get_searcher)) -> Health:
    manifest = searcher.index.manifest
    info = IndexInfo(
        path=str(searcher.index.path),
        doc_count=manifest.doc_count,
        encoder=manifest.encoder.name,
        dense_encoder=manifest.dense_encoder.name if manifest.dense_encoder else None,
        default_mode=searcher.default_mode,
        fusion=searcher.default_fusion.to_dict(),
        engine=manifest.engine,
        created_at=manifest.created_at,
    )
    return Health(status="ok", index=info)


def _user_error(request: Request, exc: LsrError) -> JSONResponse:
    return JSONResponse(status_code=400, content={"detail": str(exc)})


def create_app(searcher: Searcher) -> FastAPI:
    app = FastAPI(title="lsr", version=__version__, description="Learned sparse retrieval search API")
    app.state.searcher = searcher
    app.include_router(router)
    app.add_exception_handler(LsrError, _user_error)
    return app
