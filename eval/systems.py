"""Systems to compare: an lsr index searched in one mode, or an existing TREC run file.

A system is named once for all datasets: ``NAME=PATH[:MODE]``, where PATH may hold a ``{dataset}``
placeholder (replaced by each dataset folder's name) and MODE is sparse, dense or hybrid (index default
when left out). A folder is an lsr index; a file is a TREC run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from lsr.errors import LsrError
from lsr.eval.runner import keep_hits
from lsr.retrieval.search import MODES, parse_mode
from lsr.runs import Run

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # also a file name: runs/<dataset>/<name>.trec
INDEX, RUN_FILE = "index", "run"


@dataclass(frozen=True)
class SystemSpec:
    name: str
    template: str  # path, possibly with {dataset}
    mode: str | None = None

    @classmethod
    def parse(cls, text: str) -> SystemSpec:
        name, separator, target = text.partition("=")
        name, target = name.strip(), target.strip()
        if not separator or not target:
            raise LsrError(f"system {text!r}: expected NAME=PATH[:MODE], e.g. hybrid=indexes/{{dataset}}:hybrid")
        if not NAME_PATTERN.fullmatch(name):
            raise LsrError(f"system name {name!r}: use letters, digits and _ . + - (it names the run files)")
        path, colon, suffix = target.rpartition(":")
        if colon and "/" not in suffix and "\\" not in suffix:
            try:
                parse_mode(suffix)
            except LsrError:
                modes = f"one of {', '.join(MODES)}, or signals joined by +"
                raise LsrError(f"system {name!r}: unknown mode {suffix!r} ({modes})") from None
            return cls(name, path, suffix)
        return cls(name, target)

    def path_for(self, dataset: str) -> Path:
        try:
            return Path(self.template.format(dataset=dataset))
        except (KeyError, IndexError, ValueError) as exc:
            raise LsrError(
                f"system {self.name!r}: bad path template {self.template!r}; the only placeholder is {{dataset}}"
            ) from exc

    def locate(self, dataset: str) -> tuple[str, Path]:
        """(INDEX or RUN_FILE, path) of this system for one dataset, with a clear error when it is missing."""
        path = self.path_for(dataset)
        if path.is_dir():
            return INDEX, path
        if path.is_file():
            if self.mode:
                raise LsrError(f"system {self.name!r}: {path} is a run file, which has no mode (drop :{self.mode})")
            return RUN_FILE, path
        raise LsrError(
            f"system {self.name!r} has nothing for dataset {dataset!r}: {path} does not exist (from {self.template!r})"
        )


def parse_systems(texts: list[str], baseline: str | None) -> tuple[list[SystemSpec], str]:
    """The systems in command-line order and the baseline's name (default: the first system)."""
    if not texts:
        raise LsrError("give at least one --system NAME=PATH[:MODE]")
    systems = [SystemSpec.parse(text) for text in texts]
    names = [system.name for system in systems]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise LsrError(f"system names must be unique: {', '.join(duplicates)} given twice")
    baseline = baseline or names[0]
    if baseline not in names:
        raise LsrError(f"baseline {baseline!r} is not one of the systems ({', '.join(names)})")
    return systems, baseline


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cut_run(run: Run, k: int, remove_identical_ids: bool) -> Run:
    """The same rules as for index systems: top k by score (file order among ties), optionally without the query's own id."""
    return {
        query_id: keep_hits(query_id, sorted(hits.items(), key=lambda item: -item[1]), k, remove_identical_ids)
        for query_id, hits in run.items()
    }
