"""Request and response bodies: every field typed and bounded, so bad input is a 422, never a 500."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from lsr.errors import LsrError
from lsr.retrieval.search.modes import parse_mode

MAX_API_K = 1000
MAX_OFFSET = 9000  # offset + k stays within the searcher's 10,000
MAX_QUERY_CHARS = 4096
MAX_BATCH_QUERIES = 32
MAX_BATCH_DOCUMENTS = 256
MAX_DOC_CHARS = 100_000
MAX_FILTER_FIELDS = 16

MAX_ID_CHARS = 256


def stripped_id(value: object) -> object:
    """Ids are stripped of surrounding whitespace, as the corpus reader strips them (``lsr.datasets``): `` x `` is
    document ``x``, whether it came from a corpus or over HTTP. Runs before the type and length checks."""
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("a document id must not be empty or only whitespace")
    return value


# Any characters but control characters; "/" is allowed (BEIR ids may hold it: GET /documents/a/b fetches "a/b").
DocId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[^\x00-\x1f]+$"),
    BeforeValidator(stripped_id),  # listed after the constraints: runs before them
    Field(description="surrounding whitespace is stripped, as in a corpus"),
]
FieldName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FilterScalar = Annotated[str, StringConstraints(max_length=1024)] | int | float | bool
FilterValue = FilterScalar | Annotated[list[FilterScalar], Field(min_length=1, max_length=256)]
Signal = Literal["sparse", "dense", "bm25"]


def _valid_mode(mode: str) -> str:
    try:
        parse_mode(mode)
    except LsrError as exc:
        raise ValueError(str(exc)) from None
    return mode


Mode = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_valid_mode),
    Field(
        description="sparse, dense, bm25, signals joined by + (bm25+sparse+dense), or hybrid (all the index's signals); "
        "default: hybrid when the index has more than one signal, else sparse",
        examples=["hybrid", "bm25+sparse+dense"],
    ),
]


class FusionRequest(BaseModel):
    """Overrides of the index's hybrid fusion settings; omitted fields keep the index's (tuned) values."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["rrf", "convex"] | None = None
    weight: float | None = Field(
        None, ge=0.0, le=1.0, description="sparse + dense: the sparse signal's weight; dense gets 1 - weight"
    )
    weights: dict[Signal, Annotated[float, Field(ge=0.0, le=1000.0)]] | None = Field(
        None,
        min_length=1,
        description="a weight per signal, scaled to sum to 1 over the signals fused",
        examples=[{"sparse": 0.4, "dense": 0.4, "bm25": 0.2}],
    )
    rrf_k: int | None = Field(None, ge=0, le=10_000)
    normalization: Literal["minmax", "zscore"] | None = None
    depth: int | None = Field(None, ge=1, le=MAX_API_K, description="candidates taken from each signal")
    dense_feedback: int | None = Field(
        None,
        ge=0,
        le=MAX_API_K,
        description="add the mean dense vector of the first fused pass's top documents to the dense query, search again",
    )
    dense_feedback_weight: float | None = Field(None, gt=0.0, le=1000.0, description="that mean vector's weight")

    @model_validator(mode="after")
    def _one_kind_of_weight(self) -> FusionRequest:
        if self.weight is not None and self.weights is not None:
            raise ValueError("give weight (sparse's, with dense) or weights, not both")
        if self.weights is not None and not any(self.weights.values()):
            raise ValueError("weights must not all be 0")
        return self


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["does vitamin D prevent fractures"])
    k: int = Field(10, ge=1, le=MAX_API_K, description="number of hits to return")
    mode: Mode | None = None
    fusion: FusionRequest | None = None
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="hits to skip (pagination): returns ranks offset+1 … offset+k")
    filter: dict[FieldName, FilterValue] | None = Field(
        None,
        max_length=MAX_FILTER_FIELDS,
        description="document metadata fields that must match: a value, or a list of accepted values",
        examples=[{"year": 2020, "lang": ["en", "de"]}],
    )
    explain: bool = Field(False, description="add each hit's matching terms and their contributions")

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query must contain non-whitespace characters")
        return value


class BatchSearchRequest(BaseModel):
    """Several queries with shared settings, answered in one request."""

    model_config = ConfigDict(extra="forbid")

    queries: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS, pattern=r"\S")]] = Field(
        min_length=1, max_length=MAX_BATCH_QUERIES
    )
    k: int = Field(10, ge=1, le=MAX_API_K)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    mode: Mode | None = None
    fusion: FusionRequest | None = None
    filter: dict[FieldName, FilterValue] | None = Field(None, max_length=MAX_FILTER_FIELDS)


class TermWeightOut(BaseModel):
    term: str
    weight: float
    in_text: bool | None = Field(description="false: an expansion term; null: unknown (the index stores no text)")


class ContributionOut(BaseModel):
    term: str
    query_weight: float
    document_weight: float
    score: float = Field(description="query_weight × document_weight; a hit's contributions sum to its sparse score")
    in_query: bool | None
    in_document: bool | None = Field(description="false: an expansion term of the document")


class ExplanationOut(BaseModel):
    doc_id: str
    title: str
    score: float = Field(description="the sparse score (Σ of the contributions), whatever mode ranked the hit")
    matches: list[ContributionOut]
    query_terms: list[TermWeightOut]
    document_terms: list[TermWeightOut]


class HitOut(BaseModel):
    rank: int
    id: str
    score: float = Field(
        description="sparse: dot product of the quantized SPLADE vectors; dense: cosine similarity; bm25: BM25; "
        "fused (hybrid, a+b): the fused score (rrf: Σ w/(rrf_k + rank); convex: weighted sum of normalized scores)"
    )
    title: str
    explanation: ExplanationOut | None = None


class SearchResponse(BaseModel):
    query: str
    k: int
    offset: int = 0
    mode: str
    hits: list[HitOut]
    took_ms: float


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]
    took_ms: float


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: DocId
    title: str = Field("", max_length=MAX_DOC_CHARS)
    text: str = Field("", max_length=MAX_DOC_CHARS)
    metadata: dict[FieldName, FilterValue] | None = Field(None, max_length=64)

    @field_validator("text")
    @classmethod
    def _has_content(cls, value: str, info) -> str:
        if not value.strip() and not info.data.get("title", "").strip():
            raise ValueError("a document needs a non-blank title or text")
        return value


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_BATCH_DOCUMENTS)


class UpsertResponse(BaseModel):
    upserted: list[str] = Field(description="ids now durable (logged and fsynced) and visible to search")
    took_ms: float


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str = Field(description="empty when the index was built without storing text")
    metadata: dict | None


class EncodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_DOC_CHARS)
    kind: Literal["query", "document"] = "query"
    dense: bool = Field(False, description="also return the dense vector (when the index has a dense encoder)")


class EncodeResponse(BaseModel):
    terms: list[TermWeightOut] = Field(description="the sparse vector, heaviest term first, after quantization")
    dense: list[float] | None = None


class Ready(BaseModel):
    ready: bool


class IndexInfo(BaseModel):
    path: str
    doc_count: int
    encoder: str
    dense_encoder: str | None
    default_mode: str
    fusion: dict
    query_idf: float | None = Field(description="exponent of the sparse queries' corpus-IDF weighting; null: none")
    engine: str
    created_at: str


class Health(BaseModel):
    status: str
    index: IndexInfo
    live_documents: int = Field(description="documents searchable now, live updates included")
    pending_updates: int = Field(description="upserts and deletes not yet compacted into the index folder")


class ErrorBody(BaseModel):
    detail: str
