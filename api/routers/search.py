"""POST /search and POST /search/batch."""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Depends

from lsr.api.deps import get_queue, get_service
from lsr.api.routers.explain import explanation_out
from lsr.api.schemas import BatchSearchRequest, BatchSearchResponse, ErrorBody, HitOut, SearchRequest, SearchResponse
from lsr.api.work import WorkQueue
from lsr.retrieval.search.explain import explain
from lsr.retrieval.search.live import LiveSearcher
from lsr.retrieval.search import Searcher

router = APIRouter(tags=["search"])
ERRORS = {400: {"model": ErrorBody}, 503: {"model": ErrorBody}}


def _run(service: LiveSearcher, body: SearchRequest | BatchSearchRequest, queries: list[str]) -> list[SearchResponse]:
    searcher: Searcher = service.searcher(filter=body.filter)  # one snapshot for the whole request
    mode = body.mode or searcher.default_mode
    fusion = searcher.default_fusion
    if body.fusion is not None:
        fusion = fusion.changed(**body.fusion.model_dump(exclude_none=True))
    started = time.perf_counter()
    ranked = searcher.search_many(queries, body.offset + body.k, mode=mode, fusion=fusion)
    took_ms = (time.perf_counter() - started) * 1000
    responses = []
    for query, hits in zip(queries, ranked, strict=True):
        page = hits[body.offset :]
        hits_out = [HitOut(**dataclasses.asdict(hit)) for hit in page]
        if getattr(body, "explain", False) and page:
            for hit, explanation in zip(hits_out, explain(searcher, query, [hit.id for hit in page]), strict=True):
                hit.explanation = explanation_out(explanation)
        responses.append(SearchResponse(query=query, k=body.k, offset=body.offset, mode=mode, hits=hits_out, took_ms=took_ms))
    return responses


@router.post("/search", response_model=SearchResponse, responses=ERRORS)
async def search(
    body: SearchRequest, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> SearchResponse:
    """Ranked hits for one query; `filter` restricts them to documents whose metadata matches."""
    return (await queue.run(_run, service, body, [body.query]))[0]


@router.post("/search/batch", response_model=BatchSearchResponse, responses=ERRORS)
async def search_batch(
    body: BatchSearchRequest, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> BatchSearchResponse:
    """Several queries with the same settings, encoded and searched as one batch."""
    started = time.perf_counter()
    results = await queue.run(_run, service, body, body.queries)
    return BatchSearchResponse(results=results, took_ms=(time.perf_counter() - started) * 1000)
