"""GET /health (liveness and index info), GET /ready (warmed up), GET /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lsr.api.deps import get_service
from lsr.api.schemas import Health, IndexInfo, Ready
from lsr.retrieval.search.live import LiveSearcher

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health)
def health(service: LiveSearcher = Depends(get_service)) -> Health:
    searcher = service.searcher()
    manifest = searcher.index.manifest
    info = IndexInfo(
        path=searcher.index.path.name,  # the folder's name only: where it lives on disk is not a caller's business
        doc_count=manifest.doc_count,
        encoder=manifest.encoder.name,
        dense_encoder=manifest.dense_encoder.name if manifest.dense_encoder else None,
        default_mode=searcher.default_mode,
        fusion=searcher.default_fusion.to_dict(),
        query_idf=searcher.query_idf,
        engine=manifest.engine,
        created_at=manifest.created_at,
    )
    return Health(status="ok", index=info, live_documents=service.view.doc_count, pending_updates=service.live.pending)


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
def ready(request: Request) -> Response:
    """200 once the models have answered a warm-up query; 503 before (load balancers wait for it)."""
    is_ready = request.app.state.ready.is_set()
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request, service: LiveSearcher = Depends(get_service)) -> Response:
    registry = request.app.state.metrics
    registry.documents.set(service.view.doc_count)
    registry.pending.set(service.live.pending)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
