"""Evaluation outputs: a TREC run file, a JSON report with everything needed to reproduce it, a Markdown table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lsr.eval.metrics import Scores
from lsr.runs import Run, write_run


@dataclass(frozen=True)
class Report:
    system: str  # a label for the row: the index name
    dataset: str
    split: str
    scores: Scores
    details: dict = field(default_factory=dict)  # manifest, settings, timings, command line

    def markdown(self) -> str:
        names = list(self.scores.aggregate)
        lines = [
            f"# {self.system} on {self.dataset} ({self.split})",
            "",
            f"{len(self.scores.per_query)} judged queries.",
            "",
            "| system | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
            f"| {self.system} | " + " | ".join(f"{self.scores.aggregate[n]:.4f}" for n in names) + " |",
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "system": self.system,
            "dataset": self.dataset,
            "split": self.split,
            "measures": self.scores.aggregate,
            "per_query": self.scores.per_query,
            **self.details,
        }


def write_report(report: Report, run: Run, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"run": folder / "run.trec", "json": folder / "report.json", "markdown": folder / "report.md"}
    write_run(run, paths["run"], tag=report.system.replace(" ", "_") or "lsr")
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    paths["markdown"].write_text(report.markdown())
    return paths
