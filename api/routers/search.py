"""POST /search (batched with concurrent requests, see ``lsr.api.batching``) and POST /search/batch."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

from fastapi import APIRouter, Depends

from lsr.api.batching import Batcher
from lsr.api.deps import get_batcher, get_queue, get_service
from lsr.api.routers.explain import explanation_out
from lsr.api.schemas import BatchSearchRequest, BatchSearchResponse, ErrorBody, HitOut, SearchRequest, SearchResponse
from lsr.api.work import WorkQueue
from lsr.retrieval.search import Hit, LiveSearcher, Searcher
from lsr.retrieval.search.explain import explain

router = APIRouter(tags=["search"])
ERRORS = {400: {"model": ErrorBody}, 503: {"model": ErrorBody}}


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """What the queries of one ``search_many`` call share; requests with equal settings are searched together."""

    filter: str  # JSON, keys sorted ("null": none)
    mode: str | None
    fusion: str  # JSON of the fusion settings the request overrides
    depth: int

    @classmethod
    def of(cls, body: SearchRequest | BatchSearchRequest) -> SearchSettings:
        fusion = body.fusion.model_dump(exclude_none=True) if body.fusion is not None else {}
        return cls(json.dumps(body.filter, sort_keys=True), body.mode, json.dumps(fusion, sort_keys=True), body.offset + body.k)


@dataclasses.dataclass(frozen=True)
class Searched:
    searcher: Searcher  # the snapshot the hits come from: explanations read the same one
    mode: str
    hits: list[Hit]
    took_ms: float


def search_together(service: LiveSearcher, settings: SearchSettings, queries: list[str]) -> list[Searched]:
    searcher = service.searcher(filter=json.loads(settings.filter))  # one snapshot for all these queries
    mode = settings.mode or searcher.default_mode
    fusion = searcher.fusion_for(mode, json.loads(settings.fusion))
    started = time.perf_counter()
    ranked = searcher.search_many(queries, settings.depth, mode=mode, fusion=fusion)
    took_ms = (time.perf_counter() - started) * 1000
    return [Searched(searcher, mode, hits, took_ms) for hits in ranked]


def _response(body: SearchRequest | BatchSearchRequest, query: str, searched: Searched) -> SearchResponse:
    page = searched.hits[body.offset :]
    hits_out = [HitOut(**dataclasses.asdict(hit)) for hit in page]
    if getattr(body, "explain", False) and page:
        for hit, explanation in zip(hits_out, explain(searched.searcher, query, [hit.id for hit in page]), strict=True):
            hit.explanation = explanation_out(explanation)
    return SearchResponse(query=query, k=body.k, offset=body.offset, mode=searched.mode, hits=hits_out, took_ms=searched.took_ms)


@router.post("/search", response_model=SearchResponse, responses=ERRORS)
async def search(
    body: SearchRequest, queue: WorkQueue = Depends(get_queue), batcher: Batcher = Depends(get_batcher)
) -> SearchResponse:
    """Ranked hits for one query; `filter` restricts them to documents whose metadata matches."""
    with queue.admission():
        searched = await asyncio.wrap_future(batcher.submit(SearchSettings.of(body), body.query))
    if body.explain:  # explanations encode the query again: a model call
        return await queue.run_model(_response, body, body.query, searched)
    return _response(body, body.query, searched)


@router.post("/search/batch", response_model=BatchSearchResponse, responses=ERRORS)
async def search_batch(
    body: BatchSearchRequest, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> BatchSearchResponse:
    """Several queries with the same settings, encoded and searched as one batch."""
    started = time.perf_counter()

    def searched() -> list[SearchResponse]:
        found = search_together(service, SearchSettings.of(body), body.queries)
        return [_response(body, query, one) for query, one in zip(body.queries, found, strict=True)]

    results = await queue.run_model(searched)
    return BatchSearchResponse(results=results, took_ms=(time.perf_counter() - started) * 1000)
