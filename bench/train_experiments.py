"""Training experiments: FLOPS λ sweep, fine-tuned vs base splade-tiny, UHD vs SPLADE, inference-free vs SPLADE.

    nice -n 10 python bench/train_experiments.py            # writes docs/training/{README.md,results.json,*.png}

Every model is trained on nfcorpus train (hard negatives mined from a base splade-tiny index of nfcorpus),
indexed with the same settings and evaluated on nfcorpus test (the fine-tuned SPLADE and its base also on
scifact test). FLOPS is measured on the index and the test queries: Σ_j P(query uses j)·P(document has j),
the expected number of postings a query touches per document. Models and indexes are kept under --work,
so a rerun skips what is done (--fresh retrains everything).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from lsr.datasets import read_corpus, read_evaluation_set  # noqa: E402
from lsr.eval import run_queries, score_run  # noqa: E402
from lsr.indexer import IndexFolder, build_index  # noqa: E402
from lsr.retrieval.encoders import Architecture, UhdSettings, load_sparse_encoder  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402
from lsr.retrieval.training import TrainingConfig, load_training_data, mine_hard_negatives, train  # noqa: E402

LAMBDAS = (1e-3, 1e-2, 1.0)  # λ_d = λ_q
FINETUNE_LEARNING_RATE, FINETUNE_LAMBDA = 2e-5, 1e-4
UHD_VARIANTS = ((8, False), (32, True))  # (k, binarized): two k values, with and without binarization
UHD_DIM = 2048
DOC_MAX_LENGTH = 64  # indexing: short, so that the whole set runs in well under an hour on 2 shared cores
LATENCY_QUERIES = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("indexes/train-experiments"))
    parser.add_argument("--out", type=Path, default=Path("docs/training"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--only", nargs="*", help="run just these systems (slugs, e.g. uhd-k=8); for splitting the work over processes")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    nfcorpus, scifact = args.data / "nfcorpus", args.data / "scifact"
    base = TrainingConfig(
        steps=args.steps, batch_size=args.batch_size, learning_rate=1e-4, lambda_warmup_steps=args.steps // 2,
        query_max_length=24, doc_max_length=64, seed=0,
    )
    results: dict = {"recipe": {**base.to_dict(), "index_doc_max_length": DOC_MAX_LENGTH, "training_dataset": "nfcorpus train"}, "systems": []}

    base_label = "splade-tiny (base)"
    base_index = index(args.work / f"index-{slug(base_label)}-nfcorpus", nfcorpus, "splade-tiny")  # also its eval index
    data = load_training_data(nfcorpus, "train", max_queries=500, seed=0)
    results["training_queries"] = len(data.queries)

    systems = [(base_label, "base", "splade-tiny", None)]
    systems += [(f"SPLADE λ={lam:g}", "sweep", None, replace(base, lambda_d=lam, lambda_q=lam)) for lam in LAMBDAS]
    gentle = replace(base, learning_rate=FINETUNE_LEARNING_RATE, lambda_d=FINETUNE_LAMBDA, lambda_q=FINETUNE_LAMBDA)
    # The sweep's learning rate moves splade-tiny far in 30 steps (documents lose most terms); a gentler one
    # with a small λ is the candidate for "fine-tuned beats base".
    systems.append((f"SPLADE fine-tuned (lr {FINETUNE_LEARNING_RATE:g}, λ={FINETUNE_LAMBDA:g})", "fine-tuned", None, gentle))
    # The same without mined negatives (in-batch and random ones only): mined top hits of nfcorpus are often
    # unjudged relevant documents, which would teach the model to drop the terms they share with the query.
    systems.append((f"SPLADE fine-tuned (lr {FINETUNE_LEARNING_RATE:g}, λ={FINETUNE_LAMBDA:g}), random negatives", "fine-tuned", None, gentle))
    for k, binarized in UHD_VARIANTS:
        uhd = Architecture(arch="uhd", uhd=UhdSettings(dim=UHD_DIM, k=k, binarized=binarized))
        label = f"UHD k={k}{' binarized' if binarized else ''}"
        systems.append((label, "uhd", None, replace(base, architecture=uhd, lambda_d=0.0, lambda_q=0.0)))
    inference_free = replace(base, architecture=Architecture(query_encoder="bow", idf=True), lambda_d=LAMBDAS[0])
    systems.append(("inference-free SPLADE (IDF bag of words)", "inference-free", None, inference_free))

    if args.only:
        systems = [system for system in systems if slug(system[0]) in args.only]
    for label, group, model, config in systems:
        entry = {"system": label, "group": group}
        if config is not None:
            model_folder = args.work / f"model-{slug(label)}"
            if not (model_folder / "training.json").is_file():
                random_negatives = label.endswith("random negatives")
                if not data.negatives and not random_negatives:  # mined once, and only when needed
                    mine_hard_negatives(data, Searcher(IndexFolder(base_index), load_sparse_encoder("splade-tiny")), depth=50)
                print(f"training {label} …", flush=True)
                examples = replace(data, negatives={}) if random_negatives else data
                train(config, examples, model_folder, overwrite=True, on_log=progress)
            summary = json.loads((model_folder / "training.json").read_text())
            entry["train_seconds"] = summary["wall_seconds"]
            entry["last_step"] = summary["last_step"]
            model = str(model_folder)
        entry["model"] = model
        entry["nfcorpus"] = evaluate(index(args.work / f"index-{slug(label)}-nfcorpus", nfcorpus, model), nfcorpus, args.work)
        print(label, entry["nfcorpus"], flush=True)
        results["systems"].append(entry)
        write(results, args.out)  # after every system: an interrupted run still leaves a report

    if args.only:
        return
    finetuned = next(e for e in results["systems"] if e["group"] == "fine-tuned")
    latency_systems = [results["systems"][0], finetuned, next(e for e in results["systems"] if e["group"] == "inference-free")]
    results["latency"] = latency(args.work, nfcorpus, latency_systems)
    write(results, args.out)

    for entry in (results["systems"][0], finetuned):
        entry["scifact"] = evaluate(index(args.work / f"index-{slug(entry['system'])}-scifact", scifact, entry["model"]), scifact, args.work)
        print(entry["system"], "scifact", entry["scifact"], flush=True)
        write(results, args.out)
    print(f"wrote {args.out}/README.md, results.json and plots")


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out)
    (out / "README.md").write_text(report(results))


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in ".=" else "-" for c in label.lower()).strip("-")


def progress(entry: dict) -> None:
    if entry["step"] % 10 == 0:
        print(f"  step {entry['step']}: loss {entry['loss']:.3f} (ranking {entry['ranking_loss']:.3f}), "
              f"terms q/d {entry['active_terms_query']}/{entry['active_terms_document']}, {entry['seconds']}s", flush=True)


def index(folder: Path, dataset: Path, model: str) -> Path:
    if not (folder / "manifest.json").is_file():
        started = time.perf_counter()
        encoder = load_sparse_encoder(model, doc_max_length=DOC_MAX_LENGTH, query_max_length=32)
        build_index(read_corpus(dataset), encoder, folder, overwrite=True, progress=False)
        print(f"indexed {dataset.name} with {model} in {time.perf_counter() - started:.0f}s", flush=True)
    return folder


def evaluate(folder: Path, dataset: Path, work: Path) -> dict:
    """Measures of an index on a dataset's test split, kept in ``work`` so reruns only collect them."""
    cached = work / f"eval-{folder.name}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    searcher = Searcher.open(folder)
    evaluation = read_evaluation_set(dataset, "test")
    run = run_queries(searcher, evaluation.queries, k=100, progress=False)
    scores = score_run(evaluation.qrels, run, ["nDCG@10", "R@100"])
    documents = searcher.index.vectors > 0
    queries = searcher.encoder.encode_queries(list(evaluation.queries.values())) > 0
    document_share = np.asarray(documents.mean(axis=0)).ravel()
    query_share = np.asarray(queries.mean(axis=0)).ravel()
    measured = {
        **{name: round(value, 4) for name, value in scores.aggregate.items()},
        "flops": round(float(query_share @ document_share), 3),
        "terms_per_document": round(documents.nnz / documents.shape[0], 1),
        "terms_per_query": round(queries.nnz / queries.shape[0], 1),
    }
    cached.write_text(json.dumps(measured) + "\n")
    return measured


def latency(work: Path, dataset: Path, systems: list[dict]) -> dict:
    """Per-query search time (query encoding included), systems interleaved query by query, median over queries."""
    queries = list(read_evaluation_set(dataset, "test").queries.values())[:LATENCY_QUERIES]
    searchers = {e["system"]: Searcher.open(work / f"index-{slug(e['system'])}-nfcorpus") for e in systems}
    times: dict[str, list[float]] = {name: [] for name in searchers}
    for query in queries:
        for name, searcher in searchers.items():
            started = time.perf_counter()
            searcher.search(query, 10, mode="sparse")
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times[systems[0]["system"]])
    return {
        name: {"median_ms": round(statistics.median(values) * 1000, 2), "vs_base": round(statistics.median(values) / reference, 3)}
        for name, values in times.items()
    }


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5.5))
    markers = {"base": "*", "sweep": "o", "fine-tuned": "D", "uhd": "s", "inference-free": "^"}
    for entry in results["systems"]:
        point = entry["nfcorpus"]
        axis.scatter(point["flops"], point["nDCG@10"], marker=markers[entry["group"]], s=80, label=entry["system"])
    sweep = sorted((e["nfcorpus"]["flops"], e["nfcorpus"]["nDCG@10"]) for e in results["systems"] if e["group"] == "sweep")
    if sweep:
        axis.plot(*zip(*sweep), linestyle="--", color="grey", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlabel("FLOPS (expected postings touched per query–document pair, log)")
    axis.set_ylabel("nDCG@10, nfcorpus test")
    axis.set_title("Effectiveness vs efficiency")
    axis.legend(fontsize=7, loc="lower center")
    figure.tight_layout()
    figure.savefig(out / "ndcg_vs_flops.png", dpi=120)
    plt.close(figure)


CAVEATS = [
    "## What limits these numbers",
    "",
    "- Every model sees 30 steps × 8 queries: a CPU budget (2 cores shared with other jobs; the wall times above",
    "  were taken under that load), not a converged training run. Documents are truncated to 64 tokens everywhere.",
    "- UHD heads start from random weights, so 30 steps leave them far from trained; the UHD rows show that the",
    "  architecture trains, indexes and searches end to end, not what a trained UHD model can reach.",
    "- FLOPS here is measured on the index and the test queries, not the training batches' estimate in the logs.",
]


def findings(results: dict) -> list[str]:
    """What the table says, computed from it, so the text stays true when the numbers change."""
    by_group: dict[str, list[dict]] = {}
    for entry in results["systems"]:
        by_group.setdefault(entry["group"], []).append(entry)
    lines = ["## Findings (computed from the table)", ""]
    if "base" not in by_group:  # a partial run (--only)
        return lines
    base = by_group["base"][0]["nfcorpus"]
    sweep = by_group.get("sweep", [])
    if len(sweep) > 1:
        flops = [e["nfcorpus"]["flops"] for e in sweep]  # in increasing λ
        terms = [e["nfcorpus"]["terms_per_document"] for e in sweep]
        monotone = all(a > b for a, b in zip(flops, flops[1:])) and all(a > b for a, b in zip(terms, terms[1:]))
        lines.append(f"- λ sweep: FLOPS {' → '.join(map(str, flops))}, terms/doc {' → '.join(map(str, terms))} as λ grows: "
                     f"{'strictly decreasing' if monotone else 'NOT monotone'}.")
    for entry in sweep + by_group.get("fine-tuned", []):
        delta = entry["nfcorpus"]["nDCG@10"] - base["nDCG@10"]
        lines.append(f"- {entry['system']}: nDCG@10 {entry['nfcorpus']['nDCG@10']:.4f} vs base {base['nDCG@10']:.4f} "
                     f"({'+' if delta >= 0 else '−'}{abs(delta):.4f}) at {entry['nfcorpus']['flops'] / base['flops']:.2f}× the base's FLOPS.")
    for entry in by_group.get("uhd", []) + by_group.get("inference-free", []):
        point = entry["nfcorpus"]
        nearest = min(sweep + by_group["base"] + by_group.get("fine-tuned", []), key=lambda e: abs(e["nfcorpus"]["flops"] - point["flops"]))
        lines.append(f"- {entry['system']}: nDCG@10 {point['nDCG@10']:.4f} at FLOPS {point['flops']}; the SPLADE point nearest in "
                     f"FLOPS ({nearest['system']}, {nearest['nfcorpus']['flops']}) has {nearest['nfcorpus']['nDCG@10']:.4f}.")
    return lines


def report(results: dict) -> str:
    recipe = results["recipe"]
    lines = [
        "# Training experiments",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 nice -n 10 python bench/train_experiments.py` (writes this folder).",
        "",
        f"Recipe (every trained model, unless its name says otherwise): {recipe['steps']} steps, batch {recipe['batch_size']} queries × (1 positive + 1 mined hard "
        f"negative) with in-batch negatives, lr {recipe['learning_rate']}, training lengths query {recipe['query_max_length']} / "
        f"document {recipe['doc_max_length']} tokens, λ warm-up T = {recipe['lambda_warmup_steps']} steps; "
        f"{results['training_queries']} nfcorpus train queries, negatives from a splade-tiny index (top 50 minus positives). "
        f"All indexes use documents truncated to {recipe['index_doc_max_length']} tokens. On 2 shared CPU cores.",
        "",
        "FLOPS = Σ_j P(query uses term j)·P(document has term j), measured on the index and the test queries.",
        "",
        "![nDCG@10 vs FLOPS](ndcg_vs_flops.png)",
        "",
        "| system | nDCG@10 | R@100 | FLOPS | terms/doc | terms/query | train wall time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["systems"]:
        n = entry["nfcorpus"]
        wall = f"{entry['train_seconds']:.0f}s" if "train_seconds" in entry else "—"
        lines.append(f"| {entry['system']} | {n['nDCG@10']:.4f} | {n['R@100']:.4f} | {n['flops']:.3f} | {n['terms_per_document']} | {n['terms_per_query']} | {wall} |")
    lines += ["", *findings(results), "", *CAVEATS]
    lines += ["", "## scifact test (zero-shot: trained on nfcorpus)", "", "| system | nDCG@10 | R@100 |", "|---|---:|---:|"]
    for entry in results["systems"]:
        if "scifact" in entry:
            lines.append(f"| {entry['system']} | {entry['scifact']['nDCG@10']:.4f} | {entry['scifact']['R@100']:.4f} |")
    lines += ["", "## Query latency on nfcorpus (query encoding + sparse search, k=10, median over "
              f"{LATENCY_QUERIES} queries, interleaved)", "", "| system | median ms | × base |", "|---|---:|---:|"]
    for name, value in results.get("latency", {}).items():
        lines.append(f"| {name} | {value['median_ms']} | {value['vs_base']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
