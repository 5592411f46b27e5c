"""Request and response bodies: every field typed and bounded, so bad input is a 422, never a 500."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_API_K = 1000
MAX_QUERY_CHARS = 4096


class FusionRequest(BaseModel):
    """Overrides of the index's hybrid fusion settings; omitted fields keep the index's (tuned) values."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["rrf", "convex"] | None = None
    weight: float | None = Field(None, ge=0.0, le=1.0, description="the sparse side's weight; dense gets 1 - weight")
    rrf_k: int | None = Field(None, ge=0, le=10_000)
    normalization: Literal["minmax", "zscore"] | None = None
    depth: int | None = Field(None, ge=1, le=MAX_API_K, description="candidates taken from each side")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["does vitamin D prevent fractures"])
    k: int = Field(10, ge=1, le=MAX_API_K, description="number of hits to return")
    mode: Literal["sparse", "dense", "hybrid"] | None = Field(
        None, description="default: hybrid when the index has dense vectors, else sparse"
    )
    fusion: FusionRequest | None = None

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must contain non-whitespace characters")
        return value


class HitOut(BaseModel):
    rank: int
    id: str
    score: float = Field(
        description="sparse: dot product of the quantized SPLADE vectors; dense: cosine similarity; "
        "hybrid: the fused score (rrf: Σ w/(rrf_k + rank); convex: weighted sum of normalized scores)"
    )
    title: str


class SearchResponse(BaseModel):
    query: str
    k: int
    mode: str
    hits: list[HitOut]
    took_ms: float


class IndexInfo(BaseModel):
    path: str
    doc_count: int
    encoder: str
    dense_encoder: str | None
    default_mode: str
    fusion: dict
    engine: str
    created_at: str


class Health(BaseModel):
    status: str
    index: IndexInfo


class ErrorBody(BaseModel):
    detail: str
