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
import math
import os
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForMaskedLM  # noqa: E402

from lsr.datasets import read_corpus, read_evaluation_set  # noqa: E402
from lsr.eval import run_queries, score_run  # noqa: E402
from lsr.eval.significance import paired_test  # noqa: E402
from lsr.eval.tuning import tune_fusion  # noqa: E402
from lsr.indexer import build_index  # noqa: E402
from lsr.retrieval.encoders import Architecture, UhdSettings, load_dense_encoder, load_sparse_encoder  # noqa: E402
from lsr.retrieval.encoders.registry import resolve_model  # noqa: E402
from lsr.retrieval.search import Searcher  # noqa: E402
from lsr.retrieval.training import (  # noqa: E402
    TrainingConfig,
    load_training_data,
    mine_hard_negatives,
    negatives_from_run,
    score_spread_ratio,
    train,
)
from lsr.runs import read_run, write_run  # noqa: E402

LAMBDAS = (1e-3, 1e-2, 1.0)  # λ_d = λ_q
FINETUNE_LEARNING_RATE, FINETUNE_LAMBDA = 2e-5, 1e-4
# (k, binarized, layers): two k values × with and without binarization, one factor varied at a time, and buckets once.
UHD_GRID = ((8, False, (-1,)), (8, True, (-1,)), (32, False, (-1,)), (32, True, (-1,)), (32, False, (-1, -2)))
UHD_DIM = 2048
UHD_STEPS = 300
UHD_HEAD_LEARNING_RATE = 1e-3  # the projection starts from random weights; the backbone keeps the recipe's rate
DOC_MAX_LENGTH = 64  # indexing: short, so that the whole set runs in well under an hour on 2 shared cores
# Fine-tuned vs base at the encoders' default lengths (documents 256, queries 64 tokens, as `lsr index` builds):
# all nfcorpus train queries, many steps at a low rate, a FLOPS weight small enough not to re-sparsify a model
# that is already sparse; the candidate with the best nfcorpus dev nDCG@10 is the one compared on test and scifact.
FULL_STEPS, FULL_LEARNING_RATE, FULL_LAMBDA = 400, 2e-5, 1e-5
FULL_TUNED_LABEL = f"SPLADE fine-tuned {FULL_STEPS} steps, random negatives"
# Distillation from the hybrid ranker (splade-tiny + all-MiniLM-L6-v2, fusion tuned on nfcorpus dev), run over the
# train queries: the teacher's margins stand in for the incomplete qrels, on which the contrastive loss above
# teaches the model to drop terms. Teacher alone (ranking weight 0); negatives from its top 50; its scores
# multiplied by the measured spread ratio (score_spread_ratio), so the student keeps its own score scale.
# (method, learning rate, steps): the runs tried, all candidates for the dev choice.
DISTILLED = (
    ("marginmse", 2e-5, FULL_STEPS),
    ("kl", 2e-5, FULL_STEPS),
    ("kl", 5e-5, FULL_STEPS),
    ("kl", 1e-4, FULL_STEPS),
    ("kl", 2e-5, 2 * FULL_STEPS),
    ("kl", 5e-5, 2 * FULL_STEPS),
)
TEACHER_DEPTH = 50
# WiSE-FT (Wortsman et al. 2022): the fine-tuned weights moved back toward the base's, (1 − α)·base + α·tuned;
# α is one more candidate setting, chosen on dev with the rest.
AVERAGE_ALPHAS = (0.25, 0.5, 0.75)
LATENCY_QUERIES = 100
FULL_BASE_LABEL = "splade-tiny (base), full length"
FULL_GROUPS = ("full-base", "full")
RECIPE_KEYS = (
    "steps",
    "batch_size",
    "learning_rate",
    "head_learning_rate",
    "lambda_d",
    "lambda_q",
    "lambda_warmup_steps",
    "doc_max_length",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("indexes/train-experiments"))
    parser.add_argument("--out", type=Path, default=Path("docs/training"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument(
        "--only", nargs="*", help="run just these systems (slugs, e.g. uhd-k=8); for splitting the work over processes"
    )
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    nfcorpus, scifact = args.data / "nfcorpus", args.data / "scifact"
    base = TrainingConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=1e-4,
        lambda_warmup_steps=args.steps // 2,
        query_max_length=24,
        doc_max_length=64,
        seed=0,
    )
    results: dict = {
        "recipe": {**base.to_dict(), "index_doc_max_length": DOC_MAX_LENGTH, "training_dataset": "nfcorpus train"},
        "systems": [],
    }

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
    systems.append(
        (
            f"SPLADE fine-tuned (lr {FINETUNE_LEARNING_RATE:g}, λ={FINETUNE_LAMBDA:g}), random negatives",
            "fine-tuned",
            None,
            gentle,
        )
    )
    for k, binarized, layers in UHD_GRID:
        uhd = Architecture(arch="uhd", uhd=UhdSettings(dim=UHD_DIM, k=k, layers=layers, binarized=binarized))
        label = f"UHD k={k}{' binarized' if binarized else ''}{f', {len(layers)} buckets' if len(layers) > 1 else ''}"
        systems.append(
            (
                label,
                "uhd",
                None,
                replace(
                    base,
                    architecture=uhd,
                    steps=UHD_STEPS,
                    head_learning_rate=UHD_HEAD_LEARNING_RATE,
                    lambda_d=0.0,
                    lambda_q=0.0,
                ),
            )
        )
    inference_free = replace(base, architecture=Architecture(query_encoder="bow", idf=True), lambda_d=LAMBDAS[0])
    systems.append(("inference-free SPLADE (IDF bag of words)", "inference-free", None, inference_free))
    full = replace(
        base,
        steps=FULL_STEPS,
        learning_rate=FULL_LEARNING_RATE,
        lambda_d=FULL_LAMBDA,
        lambda_q=FULL_LAMBDA,
        lambda_warmup_steps=FULL_STEPS // 4,
        query_max_length=32,
        doc_max_length=128,
        checkpoint_every=100,
    )
    systems.append((FULL_BASE_LABEL, "full-base", "splade-tiny", None))
    systems.append((FULL_TUNED_LABEL, "full", None, full))
    teacher, teacher_scale = hybrid_teacher(args.work, nfcorpus)
    results["teacher"] = {
        "system": "hybrid splade-tiny + all-MiniLM-L6-v2, fusion tuned on nfcorpus dev",
        "scale": round(teacher_scale, 2),
        "measured_scale": round(teacher_scale, 4),
    }
    for method, learning_rate, steps in DISTILLED:
        distilled = replace(
            full,
            distillation=method,
            ranking_weight=0.0,
            teacher_scale=round(teacher_scale, 2),
            learning_rate=learning_rate,
            steps=steps,
            lambda_warmup_steps=steps // 4,
            checkpoint_every=steps // 4,
        )
        systems.append(
            (f"SPLADE distilled from the hybrid ({method}, lr {learning_rate:g}, {steps} steps)", "full", None, distilled)
        )

    if args.only:
        results = merged_with_written(results, args.out, systems)
        systems = [system for system in systems if slug(system[0]) in args.only]
    full_data = None
    for label, group, model, config in systems:
        entry = {"system": label, "group": group}
        full_length = group in FULL_GROUPS
        if config is not None:
            model_folder = args.work / f"model-{slug(label)}"
            if full_length and full_data is None:
                full_data = load_training_data(nfcorpus, "train", seed=0)
                results["full_training_queries"] = len(full_data.queries)
            examples = full_data if full_length else data
            if not is_trained(model_folder, config, len(examples.queries)):
                print(f"training {label} …", flush=True)
                if config.distillation:
                    distilled = replace(examples, negatives={})
                    negatives_from_run(distilled, teacher, depth=TEACHER_DEPTH)
                    train(config, distilled, model_folder, teacher=teacher, overwrite=True, on_log=progress)
                else:
                    random_negatives = label.endswith("random negatives")
                    if not examples.negatives and not random_negatives:  # mined once, and only when needed
                        negatives_index = (
                            index(args.work / f"index-{slug(FULL_BASE_LABEL)}-nfcorpus", nfcorpus, "splade-tiny", full_length)
                            if full_length
                            else base_index
                        )
                        mine_hard_negatives(examples, Searcher.open(negatives_index), depth=50)
                    train(
                        config,
                        replace(examples, negatives={}) if random_negatives else examples,
                        model_folder,
                        overwrite=True,
                        on_log=progress,
                    )
            summary = json.loads((model_folder / "training.json").read_text())
            entry["train_seconds"] = summary["wall_seconds"]
            entry["last_step"] = summary["last_step"]
            entry["recipe"] = {key: summary["config"][key] for key in RECIPE_KEYS}
            model = str(model_folder)
        entry["model"] = model
        folder = index(args.work / f"index-{slug(label)}-nfcorpus", nfcorpus, model, full_length)
        entry["nfcorpus"] = evaluate(folder, nfcorpus, args.work)
        if full_length:
            entry["nfcorpus_dev"] = evaluate(folder, nfcorpus, args.work, split="dev")
        print(label, entry["nfcorpus"], flush=True)
        results["systems"] = [e for e in results["systems"] if e["system"] != label] + [entry]
        write(results, args.out)  # after every system: an interrupted run still leaves a report

    tuned = next((e for e in results["systems"] if e["system"] == FULL_TUNED_LABEL), None)
    for alpha in AVERAGE_ALPHAS if tuned else ():
        label = averaged_label(alpha)
        if args.only and slug(label) not in args.only:
            continue
        averaged = averaged_with_base(Path(tuned["model"]), alpha, args.work / f"model-{slug(label)}")
        folder = index(args.work / f"index-{slug(label)}-nfcorpus", nfcorpus, str(averaged), full_length=True)
        entry = {
            "system": label,
            "group": "full",
            "model": str(averaged),
            "recipe": tuned["recipe"],
            "train_seconds": tuned["train_seconds"],
            "nfcorpus": evaluate(folder, nfcorpus, args.work),
            "nfcorpus_dev": evaluate(folder, nfcorpus, args.work, split="dev"),
        }
        print(label, entry["nfcorpus"], flush=True)
        results["systems"] = [e for e in results["systems"] if e["system"] != label] + [entry]
        write(results, args.out)
    full_base = next((e for e in results["systems"] if e["group"] == "full-base"), None)
    candidates = [e for e in results["systems"] if e["group"] == "full"]
    if full_base and candidates:
        chosen = max(candidates, key=lambda e: e["nfcorpus_dev"]["nDCG@10"])  # model selection on dev, never on test
        for entry in candidates:
            entry["selected_on_dev"] = entry is chosen
        for entry in (full_base, chosen):
            folder = index(args.work / f"index-{slug(entry['system'])}-scifact", scifact, entry["model"], full_length=True)
            entry["scifact"] = evaluate(folder, scifact, args.work)
            print(entry["system"], "scifact", entry["scifact"], flush=True)
        chosen["paired_vs_base"] = {
            name: paired_against_base(args.work, chosen, full_base, dataset, split)
            for name, dataset, split in (
                ("nfcorpus_dev", "nfcorpus", "dev"),
                ("nfcorpus", "nfcorpus", "test"),
                ("scifact", "scifact", "test"),
            )
        }
        write(results, args.out)
    if args.only:
        return
    finetuned = next(e for e in results["systems"] if e["group"] == "fine-tuned")
    latency_systems = [results["systems"][0], finetuned, next(e for e in results["systems"] if e["group"] == "inference-free")]
    results["latency"] = latency(args.work, nfcorpus, latency_systems)
    write(results, args.out)
    print(f"wrote {args.out}/README.md, results.json and plots")


def hybrid_teacher(work: Path, nfcorpus: Path) -> tuple[dict, float]:
    """The hybrid ranker's run over nfcorpus train (fusion tuned on dev, 1000 hits per query) and the teacher scale:
    how much wider splade-tiny's scores spread than the hybrid's over the hybrid's top documents."""
    teacher_file, scale_file = work / "teacher-hybrid-train.trec", work / "teacher-scale.json"
    if not (teacher_file.is_file() and scale_file.is_file()):
        folder = work / "index-teacher-hybrid-nfcorpus"
        if not (folder / "manifest.json").is_file():
            build_index(
                read_corpus(nfcorpus),
                load_sparse_encoder("splade-tiny"),
                folder,
                dense_encoder=load_dense_encoder(),
                overwrite=True,
                progress=False,
            )
        searcher = Searcher.open(folder)
        fusion = tune_fusion(searcher, read_evaluation_set(nfcorpus, "dev"), "dev", progress=False).best[0]
        queries = read_evaluation_set(nfcorpus, "train").queries
        teacher = run_queries(searcher, queries, k=1000, mode="hybrid", fusion=fusion, progress=False)
        student = run_queries(searcher, queries, k=1000, mode="sparse", progress=False)
        scale_file.write_text(
            json.dumps({"fusion": str(fusion), "scale": score_spread_ratio(student, teacher, TEACHER_DEPTH)}) + "\n"
        )
        write_run(teacher, teacher_file, "hybrid-teacher")
    return read_run(teacher_file), json.loads(scale_file.read_text())["scale"]


def averaged_label(alpha: float) -> str:
    return f"{FULL_TUNED_LABEL}, weights averaged with base (α={alpha:g})"


def averaged_with_base(tuned: Path, alpha: float, out: Path) -> Path:
    """A model folder with the weights (1 − alpha)·splade-tiny + alpha·``tuned`` (same architecture)."""
    if (out / "model.safetensors").is_file():
        return out
    base = AutoModelForMaskedLM.from_pretrained(resolve_model("splade-tiny").path).state_dict()
    model = AutoModelForMaskedLM.from_pretrained(tuned)
    model.load_state_dict({name: torch.lerp(base[name], weights, alpha) for name, weights in model.state_dict().items()})
    staging = out.with_name(f"{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(tuned, staging, ignore=shutil.ignore_patterns("checkpoints", "model.safetensors"))
    model.save_pretrained(staging)
    staging.rename(out)
    return out


def merged_with_written(results: dict, out: Path, systems: list[tuple]) -> dict:
    """A partial run (--only) updates its systems in the written results and keeps the others (with their recipes)."""
    written = out / "results.json"
    if not written.is_file():
        return results
    previous = json.loads(written.read_text())
    configs = {label: config for label, _, _, config in systems if config is not None}
    for entry in previous["systems"]:
        if entry["system"] in configs and "recipe" not in entry:
            entry["recipe"] = {key: configs[entry["system"]].to_dict()[key] for key in RECIPE_KEYS}
    return {**previous, **{key: value for key, value in results.items() if key != "systems"}, "systems": previous["systems"]}


def is_trained(model_folder: Path, config: TrainingConfig, training_queries: int) -> bool:
    """A finished model folder trained with exactly this configuration on as many queries (else: retrain)."""
    summary_file = model_folder / "training.json"
    if not summary_file.is_file():
        return False
    summary = json.loads(summary_file.read_text())
    return summary["config"] == config.to_dict() and summary["training_queries"] == training_queries


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out)
    (out / "README.md").write_text(report(results))


def slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in ".=" else "-" for c in label.lower()).strip("-")


def progress(entry: dict) -> None:
    if entry["step"] % 10 == 0:
        print(
            f"  step {entry['step']}: loss {entry['loss']:.3f} (ranking {entry['ranking_loss']:.3f}), "
            f"terms q/d {entry['active_terms_query']}/{entry['active_terms_document']}, {entry['seconds']}s",
            flush=True,
        )


def index(folder: Path, dataset: Path, model: str, full_length: bool = False) -> Path:
    """An index of ``dataset``: documents cut to DOC_MAX_LENGTH, or at the encoder's default lengths (``full_length``)."""
    if not (folder / "manifest.json").is_file():
        started = time.perf_counter()
        encoder = (
            load_sparse_encoder(model)
            if full_length
            else load_sparse_encoder(model, doc_max_length=DOC_MAX_LENGTH, query_max_length=32)
        )
        build_index(read_corpus(dataset), encoder, folder, overwrite=True, progress=False)
        print(f"indexed {dataset.name} with {model} in {time.perf_counter() - started:.0f}s", flush=True)
    return folder


def evaluate(folder: Path, dataset: Path, work: Path, split: str = "test") -> dict:
    """Measures of an index on a dataset's split, kept in ``work`` so reruns only collect them."""
    cached = work / f"eval-{folder.name}-{split}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    searcher = Searcher.open(folder)
    evaluation = read_evaluation_set(dataset, split)
    run = run_queries(searcher, evaluation.queries, k=100, progress=False, mode="sparse")
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
    per_query_file(folder, work, split).write_text(
        json.dumps({q: values["nDCG@10"] for q, values in scores.per_query.items()}) + "\n"
    )
    return measured


def per_query_file(folder: Path, work: Path, split: str) -> Path:
    return work / f"eval-{folder.name}-{split}-per-query.json"


def paired_against_base(work: Path, chosen: dict, base: dict, dataset: str, split: str) -> dict:
    """Paired tests of the chosen model's per-query nDCG@10 against the base's on the same queries."""
    system, baseline = (
        json.loads(per_query_file(work / f"index-{slug(e['system'])}-{dataset}", work, split).read_text()) for e in (chosen, base)
    )
    queries = sorted(baseline)
    return paired_test([system[q] for q in queries], [baseline[q] for q in queries]).to_dict()


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
        name: {
            "median_ms": round(statistics.median(values) * 1000, 2),
            "vs_base": round(statistics.median(values) / reference, 3),
        }
        for name, values in times.items()
    }


def short_systems(results: dict) -> list[dict]:
    """The systems indexed with documents cut to DOC_MAX_LENGTH (comparable FLOPS), not the full-length ones."""
    return [entry for entry in results["systems"] if entry["group"] not in FULL_GROUPS]


def recipe_of(entry: dict, results: dict) -> str:
    recipe = {**results["recipe"], **entry.get("recipe", {})}
    head = f", head {recipe['head_learning_rate']:g}" if recipe.get("head_learning_rate") else ""
    return f"{recipe['steps']} × {recipe['batch_size']}, lr {recipe['learning_rate']:g}{head}"


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 5.5))
    markers = {"base": "*", "sweep": "o", "fine-tuned": "D", "uhd": "s", "inference-free": "^"}
    for entry in short_systems(results):
        point = entry["nfcorpus"]
        axis.scatter(point["flops"], point["nDCG@10"], marker=markers[entry["group"]], s=80, label=entry["system"])
    sweep = sorted((e["nfcorpus"]["flops"], e["nfcorpus"]["nDCG@10"]) for e in results["systems"] if e["group"] == "sweep")
    if sweep:
        axis.plot(*zip(*sweep), linestyle="--", color="grey", linewidth=1)
    axis.set_xscale("log")
    axis.set_xlabel("FLOPS (expected postings touched per query–document pair, log)")
    axis.set_ylabel("nDCG@10, nfcorpus test")
    axis.set_title("Effectiveness vs efficiency")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: UHD points sit low
    figure.tight_layout()
    figure.savefig(out / "ndcg_vs_flops.png", dpi=120)
    plt.close(figure)


CAVEATS = [
    "## What limits these numbers",
    "",
    "- The λ sweep, the 30-step fine-tuned rows and the inference-free row see 30 steps × 8 queries: a CPU budget (2 cores",
    "  shared with other jobs; the wall times were taken under that load), not converged training runs. Documents are",
    "  truncated to 64 tokens in every index of this table, so its FLOPS are comparable with each other only.",
    "- UHD heads start from random weights (the backbone's initialization, std 0.02); the lines below give each UHD",
    "  model's in-batch ranking loss at its last training step against chance: none is far below it.",
    "- FLOPS here is measured on the index and the test queries, not the training batches' estimate in the logs.",
]


def uhd_training_lines(results: dict) -> list[str]:
    """The last training step's in-batch ranking loss of each UHD model against chance, ln(2 × batch)."""
    lines = []
    for entry in short_systems(results):
        if entry["group"] == "uhd" and "last_step" in entry:
            batch = entry.get("recipe", results["recipe"])["batch_size"]
            lines.append(
                f"- {entry['system']}: ranking loss at its last step {entry['last_step']['ranking_loss']:.3f} "
                f"(chance: ln {2 * batch} = {math.log(2 * batch):.3f}); terms per document in that batch "
                f"{entry['last_step']['active_terms_document']}."
            )
    return lines


def findings(results: dict) -> list[str]:
    """What the table says, computed from it, so the text stays true when the numbers change."""
    by_group: dict[str, list[dict]] = {}
    for entry in short_systems(results):
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
        lines.append(
            f"- λ sweep: FLOPS {' → '.join(map(str, flops))}, terms/doc {' → '.join(map(str, terms))} as λ grows: "
            f"{'strictly decreasing' if monotone else 'NOT monotone'}."
        )
    for entry in sweep + by_group.get("fine-tuned", []):
        delta = entry["nfcorpus"]["nDCG@10"] - base["nDCG@10"]
        lines.append(
            f"- {entry['system']}: nDCG@10 {entry['nfcorpus']['nDCG@10']:.4f} vs base {base['nDCG@10']:.4f} "
            f"({'+' if delta >= 0 else '−'}{abs(delta):.4f}) at {entry['nfcorpus']['flops'] / base['flops']:.2f}× the base's "
            "FLOPS."
        )
    for entry in by_group.get("uhd", []) + by_group.get("inference-free", []):
        point = entry["nfcorpus"]
        nearest = min(
            sweep + by_group["base"] + by_group.get("fine-tuned", []), key=lambda e: abs(e["nfcorpus"]["flops"] - point["flops"])
        )
        lines.append(
            f"- {entry['system']}: nDCG@10 {point['nDCG@10']:.4f} at FLOPS {point['flops']}; the SPLADE point nearest in "
            f"FLOPS ({nearest['system']}, {nearest['nfcorpus']['flops']}) has {nearest['nfcorpus']['nDCG@10']:.4f}."
        )
    return lines


def full_length_section(results: dict) -> list[str]:
    full = sorted(
        (e for e in results["systems"] if e["group"] in FULL_GROUPS), key=lambda e: e["group"] != "full-base"
    )  # base first
    if not full:
        return []
    lines = [
        "## Fine-tuned vs base splade-tiny at full length",
        "",
        "Indexes at the encoders' default lengths (documents 256, queries 64 tokens; what `lsr index` builds), so the base row "
        "is the "
        f"sparse side of the main nfcorpus index. Trained on all {results.get('full_training_queries', '?')} nfcorpus train "
        "queries "
        "(training lengths query 32 / document 128 tokens, λ warm-up over the first quarter). The fine-tuned row learns from "
        "the qrels "
        f"(contrastive loss, random and in-batch negatives); the averaged rows are WiSE-FT (Wortsman et al. 2022): its weights "
        "(1 − α)·base + α·fine-tuned, no further training. The distilled rows learn from the teacher alone: "
        f"{teacher_line(results)} "
        "Of the candidates, the one with the best nfcorpus **dev** nDCG@10 is compared on test and carried to scifact; test is "
        "never used to choose "
        f"(a scifact figure on an unselected row is from an earlier pass of this bench, when that row was the dev choice).",
        "",
        "| system | steps × batch, learning rate | λ | nfcorpus dev nDCG@10 | test nDCG@10 | test R@100 | FLOPS | terms/doc | "
        "terms/query | scifact nDCG@10 | train wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in full:
        n, dev = entry["nfcorpus"], entry["nfcorpus_dev"]
        trained = "train_seconds" in entry
        selected = " (selected on dev)" if entry.get("selected_on_dev") else ""
        scifact = f"{entry['scifact']['nDCG@10']:.4f}" if "scifact" in entry else "—"
        recipe, lam, wall = (
            (recipe_of(entry, results), f"{entry['recipe']['lambda_d']:g}", f"{entry['train_seconds']:.0f}s")
            if trained
            else ("—",) * 3
        )
        lines.append(
            f"| {entry['system']}{selected} | {recipe} | {lam} | {dev['nDCG@10']:.4f} | {n['nDCG@10']:.4f} | {n['R@100']:.4f} | "
            f"{n['flops']:.3f} | "
            f"{n['terms_per_document']} | {n['terms_per_query']} | {scifact} | {wall} |"
        )
    base = next((e for e in full if e["group"] == "full-base"), None)
    chosen = next((e for e in full if e.get("selected_on_dev")), None)
    if base and chosen:
        lines.append("")
        for dataset in (d for d in ("nfcorpus_dev", "nfcorpus", "scifact") if d in chosen and d in base):  # scifact: once chosen
            delta = chosen[dataset]["nDCG@10"] - base[dataset]["nDCG@10"]
            split = "nfcorpus dev (where it was chosen)" if dataset == "nfcorpus_dev" else f"{dataset} test"
            paired = chosen.get("paired_vs_base", {}).get(dataset)
            tested = (
                (
                    f"; paired over {paired['wins'] + paired['ties'] + paired['losses']} queries: {paired['wins']} wins, "
                    f"{paired['losses']} losses, "
                    f"t-test p = {paired['t_p']:.3g}, permutation p = {paired['permutation_p']:.3g}"
                )
                if paired
                else ""
            )
            lines.append(
                f"- {split}: the dev-selected fine-tuned model {'beats' if delta > 0 else 'does not beat'} base splade-tiny, "
                f"nDCG@10 {chosen[dataset]['nDCG@10']:.4f} vs {base[dataset]['nDCG@10']:.4f} "
                f"({'+' if delta >= 0 else '−'}{abs(delta):.4f}){tested}."
            )
    return lines


def teacher_line(results: dict) -> str:
    teacher = results.get("teacher")
    if not teacher:
        return "(no teacher in these results)."
    return (
        f"the {teacher['system']}, run over the train queries (1000 hits each); negatives from its top {TEACHER_DEPTH} minus the "
        f"positives; its scores × {teacher['scale']} (splade-tiny's scores spread that much wider over the teacher's top "
        f"{TEACHER_DEPTH}: median over queries of the ratio of standard deviations), MarginMSE on (positive, negative) or KL "
        f"over the softmax of every document in the batch."
    )


def report(results: dict) -> str:
    recipe = results["recipe"]
    lines = [
        "# Training experiments",
        "",
        "Reproduce: `HF_HUB_OFFLINE=1 nice -n 10 python bench/train_experiments.py` (writes this folder).",
        "",
        "UHD started from the masked-LM head and distilled from the hybrid ranker, the UHD models that retrieve (k, "
        "binarization and buckets against nDCG@10 and FLOPS): [uhd.md](uhd.md).",
        "",
        "Inference-free models at full length, untrained (`--steps 0`) against distilled: "
        "[inference-free.md](inference-free.md).",
        "",
        f"Recipe (every trained model, unless its name says otherwise): {recipe['steps']} steps, batch {recipe['batch_size']} "
        "queries × (1 positive + 1 mined hard "
        f"negative) with in-batch negatives, lr {recipe['learning_rate']}, training lengths query {recipe['query_max_length']} / "
        f"document {recipe['doc_max_length']} tokens, λ warm-up T = {recipe['lambda_warmup_steps']} steps; "
        f"{results['training_queries']} nfcorpus train queries, negatives from a splade-tiny index (top 50 minus positives). "
        f"The indexes of this first table cut documents to {recipe['index_doc_max_length']} tokens (the full-length comparison "
        "is further down). On 2 shared CPU cores.",
        "",
        "FLOPS = Σ_j P(query uses term j)·P(document has term j), measured on the index and the test queries.",
        "",
        "![nDCG@10 vs FLOPS](ndcg_vs_flops.png)",
        "",
        "| system | steps × batch, learning rate | nDCG@10 | R@100 | FLOPS | terms/doc | terms/query | train wall time |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in short_systems(results):
        n = entry["nfcorpus"]
        wall = f"{entry['train_seconds']:.0f}s" if "train_seconds" in entry else "—"
        trained = recipe_of(entry, results) if "train_seconds" in entry else "—"
        lines.append(
            f"| {entry['system']} | {trained} | {n['nDCG@10']:.4f} | {n['R@100']:.4f} | {n['flops']:.3f} | "
            f"{n['terms_per_document']} | "
            f"{n['terms_per_query']} | {wall} |"
        )
    lines += ["", *findings(results), "", *CAVEATS, *uhd_training_lines(results), "", *full_length_section(results)]
    lines += [
        "",
        "## Query latency on nfcorpus (query encoding + sparse search, k=10, median over "
        f"{LATENCY_QUERIES} queries, interleaved)",
        "",
        "| system | median ms | × base |",
        "|---|---:|---:|",
    ]
    for name, value in results.get("latency", {}).items():
        lines.append(f"| {name} | {value['median_ms']} | {value['vs_base']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
