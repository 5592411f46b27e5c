"""Load test: N /search requests at each concurrency against a real `lsr serve` (uvicorn) on loopback.

    python bench/load.py --index indexes/scifact --dataset ../shared/data/scifact

Queries are the dataset's test queries, cycled. The index is served read-only (no API key, so no writes), in
each mode it supports (sparse; dense and hybrid when it has dense vectors), at concurrency 1 and 16. Two servers
are measured in the same run: the default (concurrent searches batched, ``lsr.api.batching``) and the baseline,
the same server with batches of one query, no batch window and 4 worker threads (as it served before batching). Prints errors,
p50/p99 latency and QPS of each, their QPS ratio, and the in-process latency of the same searches called one at a
time (what HTTP, JSON and queueing add on top).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import aiohttp
import httpx
import numpy as np

from lsr.datasets import read_evaluation_set
from lsr.retrieval.search import Searcher


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def run_load(
    url: str, queries: list[str], requests: int, concurrency: int, k: int, mode: str
) -> tuple[list[float], int, float]:
    """The load generator shares the cores with the server, so it is aiohttp, the leaner client (the last line this
    script prints: its round trip against httpx's to the same server's GET /health)."""
    latencies: list[float] = []
    errors = 0
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors, next_index
        while next_index < requests:
            query = queries[next_index % len(queries)]
            next_index += 1
            started = time.perf_counter()
            try:
                async with session.post("/search", json={"query": query, "k": k, "mode": mode}) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started


async def health_round_trips(url: str, requests: int = 300) -> dict[str, float]:
    """p50 ms of GET /health, one request at a time, from aiohttp and from httpx: each client's own cost plus the
    least a server round trip costs."""

    async def p50_ms(get: Callable[[], Awaitable[object]]) -> float:
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            await get()
            times.append(time.perf_counter() - started)
        return float(np.median(times) * 1000)

    async with aiohttp.ClientSession(url) as session, httpx.AsyncClient(base_url=url) as client:

        async def with_aiohttp() -> bytes:
            async with session.get("/health") as response:
                return await response.read()

        return {"aiohttp": await p50_ms(with_aiohttp), "httpx": await p50_ms(lambda: client.get("/health"))}


BASELINE_ENV = {"LSR_MAX_BATCH": "1", "LSR_BATCH_WINDOW_MS": "0", "LSR_WORKERS": "4"}


def start_server(
    index: Path,
    extra_env: dict[str, str],
    args: tuple[str, ...] = (),
    port: int | None = None,
    log: IO | None = None,
    timeout_s: float = 600,
) -> tuple[subprocess.Popen, str]:
    """`lsr serve index` on ``port`` (a free one by default), once /ready answers 200. No API key unless
    ``extra_env`` sets one; ``args`` are more `lsr serve` options; its output goes to ``log`` (default nowhere)."""
    port = port or free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("LSR_API_KEY", None)
    env.pop("LSR_API_KEY_FILE", None)
    env.update(extra_env)
    command = [sys.executable, "-m", "lsr", "serve", str(index), "--port", str(port), *args]
    output = log or subprocess.DEVNULL
    server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            sys.exit("server exited")
        if time.monotonic() > deadline:
            server.kill()
            sys.exit(f"server not ready after {timeout_s:.0f} s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--modes", nargs="+", choices=["sparse", "dense", "hybrid"], help="default: every one the index has")
    args = parser.parse_args()
    queries = list(read_evaluation_set(args.dataset, "test").queries.values())

    searcher = Searcher.open(args.index)
    modes = args.modes or (["sparse", "dense", "hybrid"] if searcher.dense_encoder else ["sparse"])
    if not searcher.dense_encoder and set(modes) - {"sparse"}:
        sys.exit(f"{args.index} has no dense vectors: only --modes sparse")
    in_process = {}
    for mode in modes:
        searcher.search(queries[0], args.k, mode=mode)
        times = []
        for query in queries[:200]:
            started = time.perf_counter()
            searcher.search(query, args.k, mode=mode)
            times.append(time.perf_counter() - started)
        in_process[mode] = np.array(times) * 1000
    del searcher

    print(
        f"index {args.index} ({args.index.name}), {len(queries)} distinct test queries, k={args.k}, {args.requests} requests each"
    )
    print("| mode | concurrency | server | errors | QPS | p50 ms | p99 ms | QPS ÷ baseline |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        for concurrency in args.concurrency:
            measured = {}
            for name, env in (("baseline", BASELINE_ENV), ("batched", {})):
                server, url = start_server(args.index, env)
                try:
                    latencies, errors, seconds = asyncio.run(run_load(url, queries, args.requests, concurrency, args.k, mode))
                finally:
                    server.terminate()
                    server.wait(30)
                ms = np.array(latencies) * 1000
                measured[name] = args.requests / seconds
                ratio = f"{measured[name] / measured['baseline']:.2f}"
                print(
                    f"| {mode} | {concurrency} | {name} | {errors} | {measured[name]:.1f} | {np.percentile(ms, 50):.1f} | "
                    f"{np.percentile(ms, 99):.1f} | {ratio} |"
                )
    for mode, base in in_process.items():
        print(f"in-process {mode}, one query at a time: p50 {np.percentile(base, 50):.1f} ms = {1000 / base.mean():.1f} QPS")
    server, url = start_server(args.index, {})
    try:
        round_trips = asyncio.run(health_round_trips(url))
    finally:
        server.terminate()
        server.wait(30)
    print("GET /health one at a time, p50: " + ", ".join(f"{client} {ms:.2f} ms" for client, ms in round_trips.items()))


if __name__ == "__main__":
    main()
