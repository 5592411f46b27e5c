"""Untrained UHD heads taken from splade-tiny's masked-LM head (`lsr train --arch uhd --uhd-head mlm` starts there):
per token the k largest of the 30,522 logits, ReLU, max over tokens; weights linear, log1p (what `--uhd-head mlm`
uses) or binarized. Prints nDCG@10 on test and FLOPS for each k; k = 30522 with log1p is splade-tiny itself.

    python bench/uhd_mlm_head.py ../shared/data/nfcorpus     # ~9 minutes on 2 cores

Documents at 256 tokens, queries at 64 (lsr's defaults); brute-force scoring, top 100 per query.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ir_measures
import numpy as np
import scipy.sparse as sp
import torch
from ir_measures import nDCG
from transformers import AutoModelForMaskedLM, AutoTokenizer

from lsr.datasets import EvaluationSet, read_corpus, read_evaluation_set
from lsr.retrieval.encoders.registry import resolve_model

KS = (8, 32, 128, 30522)


def pooled_logits(model, tokenizer, texts: list[str], max_length: int) -> dict[int, sp.csr_matrix]:
    """Per k: ReLU of the max over tokens of each token's k largest logits (linear weights), one row per text."""
    rows: dict[int, list] = {k: [None] * len(texts) for k in KS}
    order = np.argsort([len(text) for text in texts])
    with torch.inference_mode():
        for start in range(0, len(texts), 16):
            batch = order[start : start + 16]
            chunk = [texts[i] for i in batch]
            tokens = tokenizer(chunk, max_length=max_length, truncation=True, padding=True, return_tensors="pt")
            logits = model(**tokens).logits
            padding = tokens["attention_mask"].unsqueeze(-1) == 0
            for k in KS:
                if k < logits.shape[-1]:
                    winners, positions = logits.topk(k, dim=-1)
                    kept = torch.zeros_like(logits).scatter_(-1, positions, torch.relu(winners))
                else:
                    kept = torch.relu(logits)
                pooled = kept.masked_fill(padding, 0).amax(1).numpy()
                for row, text_index in enumerate(batch):
                    rows[k][text_index] = sp.csr_matrix(pooled[row])
    return {k: sp.vstack(blocks).tocsr() for k, blocks in rows.items()}


def ndcg_at_10(queries: sp.csr_matrix, documents: sp.csr_matrix, evaluation: EvaluationSet, doc_ids: list[str]) -> float:
    scores = (queries @ documents.T).toarray()
    run = {}
    for row, query_id in enumerate(evaluation.queries):
        top = np.argsort(-scores[row])[:100]
        run[query_id] = {doc_ids[j]: float(scores[row, j]) for j in top if scores[row, j] > 0 and doc_ids[j] != query_id}
    return ir_measures.calc_aggregate([nDCG @ 10], evaluation.qrels, run)[nDCG @ 10]


def flops(queries: sp.csr_matrix, documents: sp.csr_matrix) -> float:
    """Expected multiplications per query-document pair: Σ_j P(query uses j) · P(document uses j)."""
    return float(np.asarray((queries > 0).mean(0)).ravel() @ np.asarray((documents > 0).mean(0)).ravel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    args = parser.parse_args()
    path = resolve_model("splade-tiny").path
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForMaskedLM.from_pretrained(path).eval()
    corpus = read_corpus(args.dataset, duplicates="first")
    evaluation = read_evaluation_set(args.dataset, "test")
    started = time.perf_counter()
    documents = pooled_logits(model, tokenizer, [doc.contents for doc in corpus.documents], 256)
    queries = pooled_logits(model, tokenizer, list(evaluation.queries.values()), 64)
    print(f"{args.dataset.name}: {len(corpus.documents)} documents encoded in {time.perf_counter() - started:.0f} s")
    doc_ids = [doc.id for doc in corpus.documents]
    for k in KS:
        q, d = queries[k], documents[k]
        variants = {
            "linear": (q, d),
            "log1p": (q.log1p(), d.log1p()),
            "binary": ((q > 0).astype(np.float32), (d > 0).astype(np.float32)),
        }
        for name, (query_vectors, doc_vectors) in variants.items():
            print(
                f"k={k:>5} {name:>6}: nDCG@10 {ndcg_at_10(query_vectors, doc_vectors, evaluation, doc_ids):.4f}  "
                f"FLOPS {flops(q, d):.2f}  terms per document {d.getnnz(1).mean():.0f}, per query {q.getnnz(1).mean():.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
