"""GPU check: index a dataset on CUDA, compare its impacts with a CPU index, time encoding and training steps.

Run where torch sees a GPU (on a CPU-only machine it says so and exits 2):

    python bench/gpu_check.py ../shared/data/scifact --cpu-docs 1000

For each precision (fp32, bf16) it builds the whole corpus with ``lsr.index_corpus(device="cuda")`` and the first
``--cpu-docs`` documents with ``device="cpu"``, then compares the two indexes' quantized impacts row by row (a term
present on one side only counts as impact 0 on the other). It prints GPU and CPU documents/s (encoding only, after
a warm-up) and the seconds per `lsr train` step on each device (same recipe, default settings).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lsr.datasets import read_corpus
from lsr.indexer import index_corpus
from lsr.indexer.index_folder import IndexFolder
from lsr.retrieval.encoders import load_sparse_encoder
from lsr.retrieval.training import TrainingConfig, load_training_data, train


def impact_differences(gpu: IndexFolder, cpu: IndexFolder) -> dict:
    rows = cpu.manifest.doc_count
    on_gpu, on_cpu = gpu.vectors[:rows].astype(np.int64), cpu.vectors.astype(np.int64)
    difference = (on_gpu - on_cpu).tocsr()
    difference.eliminate_zeros()
    magnitudes = np.abs(difference.data)
    compared = int((abs(on_gpu) + abs(on_cpu)).nnz)  # impacts present on either side
    return {
        "documents": rows,
        "impacts_compared": compared,
        "differing": int(magnitudes.size),
        "over_one": int((magnitudes > 1).sum()),
        "max_abs_difference": int(magnitudes.max(initial=0)),
        "share_within_one": round(1 - int((magnitudes > 1).sum()) / max(compared, 1), 6),
    }


def docs_per_second(precision: str, device: str, texts: list[str]) -> float:
    encoder = load_sparse_encoder(precision=precision, device=device)
    encoder.encode_documents(texts[:64])  # warm-up: kernels, allocator, caches
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    encoder.encode_documents(texts)
    if device == "cuda":
        torch.cuda.synchronize()
    return len(texts) / (time.perf_counter() - started)


def seconds_per_step(dataset: str, device: str, steps: int, out: Path) -> float:
    data = load_training_data(dataset, "train")
    config = TrainingConfig(steps=steps)
    summary = train(config, data, out, overwrite=True, device=device)
    return summary["wall_seconds"] / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--cpu-docs", type=int, default=1000, help="documents the CPU reference index encodes")
    parser.add_argument("--train-steps", type=int, default=100, help="GPU training steps timed (CPU: a tenth)")
    arguments = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to check", file=sys.stderr)
        sys.exit(2)
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  CPU threads {torch.get_num_threads()}")
    corpus = read_corpus(arguments.dataset)
    head = dataclasses.replace(corpus, documents=corpus.documents[: arguments.cpu_docs])
    texts = [document.contents for document in corpus.documents]
    results: dict = {"dataset": arguments.dataset, "documents": len(corpus)}
    with tempfile.TemporaryDirectory() as scratch:
        for precision in ("fp32", "bf16"):
            gpu_path, cpu_path = Path(scratch, f"gpu-{precision}"), Path(scratch, f"cpu-{precision}")
            started = time.perf_counter()
            index_corpus(corpus, gpu_path, precision=precision, device="cuda", progress=False)
            build_seconds = time.perf_counter() - started
            index_corpus(head, cpu_path, precision=precision, device="cpu", progress=False)
            results[precision] = {
                "gpu_index_seconds": round(build_seconds, 2),
                "gpu_docs_per_s": round(docs_per_second(precision, "cuda", texts), 1),
                "cpu_docs_per_s": round(docs_per_second(precision, "cpu", texts[: arguments.cpu_docs]), 1),
                "impacts": impact_differences(IndexFolder(gpu_path), IndexFolder(cpu_path)),
            }
            print(json.dumps({precision: results[precision]}), flush=True)
        steps = arguments.train_steps
        results["train_s_per_step"] = {
            "cuda": round(seconds_per_step(arguments.dataset, "cuda", steps, Path(scratch, "model-gpu")), 4),
            "cpu": round(seconds_per_step(arguments.dataset, "cpu", max(1, steps // 10), Path(scratch, "model-cpu")), 4),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
