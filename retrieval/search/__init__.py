"""Search: an index (anything that implements ``lsr.indexer.searchable.SearchableIndex``) plus the encoders that
built it → ranked hits by sparse, dense or bm25, or fused; fusion, explanations, metadata filters, live snapshots."""

from lsr.retrieval.search.feedback import Feedback, expand_queries
from lsr.retrieval.search.fusion import Fusion, fuse_signals
from lsr.retrieval.search.live import LiveSearcher
from lsr.retrieval.search.modes import MODES, SIGNALS, parse_mode
from lsr.retrieval.search.searcher import Candidates, Hit, Searcher, check_k

__all__ = [
    "MODES",
    "SIGNALS",
    "Candidates",
    "Feedback",
    "expand_queries",
    "Fusion",
    "Hit",
    "LiveSearcher",
    "Searcher",
    "check_k",
    "fuse_signals",
    "parse_mode",
]
