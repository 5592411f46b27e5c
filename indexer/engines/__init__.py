"""Index engines behind one interface; ``ENGINES`` maps a manifest's engine name to its class.

Vector engines (``Engine``) index quantized vectors and can be rebuilt from an index's ``vectors/`` without
re-encoding; ``lucene-bm25`` indexes text; ``milvus`` lives on a Milvus server. The Lucene engines start a JVM
only when one is used.
"""

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import BuildExtras, Capabilities, Engine, Ranking, parse_settings, top_k
from lsr.indexer.engines.impact_ordered import ImpactOrderedEngine
from lsr.indexer.engines.lucene import BM25_KIND, LuceneBm25Engine, LuceneImpactEngine, bm25_spec
from lsr.indexer.engines.memory import MemoryEngine
from lsr.indexer.engines.milvus import MilvusEngine
from lsr.indexer.engines.seismic import SeismicEngine
from lsr.indexer.engines.sharded import ShardedEngine

VECTOR_ENGINES: dict[str, type[Engine]] = {
    engine.name: engine
    for engine in (MemoryEngine, ShardedEngine, ImpactOrderedEngine, SeismicEngine, LuceneImpactEngine, MilvusEngine)
}
ENGINES: dict[str, type] = {**VECTOR_ENGINES, LuceneBm25Engine.name: LuceneBm25Engine}
DEFAULT_ENGINE = MemoryEngine.name


def engine_class(name: str) -> type:
    try:
        return ENGINES[name]
    except KeyError:
        raise IndexFolderError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})") from None


def vector_engine_class(name: str) -> type[Engine]:
    if name not in VECTOR_ENGINES:
        engine_class(name)
        raise IndexFolderError(f"the {name} engine indexes text, not vectors (vector engines: {', '.join(VECTOR_ENGINES)})")
    return VECTOR_ENGINES[name]


__all__ = [
    "BM25_KIND",
    "BuildExtras",
    "Capabilities",
    "DEFAULT_ENGINE",
    "ENGINES",
    "VECTOR_ENGINES",
    "Engine",
    "ImpactOrderedEngine",
    "LuceneBm25Engine",
    "LuceneImpactEngine",
    "MemoryEngine",
    "MilvusEngine",
    "Ranking",
    "SeismicEngine",
    "ShardedEngine",
    "bm25_spec",
    "engine_class",
    "parse_settings",
    "top_k",
    "vector_engine_class",
]
