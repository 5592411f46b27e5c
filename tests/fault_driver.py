"""The child side of tests/test_faults.py: a fork server that runs one index operation per request, optionally
killing itself with SIGKILL at one rename/replace/fsync boundary of that operation.

    python tests/fault_driver.py ROOT     (reads JSON requests on stdin, answers one JSON line per request)

It imports lsr and loads the encoders once, then forks a child per request, so each crash costs the operation's
time, not a Python start and two model loads. Forking is safe here because nothing in this process runs in
parallel: torch, OpenMP and numba are held to one thread (the parent's environment sets them so), so loading the
encoders starts no thread pool, and tqdm's monitor thread is off; the only other thread is pyarrow's jemalloc
background thread (sentence-transformers imports pyarrow), which jemalloc's own fork handlers make safe.
``check_fork_safe`` refuses to fork with any other thread running.

In the child, ``os.rename``, ``os.replace`` and ``os.fsync`` (``Path.rename`` and ``Path.replace`` call the first
two) are wrapped: a call on a path under ROOT is a boundary, counted and named (``replace index.partial/…``).
A request with ``crash`` = [boundary, n, "before" | "after"] kills the child just before or just after the n-th
time (from 0) it reaches that boundary: a real process death, so no ``finally`` block, context manager or buffered
write runs, as with kill -9 or an OOM kill. A request without ``crash`` writes the boundaries it passed to ``record``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

import tqdm

tqdm.tqdm.monitor_interval = 0  # no monitor thread in a process that forks

import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

from lsr.datasets import read_corpus  # noqa: E402
from lsr.indexer import add_bm25_side, add_dense_vectors, build_index, reindex  # noqa: E402
from lsr.indexer.index_folder import IndexFolder  # noqa: E402
from lsr.indexer.live import LiveIndex  # noqa: E402
from lsr.retrieval.encoders import SpladeEncoder, load_dense_encoder  # noqa: E402
from lsr.retrieval.search import LiveSearcher  # noqa: E402

ROOT = Path(sys.argv[1]).resolve()
# Documents cut at 64 tokens: each crash re-encodes what its run had not checkpointed, so short is fast.
SPLADE = SpladeEncoder("splade-tiny", doc_max_length=64)
MINILM = load_dense_encoder("all-minilm-l6-v2", max_length=64)
SAFE_THREADS = {"python", "jemalloc_bg_thd"}


def build(dataset: str, out: str, chunk_size: int, resume: bool = False, overwrite: bool = True) -> None:
    """`lsr index DATASET --out OUT --overwrite [--resume]`."""
    build_index(read_corpus(dataset), SPLADE, out, chunk_size=chunk_size, resume=resume, overwrite=overwrite, progress=False)


def add_dense(dataset: str, index: str, chunk_size: int, resume: bool = False) -> None:
    """`lsr index DATASET --out INDEX --add-dense [--resume]`."""
    add_dense_vectors(index, read_corpus(dataset), MINILM, chunk_size=chunk_size, resume=resume, progress=False)


def add_bm25(dataset: str, index: str) -> None:
    """`lsr index DATASET --out INDEX --add-bm25`."""
    add_bm25_side(index, read_corpus(dataset))


def reindex_to(index: str, out: str, engine: str) -> None:
    """`lsr reindex INDEX --out OUT --engine ENGINE --overwrite`."""
    reindex(index, out, engine, overwrite=True)


def compact(index: str) -> None:
    """`lsr compact INDEX`."""
    live = LiveIndex(index)
    live.compact()
    live.close()


def upsert(index: str, batches: list[list[dict]]) -> None:
    """What `lsr serve` does for each POST /documents: encode, log (fsync), answer."""
    from lsr.datasets import Document

    searcher = LiveSearcher(LiveIndex(index), SPLADE)
    for batch in batches:
        searcher.upsert([Document(doc["id"], doc["title"], doc["text"]) for doc in batch])
    searcher.live.close()


def open_index(index: str) -> None:
    """Any open of an index: it finishes or undoes an interrupted publish (``recover_interrupted_publish``)."""
    IndexFolder(index)


OPERATIONS = {function.__name__: function for function in (build, add_dense, add_bm25, reindex_to, compact, upsert, open_index)}


def check_fork_safe() -> None:
    threads = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in os.listdir("/proc/self/task")]
    if threads.count("python") != 1 or not set(threads) <= SAFE_THREADS:
        raise SystemExit(f"refusing to fork with these threads running: {threads}")


def under_root(path) -> str | None:
    if isinstance(path, int):  # a descriptor, as os.fsync gets it
        path = os.readlink(f"/proc/self/fd/{path}")
    resolved = Path(os.fsdecode(path)).absolute()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else None


def install_boundaries(crash: list | None) -> list[str]:
    """Wraps the calls that are boundaries; returns the list they are recorded in. ``crash``: [boundary, occurrence,
    "before" | "after"], a boundary named as recorded (the order of fsyncs within one folder tree may vary)."""
    passed: list[str] = []
    real = {"rename": os.rename, "replace": os.replace, "fsync": os.fsync}

    def boundary(kind: str, paths: list, call):
        names = [under_root(path) for path in paths]
        if names[0] is None:
            return call()
        name = f"{kind} {' -> '.join(str(name) for name in names)}"
        here = crash is not None and crash[:2] == [name, passed.count(name)]
        passed.append(name)
        if here and crash[2] == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = call()
        if here:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    def wrap(kind: str):
        if kind == "fsync":
            return lambda fd: boundary(kind, [fd], lambda: real[kind](fd))
        return lambda source, target, **options: boundary(kind, [source, target], lambda: real[kind](source, target, **options))

    for kind in real:
        setattr(os, kind, wrap(kind))
    return passed


def run_child(request: dict) -> None:
    """Runs in the forked child; never returns."""
    code = 0
    signal.alarm(300)  # a child that hangs dies of SIGALRM, which the test reports, rather than hanging the test
    if request.get("log"):
        descriptor = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(descriptor, 2)
    try:
        passed = install_boundaries(request.get("crash"))
        OPERATIONS[request["operation"]](**request["arguments"])
        if request.get("record"):
            Path(request["record"]).write_text(json.dumps(passed))
    except BaseException:
        os.write(2, traceback.format_exc().encode())
        code = 1
    os._exit(code)  # no atexit handlers, no flush of the server's buffers


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        check_fork_safe()
        pid = os.fork()
        if pid == 0:
            run_child(request)
        _, status = os.waitpid(pid, 0)
        answer = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
