"""GET /explain and POST /encode: what the model makes of a text, and why a document matched."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BeforeValidator

from lsr.api.deps import get_queue, get_service
from lsr.api.schemas import (
    MAX_ID_CHARS,
    MAX_QUERY_CHARS,
    EncodeRequest,
    EncodeResponse,
    ErrorBody,
    ExplanationOut,
    TermWeightOut,
    stripped_id,
)
from lsr.api.work import WorkQueue
from lsr.retrieval.search.explain import Explanation, explain, require_term_weights, term_weights
from lsr.retrieval.search.live import LiveSearcher

router = APIRouter(tags=["explain"])


def explanation_out(explanation: Explanation) -> ExplanationOut:
    return ExplanationOut(**dataclasses.asdict(explanation))


def _explain(service: LiveSearcher, query: str, doc_id: str) -> ExplanationOut:
    try:
        return explanation_out(explain(service.searcher(), query, [doc_id])[0])
    except KeyError:
        raise HTTPException(404, f"no document with id {doc_id!r}") from None


@router.get("/explain", response_model=ExplanationOut, responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def explain_match(
    query: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")],
    id: Annotated[
        str,
        Query(min_length=1, max_length=MAX_ID_CHARS, description="document id; surrounding whitespace is stripped"),
        BeforeValidator(stripped_id),
    ],
    service: LiveSearcher = Depends(get_service),
    queue: WorkQueue = Depends(get_queue),
) -> ExplanationOut:
    """The terms query and document share, each with query weight × document weight (summing to the sparse
    score), which are expansion terms (absent from the text), and the document's heaviest terms."""
    return await queue.run_model(_explain, service, query, id)


def _encode(service: LiveSearcher, body: EncodeRequest) -> EncodeResponse:
    searcher = require_term_weights(service.searcher())
    if body.kind == "query":
        vector = searcher.sparse_queries([body.text])  # as searched: with the index's query weighting
    else:
        vector = searcher.index.manifest.quantization.quantize(searcher.encoder.encode_documents([body.text]))
    terms = [TermWeightOut(**dataclasses.asdict(t)) for t in term_weights(searcher, vector, body.text, None)]
    dense = None
    if body.dense and searcher.dense_encoder is not None:
        dense_encode = searcher.dense_encoder.encode_queries if body.kind == "query" else searcher.dense_encoder.encode_documents
        dense = np.asarray(dense_encode([body.text])[0], dtype=float).tolist()
    return EncodeResponse(terms=terms, dense=dense)


@router.post("/encode", response_model=EncodeResponse, responses={503: {"model": ErrorBody}})
async def encode(
    body: EncodeRequest, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> EncodeResponse:
    """A text's sparse vector decoded to terms (`in_text: false` marks expansion terms), and optionally its dense vector."""
    return await queue.run_model(_encode, service, body)
