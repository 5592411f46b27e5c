"""Every default a user can override, declared once.

The library's settings classes and the `lsr` command read them from here. The module imports nothing, so the
command's options can show them without loading torch.
"""

SPARSE_ENCODER = "splade-tiny"
DENSE_ENCODER = "all-minilm-l6-v2"
DOC_MAX_LENGTH = 256  # tokens, at indexing time
QUERY_MAX_LENGTH = 64  # tokens; recorded in the manifest as the index's query default
CHUNK_SIZE = 1000  # documents per checkpointed chunk of an indexing run
QUANTIZATION_SCALE = 100.0  # impact = round(weight × scale)
DEVICE = "auto"  # where encoders run: auto (CUDA when torch sees a GPU), cpu or cuda
DENSE_BACKEND = "openvino"  # what runs the dense encoder on the CPU at indexing time; see encoders.index_dense_backend
PRECISION = "bf16"  # sparse encoder arithmetic at indexing time (UHD: fp32 only); see encoders.index_precision
COMPACT_AFTER = 1000  # live updates (delta rows + tombstones) held in memory before a background compaction
RUN_DEPTH = 1000  # hits per query in an evaluation run
SEARCH_K = 10
NEGATIVES_DEPTH = 50  # hits per query that hard negatives are drawn from
# Sparse queries' weights × (corpus idf / mean)^this, for plain SPLADE encoders: chosen by leave-one-dataset-out over
# the four shared datasets (bench/query_idf.py; docs/query-idf.md has the evidence). Indexes record what they apply.
QUERY_IDF = 0.5

# The fusion of an index never tuned with `lsr tune`, for each set of signals its hybrid mode fuses: chosen by
# leave-one-dataset-out over the four shared datasets, their sparse queries weighted by QUERY_IDF
# (bench/fusion_default.py prints this; docs/fusion-default.md has the evidence). A mode that fuses fewer signals
# keeps the others' weights in proportion.
UNTUNED_FUSION = {
    "sparse+dense+bm25": {
        "weights": {"sparse": 0.2, "dense": 0.5, "bm25": 0.3},
        "method": "convex",
        "rrf_k": 60,
        "normalization": "zscore",
        "depth": 100,
        "dense_feedback": 3,
        "dense_feedback_weight": 1.0,
    },
    "sparse+dense": {
        "weights": {"sparse": 0.4, "dense": 0.6},
        "method": "convex",
        "rrf_k": 60,
        "normalization": "zscore",
        "depth": 100,
        "dense_feedback": 3,
        "dense_feedback_weight": 0.5,
    },
    "sparse+bm25": {
        "weights": {"sparse": 0.4, "bm25": 0.6},
        "method": "convex",
        "rrf_k": 60,
        "normalization": "minmax",
        "depth": 100,
    },
}


class Training:
    """``lsr train``'s defaults (``TrainingConfig``'s fields): a short SPLADE fine-tune."""

    base = SPARSE_ENCODER
    steps = 200
    batch_size = 16
    learning_rate = 5e-5
    lambda_d = 1e-3  # FLOPS weight on documents
    lambda_q = 1e-3  # FLOPS weight on queries
    lambda_warmup_steps = 50  # T in λ_t = λ·min(1, t/T)²
    query_max_length = 32  # shorter than at indexing time: training steps cost quadratically in length
    doc_max_length = 128
    uhd_dim = 8192
    uhd_k = 32


class Adaptation:
    """``lsr adapt``'s defaults: the distillation recipe that docs/training chose on nfcorpus dev (KL from the hybrid
    teacher alone, lr 5e-5, batches of 8, λ 1e-5), fed with pseudo-queries from the corpus instead of qrels. Four
    pseudo-queries per document (distinct sentences) and four times the steps of one per document (800): better on
    nfcorpus dev and scifact train, the splits it was chosen on, and on all four shared test sets (docs/adapt.md)."""

    queries = 25_000
    query_min_words = 4
    query_max_words = 24
    query_length = "longest"
    queries_per_document = 4
    steps = 3_200
    batch_size = 8
    learning_rate = 5e-5
    lambda_flops = 1e-5  # on documents and queries
