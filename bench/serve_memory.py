"""A server's memory: RSS of `lsr serve INDEX` once ready, and after N sequential searches in each mode over HTTP.

    python bench/serve_memory.py --index indexes/packages --dataset ../shared/data/packages --modes sparse dense hybrid

Queries are the dataset's test queries (the first N). Prints the time to ready, VmRSS then, and after each mode's
searches VmRSS, VmHWM (the peak so far) and the searches' p50 (query encoding included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import httpx
from load import start_server

from lsr.datasets import read_evaluation_set


def memory_mib(pid: int, field: str) -> float:
    """A /proc/PID/status memory field (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/{pid}/status has no {field}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", default=["sparse"])
    parser.add_argument("--searches", type=int, default=200, help="sequential searches per mode")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()

    queries = list(read_evaluation_set(args.dataset, "test").queries.values())[: args.searches]
    started = time.perf_counter()
    server, url = start_server(args.index, {})
    try:
        print(f"ready in {time.perf_counter() - started:.1f} s; RSS {memory_mib(server.pid, 'VmRSS'):,.0f} MiB")
        with httpx.Client(base_url=url, timeout=60) as client:
            for mode in args.modes:
                elapsed_ms = []
                for query in queries:
                    began = time.perf_counter()
                    client.post("/search", json={"query": query, "k": args.k, "mode": mode}).raise_for_status()
                    elapsed_ms.append((time.perf_counter() - began) * 1000)
                print(
                    f"{mode}: {len(queries)} searches, p50 {statistics.median(elapsed_ms):.1f} ms; "
                    f"RSS {memory_mib(server.pid, 'VmRSS'):,.0f} MiB, peak {memory_mib(server.pid, 'VmHWM'):,.0f} MiB"
                )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
