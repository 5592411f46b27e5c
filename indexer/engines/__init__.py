"""Index engines behind one interface; ``ENGINES`` maps a manifest's engine name to its class."""

from lsr.errors import IndexFolderError
from lsr.indexer.engines.base import Engine, Ranking, top_k
from lsr.indexer.engines.memory import MemoryEngine

ENGINES: dict[str, type[Engine]] = {MemoryEngine.name: MemoryEngine}
DEFAULT_ENGINE = MemoryEngine.name


def engine_class(name: str) -> type[Engine]:
    try:
        return ENGINES[name]
    except KeyError:
        raise IndexFolderError(f"unknown engine {name!r} (available: {', '.join(ENGINES)})") from None


__all__ = ["ENGINES", "DEFAULT_ENGINE", "Engine", "MemoryEngine", "Ranking", "engine_class", "top_k"]
