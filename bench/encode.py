"""Document encoding throughput of splade-tiny: lsr's tiled decoder against the full-logits path and
sentence-transformers' SparseEncoder, all measured in the same run, with the machine's matmul peak.

    OMP_NUM_THREADS=1 nice -n 10 python bench/encode.py --docs 1000 --threads 1 2
    python bench/encode.py --docs 200 --queries 200 --uhd models/uhd-mlm-k8-kl  # a UHD model instead

Every system encodes the same first --docs scifact documents cut at 256 tokens. GFLOP/s counts the useful
work only (real tokens, no padding), the same count for every system, so it compares like with like:
per document of T tokens, hidden size H, feed-forward size I, vocabulary V and L layers,
    body     L · (8·T·H² [Q, K, V, output projections] + 4·T·H·I [feed-forward] + 4·T²·H [scores, weighted sum])
    head     2·T·H² (the MLM transform) + 2·T·H·V (the decoder)
(multiply-adds count 2; layer norms, softmax, GELU and embeddings are elementwise and left out). For
splade-tiny at 256 tokens the decoder is 88% of it. Peak is a 2048³ fp32 torch.matmul, timed just before
each system.
The query part times each scifact test query encoded alone (one call per query), p50; a lone bf16 query's
transformer runs on ONNX Runtime (retrieval/encoders/splade.py), and the rows below it time the torch ones.
Machines here are shared: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer  # noqa: E402

from lsr.datasets import read_corpus, read_queries  # noqa: E402
from lsr.retrieval.encoders import (  # noqa: E402
    SpladeEncoder,
    load_sparse_encoder,
    resolve_model,
    splade,  # noqa: E402
)
from lsr.retrieval.encoders.base import PRECISIONS  # noqa: E402
from lsr.retrieval.encoders.splade import splade_pool  # noqa: E402

MAX_LENGTH = 256
QUERY_BATCH = 16  # concurrent searches the service encodes together at concurrency 16


def full_logits_encoder(path, max_length: int = MAX_LENGTH) -> Callable[[list[str]], sp.csr_matrix]:
    """lsr's previous encoder, the baseline: length-sorted batches of 16, all (batch × tokens × vocab)
    logits, masked max, log1p∘ReLU."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForMaskedLM.from_pretrained(path).eval()

    def encode(texts: list[str]) -> sp.csr_matrix:
        order = np.argsort([len(text) for text in texts], kind="stable")
        blocks = []
        for start in range(0, len(texts), 16):
            batch = [texts[i] for i in order[start : start + 16]]
            tokens = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            with torch.inference_mode():
                blocks.append(sp.csr_matrix(splade_pool(model(**tokens).logits, tokens["attention_mask"]).numpy()))
        return sp.vstack(blocks, format="csr")[np.argsort(order)]

    return encode


def sentence_transformers_encoder(path) -> Callable[[list[str]], sp.csr_matrix]:
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(path), device="cpu")  # built as tests/test_encoders.py builds the reference
    model.max_seq_length = MAX_LENGTH

    def encode(texts: list[str]) -> sp.csr_matrix:
        return sp.csr_matrix(model.encode_document(texts, convert_to_tensor=True).to_dense().numpy())

    return encode


def useful_flops(path, texts: list[str]) -> float:
    config = AutoConfig.from_pretrained(path)
    h, i, v, layers = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    lengths = np.array(
        [len(ids) for ids in AutoTokenizer.from_pretrained(path)(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]],
        dtype=np.float64,
    )
    body = layers * (8 * lengths * h * h + 4 * lengths * h * i + 4 * lengths**2 * h)
    head = 2 * lengths * h * h + 2 * lengths * h * v
    return float((body + head).sum())


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """G(FL)OP/s of a size³ matmul; int8 through torch._int_mm, the kernel lsr's decoder screen runs on."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    multiply = torch._int_mm if dtype == torch.int8 else torch.matmul
    multiply(a, b)
    started = time.perf_counter()
    for _ in range(repeats):
        multiply(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact"))
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queries", type=int, default=300, help="test queries timed one by one (0: skip)")
    parser.add_argument("--tile-sweep", type=int, default=100, help="documents to time tile sizes on, 1 thread (0: skip)")
    parser.add_argument("--uhd", help="a UHD model folder (lsr train --arch uhd): time it instead of splade-tiny")
    args = parser.parse_args()

    path = resolve_model("splade-tiny").path
    texts = [doc.contents for doc in read_corpus(args.dataset).documents[: args.docs]]
    if args.uhd:
        compare_uhd(args.uhd, texts, list(read_queries(args.dataset, "test").values())[: args.queries])
        return
    flops = useful_flops(path, texts)
    systems: dict[str, Callable[[list[str]], sp.csr_matrix]] = {
        "full logits (previous lsr)": full_logits_encoder(path),
        "sentence-transformers SparseEncoder": sentence_transformers_encoder(path),
        **{f"lsr tiled, {p}": SpladeEncoder(doc_max_length=MAX_LENGTH, precision=p).encode_documents for p in PRECISIONS},
    }
    print(f"{len(texts)} scifact documents, {MAX_LENGTH}-token cut, {flops / len(texts) / 1e9:.2f} useful GFLOP per document")
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} thread(s): the fp32 peak is measured just before each system, as load from other jobs drifts")
        print(
            "| system | docs/s | GFLOP/s | × SparseEncoder | × full logits | fp32 peak GFLOP/s | fraction of peak | max abs Δ | "
            "impacts changed |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        rates, peaks, vectors = {}, {}, {}
        for name, encode in systems.items():
            encode(texts[:8])  # warm-up: first-call allocations and kernel selection
            peaks[name] = matmul_peak(torch.float32)
            started = time.perf_counter()
            vectors[name] = encode(texts)
            rates[name] = len(texts) / (time.perf_counter() - started)
        baseline = vectors["full logits (previous lsr)"]
        for name, rate in rates.items():
            gflops = rate * flops / len(texts) / 1e9
            # Against the baseline's weights, and its quantized impacts round(w × 100) as the index stores them.
            delta = abs(vectors[name] - baseline)
            changed = (abs(vectors[name].multiply(100).rint() - baseline.multiply(100).rint()) > 0).nnz
            print(
                f"| {name} | {rate:.1f} | {gflops:.1f} | {rate / rates['sentence-transformers SparseEncoder']:.2f} "
                f"| {rate / rates['full logits (previous lsr)']:.2f} | {peaks[name]:.1f} | {gflops / peaks[name]:.2f} "
                f"| {delta.max():.1e} | {changed} of {baseline.nnz} |"
            )
        print(f"bf16 matmul peak: {matmul_peak(torch.bfloat16):.1f} GFLOP/s; int8: {matmul_peak(torch.int8):.1f} GOP/s")

    if args.tile_sweep:
        # The decoder's logits per tile (tokens × columns): what must stay in cache until it is max-pooled.
        torch.set_num_threads(1)
        sample = texts[: args.tile_sweep]
        print(f"\nTile size, lsr tiled fp32, 1 thread, {len(sample)} documents: docs/s")
        encoder = SpladeEncoder(doc_max_length=MAX_LENGTH)
        default = splade.TILE_ELEMENTS
        for elements in (1 << 16, 1 << 18, 1 << 19, 1 << 21, 1 << 25):
            splade.TILE_ELEMENTS = elements  # read by SpladeEncoder at each encode call
            started = time.perf_counter()
            encoder.encode_documents(sample)
            rate = len(sample) / (time.perf_counter() - started)
            label = "whole vocabulary" if elements == 1 << 25 else f"{elements * 4 // 1024} KiB of logits"
            print(f"| {label}{' (default)' if elements == default else ''} | {rate:.1f} |")
        splade.TILE_ELEMENTS = default

    if args.queries:
        torch.set_num_threads(1)
        queries = list(read_queries(args.dataset, "test").values())[: args.queries]
        print(f"\nOne query at a time, 1 thread, {len(queries)} scifact test queries (64-token cut): p50 ms")
        encoders = {
            "full logits (previous lsr)": full_logits_encoder(path, 64),
            **{f"lsr tiled, {p}": SpladeEncoder(precision=p).encode_queries for p in PRECISIONS},
        }
        traced = SpladeEncoder(precision="bf16")
        traced._query_body = None  # a lone bf16 query's transformer in torch, traced, as before ONNX Runtime
        encoders["lsr tiled, bf16, torch transformer"] = traced.encode_queries
        for precision in PRECISIONS:  # the same encoder with its transformer run eagerly in torch, not traced
            eager = SpladeEncoder(precision=precision)
            eager._body = splade._Unpadded(eager._model).eval()
            eager._query_body = None
            encoders[f"lsr tiled, {precision}, eager transformer"] = eager.encode_queries
        for name, encode in encoders.items():
            seconds = []
            for query in queries:
                started = time.perf_counter()
                encode([query])
                seconds.append(time.perf_counter() - started)
            print(f"| {name} | {np.percentile(np.asarray(seconds) * 1000, 50):.2f} |")
        # What a service batch of concurrent searches costs: bf16 queries go one by one on ONNX Runtime, where they
        # used to share padded torch batches (the torch-transformer encoder still takes that path).
        print(f"\nThe same queries in batches of {QUERY_BATCH}, 1 thread, best of 3: ms per query")
        batched = {"lsr tiled, bf16": encoders["lsr tiled, bf16"], "lsr tiled, bf16, padded torch batches": traced.encode_queries}
        for name, encode in batched.items():
            rounds = []
            for _ in range(3):
                started = time.perf_counter()
                for start in range(0, len(queries), QUERY_BATCH):
                    encode(queries[start : start + QUERY_BATCH])
                rounds.append((time.perf_counter() - started) / len(queries))
            print(f"| {name} | {min(rounds) * 1000:.2f} |")


def compare_uhd(folder: str, texts: list[str], queries: list[str]) -> None:
    """UHD's CPU encoder (only the screen's columns decoded) against the model's own forward pass on padded batches
    of 16 (every latent dimension computed, lsr's UHD encoder before the screen), one thread, the same texts."""
    torch.set_num_threads(1)
    encoder = load_sparse_encoder(folder, doc_max_length=MAX_LENGTH)
    systems = {"full forward pass, batches of 16": encoder._encode_batches, "screened": encoder._encode}
    print(f"\nUHD {folder}, 1 thread: {len(texts)} documents ({MAX_LENGTH}-token cut) and {len(queries)} lone queries")
    print("| encoder | docs/s | × full forward | query p50 ms | max abs Δ | active dimensions |")
    print("|---|---|---|---|---|---|")
    rates, vectors, query_p50 = {}, {}, {}
    for name, encode in systems.items():
        encode(texts[:8], MAX_LENGTH)  # warm-up
        started = time.perf_counter()
        vectors[name] = encode(texts, MAX_LENGTH)
        rates[name] = len(texts) / (time.perf_counter() - started)
        seconds = []
        for query in queries:
            started = time.perf_counter()
            encode([query], encoder.spec.query_max_length)
            seconds.append(time.perf_counter() - started)
        query_p50[name] = np.percentile(np.asarray(seconds) * 1000, 50)
    baseline = "full forward pass, batches of 16"
    for name, rate in rates.items():
        delta = abs(vectors[name] - vectors[baseline]).max()
        print(
            f"| {name} | {rate:.1f} | {rate / rates[baseline]:.2f} | {query_p50[name]:.2f} | {delta:.1e} | {vectors[name].nnz} |"
        )


if __name__ == "__main__":
    main()
