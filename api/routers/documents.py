"""POST /documents (batch upsert), GET and DELETE /documents/{id} (an id may hold "/"): durable, immediately searchable."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from pydantic import BeforeValidator

from lsr.api.deps import get_queue, get_service, require_api_key
from lsr.api.schemas import MAX_ID_CHARS, DocumentOut, ErrorBody, UpsertRequest, UpsertResponse, stripped_id
from lsr.api.work import WorkQueue
from lsr.datasets import Document
from lsr.retrieval.search.live import LiveSearcher

router = APIRouter(prefix="/documents", tags=["documents"])
WRITE_ERRORS = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 503: {"model": ErrorBody}}
# ``:path``: an id may hold "/" (BEIR allows it), so /documents/a/b is document "a/b" (as is /documents/a%2Fb).
DocIdPath = Annotated[
    str,
    Path(min_length=1, max_length=MAX_ID_CHARS, description="surrounding whitespace is stripped"),
    BeforeValidator(stripped_id),
]


@router.post("", response_model=UpsertResponse, dependencies=[Depends(require_api_key)], responses=WRITE_ERRORS)
async def upsert(
    body: UpsertRequest, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> UpsertResponse:
    """Adds or replaces documents. Answered only once they are on disk (fsynced) and visible to search."""
    started = time.perf_counter()
    docs = [Document(d.id, d.title, d.text, d.metadata or {}) for d in body.documents]
    await queue.run_model(service.upsert, docs)
    return UpsertResponse(upserted=[doc.id for doc in docs], took_ms=(time.perf_counter() - started) * 1000)


@router.get("/{doc_id:path}", response_model=DocumentOut, responses={404: {"model": ErrorBody}})
def get_document(doc_id: DocIdPath, service: LiveSearcher = Depends(get_service)) -> DocumentOut:
    doc = service.get(doc_id)
    if doc is None:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DocumentOut(id=doc.id, title=doc.title, text=doc.text, metadata=doc.metadata)


@router.delete(
    "/{doc_id:path}",
    status_code=204,
    dependencies=[Depends(require_api_key)],
    responses={404: {"model": ErrorBody}, **WRITE_ERRORS},
)
async def delete_document(
    doc_id: DocIdPath, service: LiveSearcher = Depends(get_service), queue: WorkQueue = Depends(get_queue)
) -> None:
    """Removes a document; answered once the delete is durable and searches no longer return it."""
    if not await queue.run(service.delete, doc_id):
        raise HTTPException(404, f"no document with id {doc_id!r}")
