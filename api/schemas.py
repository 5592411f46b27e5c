"""Request and response bodies: every field typed and bounded, so bad input is a 422, never a 500."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_API_K = 1000
MAX_QUERY_CHARS = 4096


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["does vitamin D prevent fractures"])
    k: int = Field(10, ge=1, le=MAX_API_K, description="number of hits to return")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must contain non-whitespace characters")
        return value


class HitOut(BaseModel):
    rank: int
    id: str
    score: float = Field(description="query·document dot product of the quantized SPLADE vectors")
    title: str


class SearchResponse(BaseModel):
    query: str
    k: int
    hits: list[HitOut]
    took_ms: float


class IndexInfo(BaseModel):
    path: str
    doc_count: int
    encoder: str
    engine: str
    created_at: str


class Health(BaseModel):
    status: str
    index: IndexInfo


class ErrorBody(BaseModel):
    detail: str
