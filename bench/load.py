"""Load test: N /search requests at concurrency C against a real `lsr serve` (uvicorn) on loopback.

    python bench/load.py --index /work/main/indexes/scifact --dataset ../shared/data/scifact

Queries are the dataset's test queries, cycled. The index is served read-only (no API key, so no writes).
Prints errors, p50/p99 latency and QPS, and, as the baseline measured in the same run, the latency of the
same searches called in-process one at a time (what HTTP, JSON and queueing add on top).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from lsr.datasets import read_evaluation_set
from lsr.retrieval.search import Searcher


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_load(url: str, queries: list[str], requests: int, concurrency: int, k: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, next_index
        while next_index < requests:
            query = queries[next_index % len(queries)]
            next_index += 1
            started = time.perf_counter()
            try:
                response = await client.post("/search", json={"query": query, "k": k})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    queries = list(read_evaluation_set(args.dataset, "test").queries.values())

    searcher = Searcher.open(args.index)
    searcher.search(queries[0], args.k)
    in_process = []
    for query in queries[:200]:
        started = time.perf_counter()
        searcher.search(query, args.k)
        in_process.append(time.perf_counter() - started)
    del searcher

    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LSR_API_KEY", None)
    env.pop("LSR_API_KEY_FILE", None)
    server = subprocess.Popen([sys.executable, "-m", "lsr", "serve", str(args.index), "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                sys.exit("server exited")
            time.sleep(0.2)
        latencies, errors, seconds = asyncio.run(run_load(url, queries, args.requests, args.concurrency, args.k))
    finally:
        server.terminate()
        server.wait(30)
    ms = np.array(latencies) * 1000
    base = np.array(in_process) * 1000
    print(f"index {args.index} ({args.index.name}), {len(queries)} distinct test queries, k={args.k}, default mode")
    print(f"{args.requests} requests at concurrency {args.concurrency}: {errors} errors, {args.requests / seconds:.1f} QPS")
    print(f"HTTP latency  p50 {np.percentile(ms, 50):.1f} ms  p99 {np.percentile(ms, 99):.1f} ms")
    print(f"in-process, one at a time (baseline): p50 {np.percentile(base, 50):.1f} ms  = {1000 / base.mean():.1f} QPS")
    print(f"ratio: HTTP QPS / in-process sequential QPS = {args.requests / seconds / (1000 / base.mean()):.2f}")


if __name__ == "__main__":
    main()
