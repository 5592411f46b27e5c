"""Encoding a corpus on a Ray cluster with Ray Data: batches of texts → actors holding the encoders → vectors.

Each actor receives the very ``encode`` function an in-process run calls (encoders and quantization included,
shipped once through Ray's object store), and every batch is the same list of texts an in-process run encodes
together, so the vectors are the same. Results come back in corpus order (Ray Data's ``preserve_order``), so the
pipeline checkpoints chunks and reports progress exactly as it does in process.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from lsr.errors import LsrError

if TYPE_CHECKING:
    from lsr.indexer.pipeline import Encoded

LOCAL = "local"  # `--ray local`: start a Ray cluster on this machine for the run
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # plenty for batches of texts and vectors; Ray's default takes 30% of RAM
BatchEncoder = Callable[[list[list[str]]], Iterator["Encoded"]]


class _EncodingActor:
    """Holds the encoders for the actor's lifetime; one row of the dataset is one batch of texts."""

    def __init__(self, encode: Callable[[list[str]], Encoded], threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # the actor's share of the node's cores, not all of them
        self._encode = encode

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # pickle: the Encoded parts go back to the driver as they are (sparse matrix + dense array), not as columns.
        encoded = [pickle.dumps(self._encode([str(text) for text in texts])) for texts in batch["texts"]]
        return {"number": batch["number"], "encoded": np.array(encoded, dtype=object)}


def _ray():
    # Ray's C++ failure handler would replace the JVM's SIGSEGV handler, which the JVM needs for its implicit null
    # checks: a Lucene search later in the same process then dies of SIGSEGV (it did in the test suite, Lucene
    # tests before the Ray one). Ray reads the switch when it is first imported.
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        import ray
    except ImportError as exc:
        raise LsrError(f"--ray needs Ray: pip install 'lsr[ray]' ({exc})") from exc
    return ray


@contextmanager
def ray_encoding(address: str, encode: Callable[[list[str]], Encoded]) -> Iterator[BatchEncoder]:
    """A cluster for the run: ``local`` starts one on this machine (stopped afterwards); anything else is the
    address of a running cluster (``auto``, ``ray://host:10001``), whose nodes need lsr installed."""
    ray = _ray()
    environment = {"env_vars": {name: os.environ[name] for name in ("HF_HUB_OFFLINE",) if name in os.environ}}
    try:
        if address == LOCAL:
            cpus = os.cpu_count() or 1
            # address="local": always a new cluster, never one `ray start` left running on this machine.
            ray.init(
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                runtime_env=environment,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, runtime_env=environment, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LsrError(f"cannot start or reach the Ray cluster {address!r}: {exc}") from exc
    try:
        yield lambda batches: _encode_on_ray(ray, batches, encode)
    finally:
        ray.shutdown()


def _encode_on_ray(ray, batches: list[list[str]], encode: Callable[[list[str]], Encoded]) -> Iterator[Encoded]:
    if not batches:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    actors = min(cpus, len(batches))
    threads = max(1, cpus // actors)
    rows = [{"number": number, "texts": texts} for number, texts in enumerate(batches)]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _EncodingActor,
        fn_constructor_args=(encode, threads),
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,
    )
    for number, row in enumerate(dataset.iter_rows()):
        if row["number"] != number:  # preserve_order guarantees this; a silent reordering would corrupt the index
            raise RuntimeError(f"Ray returned batch {row['number']} where batch {number} belongs")
        yield pickle.loads(row["encoded"])
