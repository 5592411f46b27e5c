"""Mixed read/write soak against a real `lsr serve`, killed with SIGKILL and restarted during the load (issue 16).

    python bench/soak.py --index indexes/scifact-bf16 --seconds 180 --kill-every 45

The index is copied into a temporary folder (the original is never written) and served with an API key and a small
``--compact-after``, so background compactions run during the load. For ``--seconds``, writer tasks upsert new
documents (unique ids ``soak-<n>``, a few per request) and delete some of the ones acknowledged before; reader tasks
search and GET acknowledged documents (each must be there) and deleted ones (each must be gone). Every
``--kill-every`` seconds the server is killed with SIGKILL mid-load and restarted on the same folder and port; the
load goes on meanwhile, so requests during the outage fail to connect (counted apart: they are not answers, and a
write whose request failed is in doubt, not acknowledged). After a final kill and restart every acknowledged upsert
not deleted since must be found by GET, every acknowledged delete must be absent, and the index's live document
count must equal the original's plus the soak documents found. Prints requests by kind and status, acknowledged
writes, lost ones, 5xx answers, connection errors, compactions seen and the server's RSS (VmRSS) at the start and
end of each segment between kills; exits 1 if a write was lost, a delete undone or any answer was a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from load import free_port, start_server  # noqa: E402

API_KEY = "soak-key"
WORDS = [
    *("protein", "cell", "gene", "cancer", "vitamin", "immune", "brain", "receptor", "mutation", "therapy", "infection"),
    *("insulin", "tumor", "patients", "mice", "expression", "pathway", "risk", "trial", "dose", "blood", "heart"),
    *("virus", "antibody", "enzyme", "neuron", "signal", "growth"),
]


def rss_mib(pid: int) -> float:
    """The process's resident set size (VmRSS), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class Segment:
    """One server process's life: from ready to killed."""

    pid: int
    rss_start: float
    rss_end: float = 0.0
    rss_peak: float = 0.0
    seconds: float = 0.0
    samples: list[float] = field(default_factory=list)  # RSS MiB, about once a second


@dataclass
class Soak:
    statuses: Counter = field(default_factory=Counter)  # (kind, status code)
    connection_errors: Counter = field(default_factory=Counter)  # kind → requests that got no answer
    upserted: list[str] = field(default_factory=list)  # acknowledged upserts, in order
    deleted: set[str] = field(default_factory=set)  # acknowledged deletes
    deleting: set[str] = field(default_factory=set)  # deletes sent (in flight, acknowledged or in doubt)
    in_doubt: set[str] = field(default_factory=set)  # writes whose request got no answer: either outcome is right
    missing_reads: list[str] = field(default_factory=list)  # GET 404 of an acknowledged upsert during the load
    undone_deletes: list[str] = field(default_factory=list)  # GET 200 of an acknowledged delete during the load
    next_id: int = 0

    def record(self, kind: str, response: httpx.Response) -> None:
        self.statuses[kind, response.status_code] += 1

    def live_id(self) -> str | None:
        """An acknowledged upsert no delete was sent for."""
        for _ in range(10):
            doc_id = random.choice(self.upserted) if self.upserted else None
            if doc_id is not None and doc_id not in self.deleting:
                return doc_id
        return None


def document(doc_id: str) -> dict:
    words = " ".join(random.choices(WORDS, k=12))
    return {"id": doc_id, "title": f"soak document {doc_id}", "text": f"{words} ({doc_id})", "metadata": {"source": "soak"}}


async def writer(client: httpx.AsyncClient, soak: Soak, stop: asyncio.Event, batch: int, delete_share: float, pause: float):
    while not stop.is_set():
        doc_id = soak.live_id() if random.random() < delete_share else None
        try:
            if doc_id is not None:
                soak.deleting.add(doc_id)
                response = await client.delete(f"/documents/{doc_id}")
                soak.record("delete", response)
                if response.status_code == 204:
                    soak.deleted.add(doc_id)
                elif response.status_code == 404:  # acknowledged, never deleted, yet absent: a lost write
                    soak.missing_reads.append(doc_id)
            else:
                ids = [f"soak-{soak.next_id + i}" for i in range(batch)]
                soak.next_id += batch
                response = await client.post("/documents", json={"documents": [document(i) for i in ids]})
                soak.record("upsert", response)
                if response.status_code == 200:
                    soak.upserted.extend(response.json()["upserted"])
        except httpx.TransportError:
            soak.connection_errors["delete" if doc_id is not None else "upsert"] += 1
            soak.in_doubt.update([doc_id] if doc_id is not None else ids)
            await asyncio.sleep(0.2)  # the server is down: do not spin
        await asyncio.sleep(pause)


async def reader(client: httpx.AsyncClient, soak: Soak, stop: asyncio.Event, pause: float) -> None:
    while not stop.is_set():
        choice = random.random()
        live = soak.live_id() if choice < 0.4 else None
        gone = random.choice(tuple(soak.deleted)) if choice >= 0.9 and soak.deleted else None
        kind = "get" if live else "get deleted" if gone else "search"
        try:
            if live:
                response = await client.get(f"/documents/{live}")
                if response.status_code == 404 and live not in soak.deleting:  # no delete sent since the choice
                    soak.missing_reads.append(live)
            elif gone:
                response = await client.get(f"/documents/{gone}")
                if response.status_code == 200:
                    soak.undone_deletes.append(gone)
            else:
                query = " ".join(random.choices(WORDS, k=3))
                response = await client.post("/search", json={"query": query, "k": 10})
            soak.record(kind, response)
        except httpx.TransportError:
            soak.connection_errors[kind] += 1
            await asyncio.sleep(0.2)
        await asyncio.sleep(pause)


async def watch(folder: Path, stop: asyncio.Event, compactions: list[int]) -> None:
    """A compaction publishes a new index folder: its manifest.json is a new file (inode)."""
    seen = (folder / "manifest.json").stat().st_ino
    while not stop.is_set():
        try:
            inode = (folder / "manifest.json").stat().st_ino
        except FileNotFoundError:  # between the two renames of a publish
            inode = seen
        if inode != seen:
            compactions[0] += 1
            seen = inode
        await asyncio.sleep(0.1)


async def soak_run(args: argparse.Namespace, folder: Path, log) -> tuple[Soak, list[Segment], int, dict]:
    port = free_port()
    env = {"LSR_API_KEY": API_KEY}
    serve_args = ("--compact-after", str(args.compact_after))

    async def start() -> tuple[subprocess.Popen, Segment, float]:
        started = time.monotonic()
        server, _ = await asyncio.to_thread(start_server, folder, env, serve_args, port, log, 300)
        return server, Segment(server.pid, rss_mib(server.pid)), time.monotonic() - started

    def end(server: subprocess.Popen, segment: Segment, began: float) -> None:
        segment.rss_end = rss_mib(server.pid)
        segment.rss_peak = max(segment.rss_peak, segment.rss_end)
        segment.seconds = time.monotonic() - began
        server.send_signal(signal.SIGKILL)
        server.wait()

    soak = Soak()
    segments: list[Segment] = []
    compactions = [0]
    restarts: list[float] = []
    server, segment, _ = await start()
    segments.append(segment)
    stop = asyncio.Event()
    url = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.writers + args.readers)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers={"X-API-Key": API_KEY}) as client:
        base = (await client.get("/health")).json()["live_documents"]
        writing = (writer(client, soak, stop, args.batch, args.delete_share, args.pause) for _ in range(args.writers))
        reading = (reader(client, soak, stop, args.pause) for _ in range(args.readers))
        tasks = [asyncio.create_task(c) for c in (*writing, *reading, watch(folder, stop, compactions))]
        deadline = time.monotonic() + args.seconds
        try:
            while True:
                segment_began = time.monotonic()
                next_kill = min(deadline, segment_began + args.kill_every)
                while (now := time.monotonic()) < next_kill:
                    await asyncio.sleep(min(1.0, next_kill - now))
                    segment.samples.append(rss_mib(server.pid))
                    segment.rss_peak = max(segment.rss_peak, segment.samples[-1])
                end(server, segment, segment_began)  # SIGKILL mid-load (the last one too); the tasks keep sending
                if time.monotonic() >= deadline:
                    break
                server, segment, took = await start()
                segments.append(segment)
                restarts.append(took)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if server.poll() is None:
                server.kill()
        # What is checked is what a restart finds.
        server, final, took = await start()
        restarts.append(took)
        try:
            found = await verify(client, soak)
            final.rss_end = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    found.update({"restart seconds": restarts, "final rss": final, "base": base})
    return soak, segments, compactions[0], found


async def verify(client: httpx.AsyncClient, soak: Soak) -> dict:
    """GET every id the soak wrote (acknowledged or in doubt) on the restarted server."""
    deleted = soak.deleted
    ids = [f"soak-{n}" for n in range(soak.next_id)]
    present: dict[str, bool] = {}
    semaphore = asyncio.Semaphore(8)

    async def get(doc_id: str) -> None:
        async with semaphore:
            response = await client.get(f"/documents/{doc_id}")
        soak.record("check get", response)
        present[doc_id] = response.status_code == 200

    await asyncio.gather(*(get(i) for i in ids))
    kept = [i for i in soak.upserted if i not in soak.deleting]  # acknowledged, no delete sent
    health = (await client.get("/health")).json()
    return {
        "kept": len(kept),
        "found": sum(present[i] for i in kept),
        "lost": [i for i in kept if not present[i]],
        "undone deletes": [i for i in deleted if present[i]],
        "in doubt present": sum(present[i] for i in soak.in_doubt),
        "present": sum(present.values()),
        "live documents": health["live_documents"],
        "index documents": health["index"]["doc_count"],
        "pending": health["pending_updates"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True, help="copied; the copy is served and written")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--kill-every", type=float, default=30)
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--readers", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="documents per upsert request")
    parser.add_argument("--delete-share", type=float, default=0.25, help="share of writes that are deletes")
    parser.add_argument("--compact-after", type=int, default=50)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds each task waits between its requests")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (index copy, server log)")
    args = parser.parse_args()

    temp = Path(tempfile.mkdtemp(prefix="lsr-soak-"))
    folder = temp / args.index.name
    shutil.copytree(args.index, folder)
    (folder / "live" / "wal.jsonl").unlink(missing_ok=True)  # a copy of someone's log: start from the index alone
    log_path = temp / "server.log"
    with log_path.open("w") as log:
        started = time.monotonic()
        soak, segments, compactions, found = asyncio.run(soak_run(args, folder, log))
        elapsed = time.monotonic() - started
    report(args, soak, segments, compactions, found, elapsed)
    tracebacks = log_path.read_text().count("Traceback")
    print(f"server log: {tracebacks} tracebacks ({log_path if args.keep else 'deleted'})")
    failed = found["lost"] or found["undone deletes"] or soak.missing_reads or soak.undone_deletes or fives(soak)
    if not args.keep:
        shutil.rmtree(temp)
    sys.exit(1 if failed else 0)


def fives(soak: Soak) -> int:
    return sum(n for (_, status), n in soak.statuses.items() if status >= 500)


def report(args, soak: Soak, segments: list[Segment], compactions: int, found: dict, elapsed: float) -> None:
    kinds = sorted({kind for kind, _ in soak.statuses} | set(soak.connection_errors))
    print(
        f"soak of {args.index} for {args.seconds:.0f} s (whole run {elapsed:.0f} s): {len(segments)} segments, "
        f"{len(segments)} SIGKILLs (the last before the check), {args.writers} writers, {args.readers} readers, "
        f"--compact-after {args.compact_after}"
    )
    print("| requests | answered (status: count) | connection errors |")
    print("|---|---|---:|")
    for kind in kinds:
        answered = ", ".join(f"{status}: {n}" for (k, status), n in sorted(soak.statuses.items()) if k == kind)
        print(f"| {kind} | {answered} | {soak.connection_errors[kind]} |")
    deletes_kept = len(soak.deleted)
    print(
        f"acknowledged upserts {len(soak.upserted)}, acknowledged deletes {deletes_kept}; in doubt (no answer) "
        f"{len(soak.in_doubt)}, of which present afterwards {found['in doubt present']}"
    )
    print(
        f"acknowledged upserts without a delete sent: {found['kept']}, found afterwards: {found['found']}, "
        f"lost: {len(found['lost'])} {found['lost'][:5]}"
    )
    print(f"acknowledged deletes present afterwards: {len(found['undone deletes'])} {found['undone deletes'][:5]}")
    print(
        f"during the load: acknowledged documents not found {len(soak.missing_reads)}, "
        f"deleted documents found {len(soak.undone_deletes)}"
    )
    base = found["base"]
    expected = base + found["present"]
    print(
        f"live documents after restart {found['live documents']} (original {base} + {found['present']} soak documents "
        f"present = {expected}: {'equal' if expected == found['live documents'] else 'DIFFERENT'}); "
        f"index documents {found['index documents']}, pending updates {found['pending']}"
    )
    print(f"5xx answers: {fives(soak)}; compactions published (manifest replaced): {compactions}")
    restarts = ", ".join(f"{s:.1f}" for s in found["restart seconds"])
    print(f"restart to ready, s: {restarts}")
    print("| segment | pid | seconds | RSS start MiB | RSS end MiB | RSS peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, s in enumerate(segments, 1):
        print(f"| {n} | {s.pid} | {s.seconds:.0f} | {s.rss_start:.0f} | {s.rss_end:.0f} | {s.rss_peak:.0f} |")
    final = found["final rss"]
    print(f"| check | {final.pid} | – | {final.rss_start:.0f} | {final.rss_end:.0f} | – |")
    for n, s in enumerate(segments, 1):
        every = ", ".join(f"{mib:.0f}" for mib in s.samples[::10])
        print(f"segment {n} RSS every 10 s, MiB: {every}")
    first, last = segments[0], segments[-1]
    print(
        f"RSS: first segment {first.rss_start:.0f} → {first.rss_end:.0f} MiB (+{first.rss_end - first.rss_start:.0f}), "
        f"last segment {last.rss_start:.0f} → {last.rss_end:.0f} MiB (+{last.rss_end - last.rss_start:.0f}); "
        f"start of run {first.rss_start:.0f} → end of run {last.rss_end:.0f} MiB"
    )


if __name__ == "__main__":
    main()
