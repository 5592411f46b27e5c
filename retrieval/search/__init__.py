"""Search: an index (anything that implements ``lsr.indexer.searchable.SearchableIndex``) plus the encoders that
built it → ranked hits, sparse, dense or hybrid; fusion, explanations, metadata filters, live snapshots."""

from lsr.retrieval.search.fusion import Fusion, fuse
from lsr.retrieval.search.live import LiveSearcher
from lsr.retrieval.search.searcher import MODES, Hit, Searcher, check_k

__all__ = ["MODES", "Fusion", "Hit", "LiveSearcher", "Searcher", "check_k", "fuse"]
