"""The BM25 side of an index that has taken live updates, against the side rebuilt from scratch on the same documents
(what compaction produces). Once an index has taken a write, its BM25 side is scored at query time from term counts
with the statistics of the documents as they are (``LiveBm25``); before, and after compaction, bm25s sums precomputed
scores. Prints, from one run: whether both rank the same (top-10 ids per query, largest relative score difference),
per-query latency of each (one query per call, the fastest of --repeat, interleaved) and their ratio, and what one
more write costs the BM25 side with the delta at its largest (--upserts documents), with the first search after it.

    python bench/bm25_live.py --dataset ../shared/data/scifact
    python bench/bm25_live.py --dataset ../shared/data/packages --duplicates last --queries 500

The last --upserts documents of the corpus arrive as live upserts, --deletes of the others are deleted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from search_latency import percentiles, timed

from lsr import defaults
from lsr.datasets import read_corpus, read_evaluation_set
from lsr.indexer.bm25 import Bm25Settings, Bm25Side, LiveBm25, TermCounts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--duplicates", choices=["error", "first", "last"], default="error", help="repeated document ids")
    parser.add_argument("--queries", type=int, default=0, help="the first N queries only (0: all)")
    parser.add_argument("--upserts", type=int, default=defaults.COMPACT_AFTER, help="default: the compaction threshold")
    parser.add_argument("--deletes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    documents = read_corpus(args.dataset, duplicates=args.duplicates).documents
    base, added = documents[: -args.upserts], documents[-args.upserts :]
    deleted = np.random.default_rng(0).choice(len(base), args.deletes, replace=False)
    removed = np.zeros(len(documents), bool)
    removed[deleted] = True
    now = [doc for row, doc in enumerate(documents) if not removed[row]]
    texts = list(read_evaluation_set(args.dataset, args.split).queries.values())
    texts = texts[: args.queries or None]

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        Bm25Side.build([doc.contents for doc in base], Path(folder) / "base")
        Bm25Side.build([doc.contents for doc in now], Path(folder) / "rebuilt")
        print(
            f"{args.dataset.name}: {len(documents)} documents, {len(added)} upserted, {args.deletes} deleted, "
            f"{len(texts)} queries; sides built in {time.perf_counter() - started:.0f} s"
        )
        rebuilt = Bm25Side.open(Path(folder) / "rebuilt", Bm25Settings())
        files = {path.name: path.stat().st_size for path in (Path(folder) / "rebuilt").iterdir()}
        counts = sum(files[name] for name in TermCounts.FILES)
        print(f"side on disk: bm25s {(sum(files.values()) - counts) / 2**20:.1f} MiB, term counts {counts / 2**20:.1f} MiB")
        live = LiveBm25.unchanged(Bm25Side.open(Path(folder) / "base", Bm25Settings()))
        live = live.extended([doc.contents for doc in added[:-1]], removed[:-1])
        hidden = removed
        live.search_texts(texts[:1], 10, hidden[:-1])  # compiles the top-k selection outside the timing

        def write_then_search() -> LiveBm25:
            written = live.extended([added[-1].contents], removed)
            written.search_texts(texts[:1], 10, hidden)  # the first search after a write counts the delta's terms
            return written

        write_seconds, live = timed(write_then_search)
        first_search_seconds = min(timed(live.search_texts, texts[:1], 10, hidden)[0] for _ in range(args.repeat))

        rebuilt_ids = [doc.id for doc in now]
        same_top, worst = 0, 0.0
        for text in texts:
            expected = rebuilt.search_texts([text], 10)[0]
            found = live.search_texts([text], 10, hidden)[0]
            same_top += [rebuilt_ids[row] for row in expected.doc_indices] == [documents[row].id for row in found.doc_indices]
            if found.scores.size and found.scores.size == expected.scores.size:
                worst = max(worst, float(np.max(np.abs(found.scores - expected.scores) / expected.scores)))

        times: dict[str, list[float]] = {"bm25s": [], "live": []}
        for text in texts:
            times["bm25s"].append(min(timed(rebuilt.search_texts, [text], 100)[0] for _ in range(args.repeat)))
            times["live"].append(min(timed(live.search_texts, [text], 100, hidden)[0] for _ in range(args.repeat)))
    (bm25s_p50, bm25s_p99), (live_p50, live_p99) = percentiles(times["bm25s"]), percentiles(times["live"])
    print(f"same top-10 ids: {same_top}/{len(texts)} queries; largest relative score difference {worst:.1e}")
    print(
        f"ms/query p50 / p99: rebuilt (bm25s) {bm25s_p50:.2f} / {bm25s_p99:.2f}, live {live_p50:.2f} / {live_p99:.2f}; "
        f"live / bm25s at p50: {live_p50 / bm25s_p50:.1f}×"
    )
    print(
        f"one more write with {len(added) - 1} documents upserted before it, and the first search after it: "
        f"{write_seconds * 1000:.1f} ms ({first_search_seconds * 1000:.1f} ms of which the search itself)"
    )


if __name__ == "__main__":
    main()
