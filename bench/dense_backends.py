"""all-MiniLM-L6-v2 through torch (sentence-transformers, as lsr runs it) against ONNX Runtime and OpenVINO, fp32 and
int8, all measured in the same run, interleaved, one thread each:

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 nice -n 19 python bench/dense_backends.py

Speed: docs/s over the same first --docs scifact documents (256-token cut, length-sorted batches of 16, as
sentence-transformers batches), timed in chunks of --chunk documents with every backend run on each chunk in turn
(the order rotates), and the p50 of one scifact test query encoded alone, every backend on each query in turn.
Ratios are against torch measured on the same chunks and queries. Fidelity: the largest cosine distance
(1 − cos) between a backend's embedding and torch's, over the timed documents and queries. Quality: nDCG@10 of
dense-only retrieval (exact inner product over the normalized embeddings, the whole corpus) on the test split of
each --quality dataset, every backend encoding corpus and queries itself (with --quality-threads: threads change
the speed, not the vectors beyond float rounding).

sentence-transformers' own `backend="onnx"` / `"openvino"` need optimum-onnx / optimum-intel, whose releases pin
transformers < 4.58 / < 5.6 (lsr runs transformers 5.x), so they cannot be installed beside lsr. What those backends
run is built here from the packaged model folder without them:
  torch, onnx, onnx-int8  lsr's dense encoder on each backend (load_dense_encoder, retrieval/encoders/onnx.py):
              the transformer exported by torch.onnx and run by ONNX Runtime, sentence-transformers' tokenization
              and batching, mean pooling and normalization around it; int8 is that graph dynamically quantized
              with the settings of sentence-transformers' export_dynamic_quantized_onnx_model(..., "avx512_vnni")
  openvino    lsr's ONNX export compiled by OpenVINO at f32 (INFERENCE_PRECISION_HINT=f32)
  openvino-default  the same at OpenVINO's default precision hint, which is bf16 on CPUs with AVX512-BF16 or AMX
              (what lsr's `--dense-backend openvino` and sentence-transformers' openvino backend run here)
  openvino-int8     NNCF post-training static quantization (ModelType.TRANSFORMER), as
              export_static_quantized_openvino_model does, calibrated on --calibration documents of another
              corpus (cisi, so no evaluated text is seen)
openvino-int8 needs `pip install nncf` (measured with nncf 3.4.0, openvino 2026.4.1) and is left out without it.
Exports are cached in lsr's cache folder (retrieval/encoders/onnx.py), keyed by the model's content hash; no
embedding is cached.
Machines here are shared: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch and ONNX Runtime load
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lsr.datasets import read_corpus, read_evaluation_set, read_queries  # noqa: E402
from lsr.eval.metrics import score_run  # noqa: E402
from lsr.retrieval.encoders import DENSE_BACKENDS, load_dense_encoder, resolve_model  # noqa: E402
from lsr.retrieval.encoders.onnx import INPUTS, cache_dir, onnx_model  # noqa: E402

MODEL = "all-minilm-l6-v2"
MAX_LENGTH = 256  # the model's max_seq_length, which lsr keeps for documents and queries
BATCH_SIZE = 16  # SentenceTransformerEncoder's
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

Encode = Callable[[list[str]], np.ndarray]


class MeanPooled:
    """sentence-transformers' pipeline around a forward function: texts sorted longest first (by characters) into
    batches, tokenized with padding and the 256-token cut, last hidden states mean-pooled over real tokens, then
    L2-normalized."""

    def __init__(self, model_path: Path, forward: Callable[[dict[str, np.ndarray]], np.ndarray]) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.forward = forward

    def __call__(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            tokens = self.tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="np"
            )
            hidden = self.forward({name: tokens[name].astype(np.int64) for name in INPUTS})
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            vectors[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors


def openvino_forward(model, threads: int, precision: str | None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda feeds: request.infer(feeds)[0].copy()


def openvino_default_precision() -> str:
    import openvino as ov

    return str(ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT"))


def openvino_int8(onnx_path: Path, target: Path, calibration: list[str], model_path: Path) -> Path:
    """NNCF static int8 quantization of the ONNX graph read by OpenVINO, saved as OpenVINO IR."""
    import nncf
    import openvino as ov
    from transformers import AutoTokenizer

    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(model_path)

    def feeds(text: str) -> dict[str, np.ndarray]:
        tokens = tokenizer([text], truncation=True, max_length=MAX_LENGTH, return_tensors="np")
        return {name: tokens[name].astype(np.int64) for name in INPUTS}

    quantized = nncf.quantize(
        ov.Core().read_model(onnx_path),
        nncf.Dataset(calibration, feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
        fast_bias_correction=True,
    )
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        ov.save_model(quantized, partial)
        os.replace(partial, target)
        os.replace(partial.with_suffix(".bin"), target.with_suffix(".bin"))
    return target


def backends(names: list[str], threads: int, calibration: list[str]) -> dict[str, Encode]:
    """torch, onnx and onnx-int8 are lsr's own (load_dense_encoder); the OpenVINO ones compile lsr's ONNX export."""
    torch.set_num_threads(threads)  # lsr's ONNX Runtime sessions take torch's thread count
    built: dict[str, Encode] = {}
    for name in names:
        if name in DENSE_BACKENDS:
            built[name] = load_dense_encoder(MODEL, device="cpu", backend=name).encode_documents
        elif name.startswith("openvino"):
            resolved = resolve_model(MODEL)
            load_dense_encoder(MODEL, device="cpu", backend="onnx")  # exports the transformer unless cached
            onnx_path = onnx_model(None, resolved.content_hash)
            if name == "openvino-int8":
                target = cache_dir() / "bench" / "openvino" / resolved.content_hash[:32] / "openvino_model_qint8.xml"
                model = str(openvino_int8(onnx_path, target, calibration, resolved.path))
            else:
                model = str(onnx_path)
            precision = None if name == "openvino-default" else "f32"
            built[name] = MeanPooled(resolved.path, openvino_forward(model, threads, precision))
        else:
            raise SystemExit(f"unknown backend {name!r}")
    return built


def rotated(names: list[str], step: int) -> list[str]:
    shift = step % len(names)
    return names[shift:] + names[:shift]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(1.0 - np.sum(a * b, axis=1)))


def speed(systems: dict[str, Encode], texts: list[str], queries: list[str], chunk: int) -> dict[str, dict[str, float]]:
    names = list(systems)
    for encode in systems.values():
        encode(texts[:BATCH_SIZE])  # warm-up: first-call allocations, kernel selection
        encode(queries[:1])
    seconds = dict.fromkeys(names, 0.0)
    doc_vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for step, start in enumerate(range(0, len(texts), chunk)):
        for name in rotated(names, step):
            began = time.perf_counter()
            doc_vectors[name].append(systems[name](texts[start : start + chunk]))
            seconds[name] += time.perf_counter() - began
    latencies: dict[str, list[float]] = {name: [] for name in names}
    query_vectors: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for step, query in enumerate(queries):
        for name in rotated(names, step):
            began = time.perf_counter()
            query_vectors[name].append(systems[name]([query]))
            latencies[name].append(time.perf_counter() - began)
    results = {}
    for name in names:
        docs, qs = np.vstack(doc_vectors[name]), np.vstack(query_vectors[name])
        results[name] = {
            "docs_per_s": len(texts) / seconds[name],
            "query_p50_ms": float(np.percentile(np.asarray(latencies[name]) * 1000, 50)),
            "cos_distance": max(
                cosine_distance(docs, np.vstack(doc_vectors["torch"])), cosine_distance(qs, np.vstack(query_vectors["torch"]))
            ),
        }
    return results


def ndcg(systems: dict[str, Encode], dataset: Path) -> dict[str, float]:
    corpus = read_corpus(dataset).documents
    evaluation = read_evaluation_set(dataset, "test")
    ids, texts = [doc.id for doc in corpus], [doc.contents for doc in corpus]
    query_ids = list(evaluation.queries)
    scores = {}
    for name, encode in systems.items():
        began = time.perf_counter()
        docs = encode(texts)
        queries = encode([evaluation.queries[q] for q in query_ids])
        similarities = queries @ docs.T
        top = np.argsort(-similarities, axis=1, kind="stable")[:, :100]
        run = {q: {ids[d]: float(similarities[i, d]) for d in top[i]} for i, q in enumerate(query_ids)}
        scores[name] = score_run(evaluation.qrels, run, ["nDCG@10"]).aggregate["nDCG@10"]
        print(f"  {dataset.name} {name}: nDCG@10 {scores[name]:.4f} ({time.perf_counter() - began:.0f} s)", flush=True)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=100, help="documents per interleaved timing chunk")
    parser.add_argument("--queries", type=int, default=300, help="scifact test queries timed one by one")
    parser.add_argument("--threads", type=int, default=1)
    openvino = ["openvino", "openvino-default", *(["openvino-int8"] if importlib.util.find_spec("nncf") else [])]
    parser.add_argument("--backends", nargs="+", default=[*DENSE_BACKENDS, *openvino])
    parser.add_argument("--quality", nargs="*", default=["scifact", "nfcorpus"], help="datasets for nDCG@10 (none: skip)")
    parser.add_argument("--quality-threads", type=int, default=2, help="threads while encoding the quality corpora")
    parser.add_argument("--calibration", type=int, default=300, help="cisi documents that calibrate openvino-int8")
    args = parser.parse_args()
    if args.backends[0] != "torch":
        raise SystemExit("torch must come first: every ratio is against it")

    calibration = [doc.contents for doc in read_corpus(DATA / "cisi").documents[: args.calibration]]
    systems = backends(args.backends, args.threads, calibration)
    texts = [doc.contents for doc in read_corpus(DATA / "scifact").documents[: args.docs]]
    queries = list(read_queries(DATA / "scifact", "test").values())[: args.queries]
    if "openvino-default" in systems:
        print(f"OpenVINO's default precision hint on this CPU: {openvino_default_precision()}")
    print(
        f"{len(texts)} scifact documents in chunks of {args.chunk}, {len(queries)} queries one at a time, "
        f"{args.threads} thread(s), interleaved"
    )
    measured = speed(systems, texts, queries, args.chunk)
    print_table(measured, {})  # now, as the quality part takes longer
    if args.quality and args.quality_threads != args.threads:
        systems = backends(args.backends, args.quality_threads, calibration)
    quality = {dataset: ndcg(systems, DATA / dataset) for dataset in args.quality}
    if quality:
        print_table(measured, quality)


def print_table(measured: dict[str, dict[str, float]], quality: dict[str, dict[str, float]]) -> None:
    base = measured["torch"]
    header = "| backend | docs/s | × torch | query p50 ms | speed-up vs torch | max 1 − cos vs torch |"
    header += "".join(f" nDCG@10 {d} | Δ {d} |" for d in quality)
    print("\n" + header)
    print("|---" * (6 + 2 * len(quality)) + "|")
    for name, row in measured.items():
        line = (
            f"| {name} | {row['docs_per_s']:.1f} | {row['docs_per_s'] / base['docs_per_s']:.2f} | {row['query_p50_ms']:.2f} "
            f"| {base['query_p50_ms'] / row['query_p50_ms']:.2f} | {row['cos_distance']:.1e} |"
        )
        line += "".join(f" {quality[d][name]:.4f} | {quality[d][name] - quality[d]['torch']:+.4f} |" for d in quality)
        print(line, flush=True)


if __name__ == "__main__":
    main()
