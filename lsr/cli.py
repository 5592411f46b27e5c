"""The `lsr` command: index, search, serve, eval, tune and train, wiring the packages together."""

from __future__ import annotations

import functools
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lsr import defaults
from lsr.datasets import DuplicateIds
from lsr.errors import LsrError

app = typer.Typer(
    name="lsr",
    help="Learned sparse retrieval: index a BEIR-format corpus, search it, serve it over HTTP, evaluate it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()

IndexPath = Annotated[Path, typer.Argument(help="Index folder (as written by `lsr index`).")]
DatasetPath = Annotated[
    Path,
    typer.Argument(
        help=(
            "Dataset folder, BEIR (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or MS MARCO (collection.tsv, "
            "queries.<split>.tsv, qrels.<split>.tsv)."
        )
    ),
]
EncoderOption = Annotated[str | None, typer.Option("--encoder", help="Query encoder; default: the one in the index manifest.")]
FeedbackOption = Annotated[
    bool,
    typer.Option("--feedback", help="Pseudo-relevance feedback on the sparse side: add the top 5 documents' 20 heaviest terms."),
]
QueryIdfOption = Annotated[
    float | None,
    typer.Option(
        "--query-idf",
        min=0.0,
        help="Weight each sparse query term by (corpus idf / mean idf)^EXPONENT, the idf counted over the index's "
        f"document vectors (0: none). `lsr index` records it ({defaults.QUERY_IDF} for plain SPLADE encoders); "
        "`lsr search` and `lsr eval` use the index's unless given.",
    ),
]
DeviceOption = Annotated[
    str, typer.Option("--device", help="Where the models run: auto (CUDA when torch sees a GPU), cpu or cuda.")
]
CheckpointEveryOption = Annotated[int, typer.Option(min=0, help="Save a checkpoint every N steps (0: none).")]
OverwriteModelOption = Annotated[bool, typer.Option("--overwrite", help="Replace an existing model folder at --out.")]
ResumeTrainingOption = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run (same arguments) from its last checkpoint.")
]
ModeOption = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="sparse, dense, bm25, signals joined by + (bm25+sparse+dense), or hybrid (all the index's signals); "
        "default: hybrid when the index has more than one signal.",
    ),
]
FusionOption = Annotated[
    str | None,
    typer.Option("--fusion", help="Fusion: rrf or convex; default: the index's tuned choice, else the untuned default."),
]
WeightOption = Annotated[
    float | None, typer.Option("--weight", help="Fusion of sparse + dense: the sparse signal's weight in [0, 1].")
]
WeightsOption = Annotated[
    str | None, typer.Option("--weights", help="Fusion: a weight per signal, such as sparse=0.4,dense=0.4,bm25=0.2.")
]
RrfKOption = Annotated[int | None, typer.Option("--rrf-k", help="Hybrid rrf: the k in 1/(k + rank).")]
NormalizationOption = Annotated[str | None, typer.Option("--normalization", help="Hybrid convex: minmax or zscore.")]
DepthOption = Annotated[int | None, typer.Option("--depth", help="Fusion: candidates taken from each signal.")]
DenseFeedbackOption = Annotated[
    int | None,
    typer.Option(
        "--dense-feedback",
        help="Fusion: add the mean dense vector of the first fused pass's top N documents to the dense query and search "
        "again; 0: off.",
    ),
]
DenseFeedbackWeightOption = Annotated[
    float | None, typer.Option("--dense-feedback-weight", help="Fusion: the weight of that mean vector (the query's is 1).")
]
UriOption = Annotated[
    str | None,
    typer.Option("--uri", help="milvus: server address (http://host:19530), or a local milvus-lite file (./milvus.db)."),
]
CollectionOption = Annotated[
    str | None, typer.Option("--collection", help="milvus: collection name; default: lsr_<index folder name>.")
]


def _engine_settings(engine: str | None, uri: str | None, collection: str | None, out: Path) -> dict:
    """Milvus's URI and collection for the manifest (a token comes from LSR_MILVUS_TOKEN, never from here)."""
    from lsr.indexer.engines.milvus import MilvusEngine, milvus_settings

    if engine == MilvusEngine.name:
        return milvus_settings(uri or "", collection, out)
    if uri or collection:
        raise LsrError("--uri and --collection are settings of --engine milvus")
    return {}


def _fusion(
    searcher,
    mode: str | None,
    method: str | None,
    weight: float | None,
    weights: str | None,
    rrf_k: int | None,
    normalization: str | None,
    depth: int | None,
    dense_feedback: int | None,
    dense_feedback_weight: float | None,
):
    """The index's default fusion with any settings given on the command line replaced (refused where they do not
    apply to a search in ``mode``)."""
    from lsr.retrieval.search.fusion import parse_weights

    if weight is not None and weights is not None:
        raise LsrError("give --weight (sparse's, with dense) or --weights, not both")
    named = parse_weights(weights) if weights is not None else None
    given = {
        "method": method,
        "weight": weight,
        "weights": named,
        "rrf_k": rrf_k,
        "normalization": normalization,
        "depth": depth,
        "dense_feedback": dense_feedback,
        "dense_feedback_weight": dense_feedback_weight,
    }
    return searcher.fusion_for(mode, {key: value for key, value in given.items() if value is not None})


def _check_sparse_query_options(searcher, mode: str | None, feedback: bool, query_idf: float | None) -> None:
    """--feedback expands and --query-idf weighs the encoded sparse query: a search without one would ignore them, so
    they are refused (a Lucene BM25 index is refused --query-idf when opened)."""
    signals = searcher.check_mode(mode or searcher.default_mode) if searcher.encoder is not None else ()
    for option, does, given in (("--feedback", "expands", feedback), ("--query-idf", "weighs", query_idf is not None)):
        if given and searcher.encoder is None:
            raise LsrError(f"{option} {does} the encoded sparse query; a Lucene BM25 index encodes none")
        if given and "sparse" not in signals:
            raise LsrError(f"{option} {does} the sparse query; this search ({' + '.join(signals)}) does not use it")


@app.command()
def index(
    dataset: DatasetPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to create.")],
    encoder: Annotated[
        str, typer.Option(help="Packaged name (splade-tiny), model folder, Hugging Face id, or bm25 (Lucene BM25 of the text).")
    ] = defaults.SPARSE_ENCODER,
    engine: Annotated[
        str | None,
        typer.Option(
            help="memory (exact, in-process), seismic (approximate), lucene (Pyserini/Anserini) or milvus; default: memory, "
            "lucene for bm25."
        ),
    ] = None,
    uri: UriOption = None,
    collection: CollectionOption = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Encode on Ray: `local` starts a cluster on this machine, else a cluster address (auto, ray://host:10001).",
        ),
    ] = None,
    doc_max_length: Annotated[int, typer.Option(help="Document truncation, in tokens.")] = defaults.DOC_MAX_LENGTH,
    query_max_length: Annotated[
        int, typer.Option(help="Query truncation, in tokens (recorded as the index default).")
    ] = defaults.QUERY_MAX_LENGTH,
    chunk_size: Annotated[int, typer.Option(min=1, help="Documents per checkpointed chunk.")] = defaults.CHUNK_SIZE,
    precision: Annotated[
        str | None,
        typer.Option(
            help=(
                f"Sparse encoder arithmetic: fp32 or bf16 (default: {defaults.PRECISION} on CPUs with native bf16; "
                "fp32 otherwise, on a GPU and for UHD); recorded, queries use the index's."
            )
        ),
    ] = None,
    scale: Annotated[float, typer.Option(help="Quantization: impact = round(weight × scale).")] = defaults.QUANTIZATION_SCALE,
    dense_encoder: Annotated[
        str | None, typer.Option(help="Also store dense vectors from this sentence-transformers model (e.g. all-minilm-l6-v2).")
    ] = None,
    dense_backend: Annotated[
        str | None,
        typer.Option(
            help=(
                "What runs the dense encoder: torch, onnx, onnx-int8 (ONNX Runtime) or openvino (bf16 where the CPU has it); "
                "default: openvino on CPUs with native bf16, else onnx, torch on a GPU; recorded, queries use the index's."
            )
        ),
    ] = None,
    dense_index: Annotated[
        str, typer.Option(help="Dense index: flat (exact) or hnsw (approximate, for large corpora).")
    ] = "flat",
    add_dense: Annotated[
        bool, typer.Option("--add-dense", help="Add dense vectors to the existing index at --out, keeping its sparse side.")
    ] = False,
    bm25: Annotated[
        bool, typer.Option("--bm25", help="Also store a BM25 side of the text: a third signal for hybrid search.")
    ] = False,
    add_bm25: Annotated[
        bool, typer.Option("--add-bm25", help="Add a BM25 side to the existing index at --out (nothing is encoded).")
    ] = False,
    query_idf: QueryIdfOption = None,
    device: DeviceOption = defaults.DEVICE,
    duplicates: Annotated[
        DuplicateIds,
        typer.Option(help="A document id given twice: error, or keep the first or the last text (each dropped copy is listed)."),
    ] = "error",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run, keeping its finished chunks.")] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing index at --out (without --resume: start an interrupted run over)."),
    ] = False,
) -> None:
    """Encode every document of a corpus and write an inverted index (and, optionally, dense vectors)."""
    from lsr.datasets import read_corpus
    from lsr.indexer import Quantization, add_bm25_side, add_dense_vectors, build_bm25_index, build_index
    from lsr.indexer.bm25 import Bm25Settings
    from lsr.indexer.dense import DenseIndexSettings
    from lsr.indexer.engines import BM25_KIND, DEFAULT_ENGINE, LuceneImpactEngine
    from lsr.retrieval.encoders import index_precision, load_indexing_dense_encoder, load_sparse_encoder

    dense_settings = DenseIndexSettings(kind=dense_index)
    engine_settings = _engine_settings(engine, uri, collection, out)
    if ray and (add_dense or add_bm25 or encoder == BM25_KIND):
        raise LsrError("--ray encodes a new sparse index: it does not apply to --add-dense, --add-bm25 or bm25")
    if add_dense and add_bm25:
        raise LsrError("add one side at a time: --add-dense, then --add-bm25")
    if dense_backend and not (dense_encoder or add_dense):
        raise LsrError("--dense-backend runs a dense encoder: give --dense-encoder (or --add-dense)")
    if bm25 and (add_dense or add_bm25):
        raise LsrError("--bm25 builds a new index with a BM25 side; --add-bm25 adds one to an existing index")
    if (bm25 or add_bm25) and encoder == BM25_KIND:
        raise LsrError("--encoder bm25 is a Lucene BM25 index already; --bm25 adds a BM25 side to a splade index")
    if query_idf is not None and (add_dense or add_bm25 or encoder == BM25_KIND):
        raise LsrError("--query-idf is recorded when a sparse index is built; `lsr search|eval --query-idf` overrides it")
    corpus = read_corpus(dataset, duplicates=duplicates)
    if corpus.duplicates_dropped:
        ids = list(dict.fromkeys(corpus.duplicates_dropped))
        shown = ", ".join(ids[:5]) + (" …" if len(ids) > 5 else "")
        typer.echo(
            f"warning: {len(ids)} ids repeat; kept the {duplicates} text of each, dropped"
            f" {len(corpus.duplicates_dropped)} copies: {shown}",
            err=True,
        )
    started = time.perf_counter()
    if add_bm25:
        manifest = add_bm25_side(out, corpus)
    elif add_dense:
        dense = load_indexing_dense_encoder(dense_encoder or defaults.DENSE_ENCODER, device=device, backend=dense_backend)
        manifest = add_dense_vectors(
            out, corpus, dense, dense_index=dense_settings, chunk_size=chunk_size, resume=resume, overwrite=overwrite
        )
    elif encoder == BM25_KIND:
        if (engine or LuceneImpactEngine.name) != LuceneImpactEngine.name:
            raise LsrError(f"BM25 is scored by Lucene: use --engine {LuceneImpactEngine.name} (or leave --engine out)")
        if dense_encoder:
            raise LsrError("build the BM25 index first, then add dense vectors with --add-dense")
        manifest = build_bm25_index(corpus, out, overwrite=overwrite)
    else:
        sparse_encoder = load_sparse_encoder(
            encoder,
            query_max_length=query_max_length,
            doc_max_length=doc_max_length,
            precision=precision or index_precision(encoder, device),
            device=device,
        )
        dense = load_indexing_dense_encoder(dense_encoder, device=device, backend=dense_backend) if dense_encoder else None
        manifest = build_index(
            corpus,
            sparse_encoder,
            out,
            dense_encoder=dense,
            dense_index=dense_settings,
            engine=engine or DEFAULT_ENGINE,
            engine_settings=engine_settings,
            quantization=Quantization(scale),
            chunk_size=chunk_size,
            resume=resume,
            overwrite=overwrite,
            ray_address=ray,
            bm25=Bm25Settings() if bm25 else None,
            query_idf=query_idf,
        )
    elapsed = time.perf_counter() - started
    dense_note = f", dense: {manifest.dense_encoder.name}" if manifest.dense_encoder else ""
    dense_note += ", bm25" if manifest.bm25 else ""
    action = "added dense vectors for" if add_dense else "added a BM25 side for" if add_bm25 else "indexed"
    terms = f"{manifest.nnz / manifest.doc_count:.1f} terms/doc, " if manifest.nnz else ""
    console.print(
        f"{action} {manifest.doc_count} documents in {out} in {elapsed:.1f}s ({terms}engine: {manifest.engine}{dense_note})"
    )


@app.command()
def reindex(
    index_path: IndexPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to create.")],
    engine: Annotated[str, typer.Option(help="The engine to build: memory, sharded, impact-ordered, seismic, lucene or milvus.")],
    budget: Annotated[
        float | None,
        typer.Option(help="impact-ordered: fraction of each query's postings to read; below 1, search is approximate."),
    ] = None,
    shards: Annotated[int | None, typer.Option(help="sharded: number of shards (default: one per CPU core).")] = None,
    n_postings: Annotated[int | None, typer.Option(help="seismic: postings kept per term (static pruning).")] = None,
    query_cut: Annotated[int | None, typer.Option(help="seismic: heaviest query terms searched.")] = None,
    heap_factor: Annotated[
        float | None, typer.Option(help="seismic: read a block when its bound beats this share of the k-th best score.")
    ] = None,
    uri: UriOption = None,
    collection: CollectionOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing index at --out.")] = False,
) -> None:
    """Build another engine's index from an index's stored vectors, without encoding anything again."""
    from lsr.indexer import reindex as rebuild

    started = time.perf_counter()
    given = {"budget": budget, "shards": shards, "n_postings": n_postings, "query_cut": query_cut, "heap_factor": heap_factor}
    settings = {key: value for key, value in given.items() if value is not None} | _engine_settings(engine, uri, collection, out)
    with console.status(f"building the {engine} engine's files from the stored vectors"):  # minutes at scale, no steps
        manifest = rebuild(index_path, out, engine, settings=settings, overwrite=overwrite)
    console.print(f"re-indexed {manifest.doc_count} documents into {out} ({engine}) in {time.perf_counter() - started:.1f}s")


@app.command()
def search(
    index_path: IndexPath,
    query: Annotated[str, typer.Argument(help="The query text.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = defaults.SEARCH_K,
    mode: ModeOption = None,
    fusion: FusionOption = None,
    weight: WeightOption = None,
    weights: WeightsOption = None,
    rrf_k: RrfKOption = None,
    normalization: NormalizationOption = None,
    depth: DepthOption = None,
    dense_feedback: DenseFeedbackOption = None,
    dense_feedback_weight: DenseFeedbackWeightOption = None,
    encoder: EncoderOption = None,
    feedback: FeedbackOption = False,
    query_idf: QueryIdfOption = None,
    device: DeviceOption = defaults.DEVICE,
) -> None:
    """Search an index, with the live updates a server logged in it, and print ranked doc ids, scores and titles."""
    from lsr.retrieval.search import Feedback, Searcher, check_k

    check_k(k)
    searcher = Searcher.open(
        index_path, encoder, device=device, feedback=Feedback() if feedback else None, query_idf=query_idf, live=True
    )
    _check_sparse_query_options(searcher, mode, feedback, query_idf)
    settings = _fusion(
        searcher, mode, fusion, weight, weights, rrf_k, normalization, depth, dense_feedback, dense_feedback_weight
    )
    hits = searcher.search(query, k, mode=mode, fusion=settings)
    table = Table("rank", "doc id", "score", "title")
    for hit in hits:
        table.add_row(str(hit.rank), hit.id, f"{hit.score:.4f}", hit.title)
    console.print(table if hits else "no document matches the query")


@app.command()
def serve(
    index_path: IndexPath,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    encoder: EncoderOption = None,
    compact_after: Annotated[
        int, typer.Option(min=1, help="Live updates (upserts + deletes) held in memory before they are compacted into the index.")
    ] = defaults.COMPACT_AFTER,
    device: DeviceOption = defaults.DEVICE,
) -> None:
    """Serve an index over HTTP: search page at /, API docs at /docs. Writes need LSR_API_KEY or LSR_API_KEY_FILE."""
    import uvicorn

    from lsr.api.app import create_app
    from lsr.api.settings import Settings
    from lsr.api.work import ModelThread
    from lsr.retrieval.search import LiveSearcher

    settings = Settings.from_env()  # a bad setting fails here, before the models load
    model = ModelThread()  # opens the index too: torch is never called from another thread
    service = model.call(functools.partial(LiveSearcher.open, index_path, encoder, compact_after=compact_after, device=device))
    uvicorn.run(create_app(service, settings, model), host=host, port=port)


@app.command(name="eval")
def evaluate(
    index_path: IndexPath,
    dataset: DatasetPath,
    split: Annotated[str, typer.Option(help="Qrels split: qrels/<split>.tsv.")] = "test",
    k: Annotated[int, typer.Option("-k", help="Hits retrieved per query.")] = defaults.RUN_DEPTH,
    measures: Annotated[list[str] | None, typer.Option("--measure", "-m", help="ir-measures name; repeatable.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder; default reports/<index>-<dataset>-<split>.")
    ] = None,
    keep_identical_ids: Annotated[
        bool, typer.Option("--keep-identical-ids", help="Keep hits whose doc id equals the query id (BEIR drops them).")
    ] = False,
    mode: ModeOption = None,
    fusion: FusionOption = None,
    weight: WeightOption = None,
    weights: WeightsOption = None,
    rrf_k: RrfKOption = None,
    normalization: NormalizationOption = None,
    depth: DepthOption = None,
    dense_feedback: DenseFeedbackOption = None,
    dense_feedback_weight: DenseFeedbackWeightOption = None,
    encoder: EncoderOption = None,
    feedback: FeedbackOption = False,
    query_idf: QueryIdfOption = None,
    device: DeviceOption = defaults.DEVICE,
) -> None:
    """Run a split's queries, score them with ir-measures, write a TREC run and JSON + Markdown reports."""
    from lsr.datasets import read_evaluation_set
    from lsr.eval import evaluate as evaluate_searcher
    from lsr.eval import write_report
    from lsr.eval.metrics import parse_measures
    from lsr.retrieval.search import Feedback, Searcher, check_k

    check_k(k)
    parse_measures(measures or [])  # fail before loading anything
    evaluation = read_evaluation_set(dataset, split)
    searcher = Searcher.open(
        index_path, encoder, device=device, feedback=Feedback() if feedback else None, query_idf=query_idf, live=True
    )
    _check_sparse_query_options(searcher, mode, feedback, query_idf)
    result = evaluate_searcher(
        searcher,
        evaluation,
        measures=measures,
        k=k,
        mode=mode,
        fusion=_fusion(
            searcher, mode, fusion, weight, weights, rrf_k, normalization, depth, dense_feedback, dense_feedback_weight
        ),
        remove_identical_ids=not keep_identical_ids,
        command=shlex.join(["lsr", *sys.argv[1:]]),
    )
    report = result.report
    if missing := report.details["judged_relevant_missing"]:
        console.print(
            f"warning: {missing} of the documents that {evaluation.name} {split} judges relevant are not in "
            f"{index_path}; they count as never retrieved"
        )
    mode = report.details["mode"]
    folder = out or Path("reports") / f"{Path(index_path).resolve().name}-{mode}-{evaluation.name}-{split}"
    paths = write_report(report, result.run, folder)

    table = Table(title=f"{report.system} on {evaluation.name} ({split}, {len(report.scores.per_query)} queries)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in report.scores.aggregate.items():
        table.add_row(name, f"{value:.4f}")
    console.print(table)
    console.print(f"run: {paths['run']}  report: {paths['json']}, {paths['markdown']}")


@app.command()
def tune(
    index_path: IndexPath,
    dataset: DatasetPath,
    split: Annotated[str, typer.Option(help="Qrels split to tune on: train or dev (never test).")] = "train",
    measure: Annotated[str, typer.Option("--measure", "-m", help="ir-measures name to maximize.")] = "nDCG@10",
    depth: Annotated[int, typer.Option(min=1, max=1000, help="Candidates taken from each signal.")] = 100,
    keep_identical_ids: Annotated[bool, typer.Option("--keep-identical-ids", help="As in `lsr eval`.")] = False,
    device: DeviceOption = defaults.DEVICE,
) -> None:
    """Pick the fusion of the index's signals (method, weights) by grid search on a train/dev split; store it in the manifest."""
    from lsr.datasets import read_evaluation_set
    from lsr.eval.metrics import parse_measures
    from lsr.eval.tuning import check_tuning_split, store_tuned_fusion, tune_fusion
    from lsr.retrieval.search import Searcher

    check_tuning_split(split)
    parse_measures([measure])
    evaluation = read_evaluation_set(dataset, split)
    searcher = Searcher.open(index_path, device=device, live=True)
    tuning = tune_fusion(searcher, evaluation, split, measure=measure, depth=depth, remove_identical_ids=not keep_identical_ids)
    store_tuned_fusion(searcher, evaluation, tuning, str(dataset))
    best, _ = tuning.best

    table = Table(title=f"{measure} on {Path(dataset).resolve().name} ({split}, {len(evaluation.queries)} queries)")
    table.add_column("system")
    table.add_column(measure, justify="right")
    for signal, value in tuning.alone.items():
        table.add_row(f"{signal} alone", f"{value:.4f}")
    for fusion, score in tuning.results[:5]:
        table.add_row(f"hybrid {fusion.describe()}", f"{score:.4f}")
    console.print(table)
    console.print(f"stored in {searcher.index.path / 'manifest.json'}: hybrid {best.describe()} is now the default")


@app.command()
def compact(index_path: IndexPath) -> None:
    """Fold the live updates logged in an index (by `lsr serve`) into a new index folder. Stop the server first."""
    from lsr.indexer.live import LiveIndex

    live = LiveIndex(index_path)
    pending = live.pending
    with console.status(f"folding {pending} live updates into a new index folder"):
        live.compact()
    live.close()
    console.print(f"{index_path}: {pending} live updates compacted; {live.view.doc_count} documents")


@app.command()
def report(
    systems: Annotated[
        list[str],
        typer.Option(
            "--system",
            "-s",
            help="NAME=PATH[:MODE], repeatable. PATH: an index folder (MODE sparse, dense or hybrid; default: the index's) "
            "or a TREC run file; {dataset} in PATH stands for each dataset folder's name.",
        ),
    ],
    datasets: Annotated[list[Path], typer.Option("--dataset", "-d", help="Dataset folder (BEIR or MS MARCO); repeatable.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder to create.")],
    baseline: Annotated[str | None, typer.Option(help="System the others are tested against; default: the first.")] = None,
    split: Annotated[str, typer.Option(help="Qrels split, the same for every dataset.")] = "test",
    k: Annotated[int, typer.Option("-k", help="Hits retrieved per query.")] = defaults.RUN_DEPTH,
    measures: Annotated[
        list[str] | None, typer.Option("--measure", "-m", help="ir-measures name; repeatable; the first is the headline.")
    ] = None,
    keep_identical_ids: Annotated[bool, typer.Option("--keep-identical-ids", help="As in `lsr eval`.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the randomization test.")] = 0,
    latency_queries: Annotated[
        int, typer.Option(min=0, help="Time the first N queries of each dataset one per call (latency p50/p99).")
    ] = 100,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing report folder.")] = False,
) -> None:
    """Compare systems on datasets: effectiveness, significance against a baseline, efficiency; HTML + Markdown + runs."""
    try:
        import matplotlib  # noqa: F401
        import statsmodels  # noqa: F401
    except ImportError as exc:
        raise LsrError(f"`lsr report` needs the report extra: pip install -e '.[report]' ({exc})") from exc
    from lsr.eval import DEFAULT_MEASURES
    from lsr.eval.comparison import run_comparison
    from lsr.eval.comparison_report import summary_table, write_comparison_report
    from lsr.eval.systems import parse_systems
    from lsr.retrieval.search import check_k

    check_k(k)
    specs, baseline_name = parse_systems(systems, baseline)
    if out.exists() and not overwrite:  # before the long run, not after it
        raise LsrError(f"{out} already exists: pass --overwrite to replace it")
    comparison = run_comparison(
        specs,
        baseline_name,
        datasets,
        split=split,
        measures=measures or list(DEFAULT_MEASURES),
        k=k,
        remove_identical_ids=not keep_identical_ids,
        seed=seed,
        latency_queries=latency_queries,
    )
    paths = write_comparison_report(comparison, out, shlex.join(["lsr", *sys.argv[1:]]), overwrite=overwrite)
    summary = summary_table(comparison)
    table = Table(*summary.header, title=summary.title)
    for row in summary.rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"report: {paths['html']}, {paths['markdown']} (runs in {paths['runs']})")


@app.command()
def train(
    dataset: DatasetPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (usable as `lsr index --encoder FOLDER`).")],
    arch: Annotated[str, typer.Option(help="splade or uhd.")] = "splade",
    base: Annotated[
        str, typer.Option(help="Masked-LM checkpoint to start from: packaged name, folder or Hugging Face id.")
    ] = defaults.Training.base,
    split: Annotated[str, typer.Option(help="Qrels split with the training pairs (train or dev).")] = "train",
    negatives_index: Annotated[
        Path | None,
        typer.Option(
            "--negatives-index",
            help=(
                "Index of the same corpus to mine hard negatives from (top-k minus positives); default: the teacher "
                "run's top-k minus positives with --teacher-run, else random negatives."
            ),
        ),
    ] = None,
    negatives_depth: Annotated[
        int,
        typer.Option(min=1, max=1000, help="Hits per query (of the index or the teacher run) the hard negatives are drawn from."),
    ] = defaults.NEGATIVES_DEPTH,
    max_queries: Annotated[int | None, typer.Option(min=1, help="Train on at most this many queries (sampled).")] = None,
    steps: Annotated[
        int,
        typer.Option(
            min=0, help="0 keeps the base model's weights and fits only the query side (--inference-free --idf: the IDF)."
        ),
    ] = defaults.Training.steps,
    batch_size: Annotated[
        int, typer.Option(min=2, help="Queries per step, each with a positive and a hard negative.")
    ] = defaults.Training.batch_size,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = defaults.Training.learning_rate,
    head_learning_rate: Annotated[
        float | None, typer.Option(help="UHD: learning rate of the new projection head (default: --learning-rate).")
    ] = None,
    lambda_d: Annotated[
        float, typer.Option(min=0.0, help="FLOPS regularization weight on documents.")
    ] = defaults.Training.lambda_d,
    lambda_q: Annotated[
        float, typer.Option(min=0.0, help="FLOPS regularization weight on queries.")
    ] = defaults.Training.lambda_q,
    lambda_warmup: Annotated[
        int, typer.Option(min=0, help="T in λ_t = λ·min(1, t/T)², in steps.")
    ] = defaults.Training.lambda_warmup_steps,
    l1_q: Annotated[float, typer.Option(min=0.0, help="L1 weight on query vectors.")] = 0.0,
    teacher_run: Annotated[
        Path | None, typer.Option(help="TREC run of a teacher (e.g. `lsr eval` of the hybrid ranker) for distillation.")
    ] = None,
    distillation: Annotated[
        str | None,
        typer.Option(help="marginmse (positive − negative margin) or kl (listwise over the batch); needs --teacher-run."),
    ] = None,
    distillation_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the distillation loss.")] = 1.0,
    teacher_scale: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help=(
                "Multiplies the teacher's scores, to put its margins in the student's units (default 1, or measured "
                "with --student-run)."
            ),
        ),
    ] = None,
    student_run: Annotated[
        Path | None,
        typer.Option(
            help=(
                "The starting model's own TREC run over the same queries (e.g. `lsr eval --mode sparse --split "
                "train`): sets the teacher scale to how much wider its scores spread over the teacher's top "
                "documents."
            )
        ),
    ] = None,
    ranking_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the contrastive loss on the qrels; 0: learn from the teacher alone.")
    ] = 1.0,
    anchor: Annotated[
        float,
        typer.Option(
            min=0.0,
            help=(
                "Weight of a floor under the starting model's document terms (squared shortfall); with it, FLOPS counts"
                " only terms the starting model did not give a document. 0: off."
            ),
        ),
    ] = 0.0,
    query_max_length: Annotated[
        int, typer.Option(help="Query truncation in training, in tokens.")
    ] = defaults.Training.query_max_length,
    doc_max_length: Annotated[
        int, typer.Option(help="Document truncation in training, in tokens.")
    ] = defaults.Training.doc_max_length,
    uhd_dim: Annotated[int, typer.Option(help="UHD: latent dimensions per bucket.")] = defaults.Training.uhd_dim,
    uhd_k: Annotated[int, typer.Option(help="UHD: dimensions each token keeps (winner-take-all).")] = defaults.Training.uhd_k,
    uhd_layers: Annotated[str, typer.Option(help="UHD: comma-separated hidden layers, one bucket each (-1: last).")] = "-1",
    uhd_head: Annotated[
        str, typer.Option(help="UHD: random, or mlm (start from the model's masked-LM head; --uhd-dim = its vocabulary).")
    ] = "random",
    binarize: Annotated[bool, typer.Option("--binarize", help="UHD: 0/1 weights (straight-through in training).")] = False,
    inference_free: Annotated[
        bool, typer.Option("--inference-free", help="SPLADE: queries are the tokenizer's bag of word-pieces.")
    ] = False,
    idf: Annotated[bool, typer.Option("--idf", help="Inference-free: weight query word-pieces by the corpus IDF.")] = False,
    checkpoint_every: CheckpointEveryOption = 0,
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOption = defaults.DEVICE,
    overwrite: OverwriteModelOption = False,
    resume: ResumeTrainingOption = False,
) -> None:
    """Train a SPLADE or UHD encoder (contrastive loss + FLOPS regularization) on a dataset's qrels."""
    from lsr.retrieval.encoders import Architecture, UhdSettings
    from lsr.retrieval.search import Searcher
    from lsr.retrieval.training import TrainingConfig, load_training_data, mine_hard_negatives, negatives_from_run
    from lsr.retrieval.training import teacher_scale as measured_teacher_scale
    from lsr.retrieval.training import train as train_model
    from lsr.runs import read_run

    try:
        layers = tuple(int(layer) for layer in uhd_layers.split(","))
    except ValueError as exc:
        raise LsrError(f"--uhd-layers must be comma-separated integers, got {uhd_layers!r}") from exc
    uhd = UhdSettings(uhd_dim, uhd_k, layers, binarize, uhd_head) if arch == "uhd" else None
    architecture = Architecture(arch, "bow" if inference_free else "model", idf, uhd)
    teacher = read_run(teacher_run) if teacher_run else None
    student = read_run(student_run) if student_run else None
    teacher_scale = measured_teacher_scale(teacher, student, teacher_scale, negatives_depth)
    if student is not None:
        console.print(
            f"teacher scale {teacher_scale} (the student's scores spread that much wider over the teacher's top "
            f"{negatives_depth})"
        )
    config = TrainingConfig(
        base=base,
        architecture=architecture,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        head_learning_rate=head_learning_rate,
        lambda_d=lambda_d,
        lambda_q=lambda_q,
        lambda_warmup_steps=lambda_warmup,
        l1_q=l1_q,
        distillation=distillation,
        distillation_weight=distillation_weight,
        teacher_scale=teacher_scale,
        ranking_weight=ranking_weight,
        anchor=anchor,
        query_max_length=query_max_length,
        doc_max_length=doc_max_length,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    data = load_training_data(dataset, split, max_queries=max_queries, seed=seed)
    if negatives_index:
        mine_hard_negatives(data, Searcher.open(negatives_index, device=device, live=True), depth=negatives_depth)
    elif teacher is not None:
        negatives_from_run(data, teacher, depth=negatives_depth)

    summary = train_model(
        config, data, out, teacher=teacher, overwrite=overwrite, resume=resume, on_log=_training_progress(steps), device=device
    )
    if steps == 0:
        console.print(f"0 steps: the base model's weights with the query side fitted; model: {out}")
    else:
        console.print(f"trained {arch} on {summary['training_queries']} queries in {summary['wall_seconds']:.0f}s; model: {out}")


def _training_progress(steps: int) -> Callable[[dict], None]:
    """Prints the first, every tenth and the last step's log entry."""

    def log(entry: dict) -> None:
        if entry["step"] == 1 or entry["step"] % 10 == 0 or entry["step"] == steps:
            parts = "  ".join(
                f"{key} {entry[key]:.4g}"
                for key in ("loss", "ranking_loss", "flops_d", "flops_q", "l1_q", "distillation")
                if key in entry
            )
            console.print(
                f"step {entry['step']}/{steps}  {parts}  terms q/d {entry['active_terms_query']:.1f}/"
                f"{entry['active_terms_document']:.1f}  FLOPS {entry['flops']:.3g}  {entry['seconds']:.0f}s"
            )

    return log


@app.command()
def adapt(
    index_path: IndexPath,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (usable as `lsr index --encoder FOLDER`).")],
    queries: Annotated[
        int, typer.Option(min=1, help="Pseudo-queries to make: a sentence or the title of a document each.")
    ] = defaults.Adaptation.queries,
    queries_per_document: Annotated[
        int, typer.Option(min=1, help="Most pseudo-queries made from one document, each from another sentence.")
    ] = defaults.Adaptation.queries_per_document,
    query_min_words: Annotated[
        int, typer.Option(min=1, help="Shortest sentence or title a pseudo-query is made from, in words.")
    ] = defaults.Adaptation.query_min_words,
    query_max_words: Annotated[
        int,
        typer.Option(min=1, help="Longest pseudo-query, in words: a longer sentence gives a random window this long."),
    ] = defaults.Adaptation.query_max_words,
    query_length: Annotated[
        str,
        typer.Option(
            help="longest: each pseudo-query is its sentence up to --query-max-words; uniform: a window of a length "
            "drawn between --query-min-words and that (short keyword-like queries too)."
        ),
    ] = defaults.Adaptation.query_length,
    negatives_depth: Annotated[
        int, typer.Option(min=2, max=1000, help="Teacher hits per pseudo-query that the training documents come from.")
    ] = defaults.NEGATIVES_DEPTH,
    steps: Annotated[int, typer.Option(min=1)] = defaults.Adaptation.steps,
    batch_size: Annotated[int, typer.Option(min=2, help="Pseudo-queries per step.")] = defaults.Adaptation.batch_size,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = defaults.Adaptation.learning_rate,
    lambda_flops: Annotated[
        float, typer.Option(min=0.0, help="FLOPS regularization weight on documents and queries.")
    ] = defaults.Adaptation.lambda_flops,
    checkpoint_every: CheckpointEveryOption = 0,
    seed: Annotated[int, typer.Option()] = 0,
    device: DeviceOption = defaults.DEVICE,
    overwrite: OverwriteModelOption = False,
    resume: ResumeTrainingOption = False,
) -> None:
    """Adapt an index's sparse encoder to its corpus without any qrels: pseudo-queries from the documents, ranked by
    the index's hybrid (the teacher), distilled into the sparse encoder (KL over each batch's documents)."""
    from lsr.eval.runner import run_queries
    from lsr.indexer.searchable import current_documents
    from lsr.retrieval.encoders import read_architecture, resolve_model
    from lsr.retrieval.search import Searcher
    from lsr.retrieval.training import (
        PseudoQuerySettings,
        TrainingConfig,
        learn_from_other_documents,
        negatives_from_run,
        pseudo_queries,
        teacher_scale,
    )
    from lsr.retrieval.training import train as train_model

    settings = PseudoQuerySettings(
        count=queries,
        min_words=query_min_words,
        max_words=query_max_words,
        per_document=queries_per_document,
        length=query_length,
        seed=seed,
    )
    searcher = Searcher.open(index_path, device=device, live=True)  # what a server of it searches, live updates too
    if searcher.encoder is None or len(searcher.signals) < 2:
        raise LsrError(
            f"{index_path} needs a sparse encoder and a second signal to teach it: add one with `lsr index … --add-dense` "
            "or `--add-bm25`"
        )
    base = searcher.index.manifest.encoder.name
    architecture = read_architecture(resolve_model(base).path)
    if architecture.arch != "splade":
        raise LsrError(f"adaptation continues SPLADE encoders; {base} is {architecture.arch}")
    data = pseudo_queries(current_documents(searcher.index), settings)
    if len(data.queries) < queries:
        console.print(
            f"warning: {queries} pseudo-queries asked, {len(data.queries)} made: at most {queries_per_document} per "
            f"document, from its title and sentences of {query_min_words} or more words"
        )
    teacher = run_queries(searcher, data.queries, k=negatives_depth, remove_identical_ids=False, desc="teacher (hybrid)")
    student = run_queries(
        searcher, data.queries, k=negatives_depth, remove_identical_ids=False, mode="sparse", desc="student (sparse)"
    )
    source_first = sum(next(iter(teacher[q]), None) == data.positives[q][0] for q in data.queries) / len(data.queries)
    teacher = learn_from_other_documents(data, teacher)
    negatives_from_run(data, teacher, depth=negatives_depth)
    scale = teacher_scale(teacher, student, None, negatives_depth)
    console.print(
        f"{len(data.queries)} pseudo-queries (the teacher ranks their own document first for {source_first:.1%}; "
        f"training learns its ranking of the others); teacher scale {scale}"
    )
    config = TrainingConfig(
        base=base,
        architecture=architecture,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        lambda_d=lambda_flops,
        lambda_q=lambda_flops,
        lambda_warmup_steps=steps // 4,
        distillation="kl",
        teacher_scale=scale,
        ranking_weight=0.0,  # no qrels: the teacher's ranking is the only signal
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    summary = train_model(
        config, data, out, teacher=teacher, overwrite=overwrite, resume=resume, on_log=_training_progress(steps), device=device
    )
    console.print(
        f"adapted {base} on {summary['training_queries']} pseudo-queries in {summary['wall_seconds']:.0f}s; index with "
        f"`lsr index DATASET --encoder {shlex.quote(str(out))}`"
    )


def main() -> None:
    """Entry point: user errors are one line on stderr, never a traceback."""
    try:
        app()
    except LsrError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted (an interrupted `lsr index` continues with --resume)", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, with the traceback on request
        if os.environ.get("LSR_DEBUG"):
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (set LSR_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
