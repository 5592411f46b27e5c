"""The training loop: contrastive ranking loss with in-batch and hard negatives, FLOPS regularizers on both
sides with a quadratic warm-up, optional L1 on queries and distillation from a teacher's run.

One loop serves SPLADE, UHD and inference-free SPLADE (whose query side is the fixed bag of word-pieces).
The output folder is a model folder every encoder loader accepts (`lsr index --encoder FOLDER`); it is
assembled as ``<out>.partial`` and renamed when training ends, with checkpoints (also model folders) in
``checkpoints/step-N`` and every step's log in ``training_log.jsonl``. A checkpoint also holds the optimizer,
schedule and random state, so an interrupted run continues from its last checkpoint (``resume=True``) and
ends with the model an uninterrupted run would have written.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, get_linear_schedule_with_warmup

from lsr import defaults
from lsr.errors import EncoderError, LsrError
from lsr.retrieval.encoders.arch import ARCH_FILE, Architecture, write_architecture
from lsr.retrieval.encoders.bow import IDF_FILE, BagOfWordPieces, compute_idf
from lsr.retrieval.encoders.device import resolve_device
from lsr.retrieval.encoders.registry import load_tokenizer, resolve_model, transformers_quiet
from lsr.retrieval.encoders.splade import decoder_removed, is_masked_lm, screened_splade_pool, splade_pool
from lsr.retrieval.encoders.uhd import UhdModel
from lsr.retrieval.training import losses
from lsr.retrieval.training.data import Batch, TrainingData
from lsr.runs import Run

LOG_FILE = "training_log.jsonl"
SUMMARY_FILE = "training.json"
STATE_FILE = "training_state.pt"  # in each checkpoint: what resuming needs besides the model folder


@dataclass(frozen=True)
class TrainingConfig:
    base: str = defaults.Training.base  # a masked-LM checkpoint: packaged name, folder or Hugging Face id
    architecture: Architecture = Architecture()
    steps: int = defaults.Training.steps
    batch_size: int = defaults.Training.batch_size
    learning_rate: float = defaults.Training.learning_rate
    head_learning_rate: float | None = None  # UHD: the new projection starts from random weights; None: learning_rate
    lambda_d: float = defaults.Training.lambda_d  # FLOPS weight on documents
    lambda_q: float = defaults.Training.lambda_q  # FLOPS weight on queries (unused with bag-of-words queries)
    lambda_warmup_steps: int = defaults.Training.lambda_warmup_steps  # T in λ_t = λ·min(1, t/T)²
    l1_q: float = 0.0
    distillation: str | None = None  # "marginmse" or "kl", with a teacher run
    distillation_weight: float = 1.0
    # Multiplies the teacher's scores: both losses read their scale, and a teacher whose margins are narrower than
    # the student's (a fusion in z-score units: 2.4× narrower than splade-tiny's on nfcorpus) makes the student
    # shrink its scores by dropping terms. Match it to the ratio of the two score spreads.
    teacher_scale: float = 1.0
    # 0 trains on the teacher alone: on incomplete qrels (nfcorpus) the contrastive loss cannot separate judged
    # positives from unjudged relevant documents, and the cheapest way to lower it is shrinking every score,
    # which the model does by dropping terms.
    ranking_weight: float = 1.0
    # > 0: a document term may not fall below its weight in the starting model (each shortfall costs anchor × its
    # square), and FLOPS counts only the terms the starting model did not give the document. Distillation under
    # inference-free queries otherwise prunes the starting model's expansion terms (docs/training/inference-free.md).
    anchor: float = 0.0
    query_max_length: int = defaults.Training.query_max_length
    doc_max_length: int = defaults.Training.doc_max_length
    checkpoint_every: int = 0  # steps; 0: only the final model
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "query_max_length", "doc_max_length"):
            if getattr(self, name) < 1:
                raise LsrError(f"{name.replace('_', ' ')} must be positive, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise LsrError(f"learning rate must be positive, got {self.learning_rate}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise LsrError(f"head learning rate must be positive, got {self.head_learning_rate}")
        if self.head_learning_rate is not None and not self.architecture.uhd:
            raise LsrError("a head learning rate needs a UHD architecture (SPLADE has no new head)")
        if self.anchor and self.architecture.uhd and self.architecture.uhd.head == "random":
            raise LsrError(
                "an anchor keeps the starting model's document terms, and a random UHD head has none worth keeping: "
                "start the head from the masked-LM head (--uhd-head mlm) or train without --anchor"
            )
        if not self.teacher_scale > 0:
            raise LsrError(f"teacher scale must be positive, got {self.teacher_scale}")
        for name in (
            "lambda_d",
            "lambda_q",
            "l1_q",
            "distillation_weight",
            "ranking_weight",
            "anchor",
            "steps",  # 0: the base weights unchanged, only the query side (an inference-free model's IDF) fitted
            "lambda_warmup_steps",
            "checkpoint_every",
        ):
            if getattr(self, name) < 0:
                raise LsrError(f"{name.replace('_', ' ')} must not be negative, got {getattr(self, name)}")
        if self.distillation not in (None, *losses.DISTILLATION):
            raise LsrError(f"distillation must be one of {', '.join(losses.DISTILLATION)}, got {self.distillation!r}")
        if self.ranking_weight == 0 and (self.distillation is None or self.distillation_weight == 0):
            raise LsrError(
                "with ranking weight 0 only distillation is left to learn from: give a distillation method and a positive weight"
            )

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "architecture": self.architecture.to_dict()}


class Student:
    """The model being trained, as two differentiable text → (texts, dim) functions."""

    def __init__(self, config: TrainingConfig, idf: np.ndarray | None, device: torch.device) -> None:
        path = resolve_model(config.base).path
        self.device = device
        self.config = config
        self.tokenizer = load_tokenizer(path)
        architecture = config.architecture
        if architecture.uhd:
            self.model = UhdModel.from_backbone(path, architecture.uhd)
            self.dim = self.model.head.dim
        else:
            if not is_masked_lm(AutoConfig.from_pretrained(path)):
                raise EncoderError(f"{config.base!r} is not a masked language model, so SPLADE cannot start from it")
            with transformers_quiet():
                self.model = AutoModelForMaskedLM.from_pretrained(path)
            self.dim = int(self.model.config.vocab_size)
        self.model.to(device)
        # The starting model, frozen, for the anchor; taken before a resumed run loads its checkpoint.
        self.start = copy.deepcopy(self.model).eval().requires_grad_(False) if config.anchor else None
        self.bag_of_words = None
        if architecture.query_encoder == "bow":
            self.bag_of_words = BagOfWordPieces(self.tokenizer, self.dim, config.query_max_length, idf)

    def _encode(self, model: torch.nn.Module, texts: list[str], max_length: int) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        tokens = tokens.to(self.device)
        # On a GPU the forward pass runs in bf16 (tensor cores) with fp32 weights, gradients and pooled vectors.
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            # The int8 screen runs on the CPU (torch._int_mm); equal loss and gradients.
            if self.config.architecture.uhd:
                return model(**tokens, screened=self.device.type == "cpu").float()
            if self.device.type == "cpu":
                with decoder_removed(model) as decoder:
                    features = model(**tokens).logits
                return screened_splade_pool(features, tokens["attention_mask"], decoder)
            return splade_pool(model(**tokens).logits, tokens["attention_mask"])

    def encode_queries(self, texts: list[str]) -> torch.Tensor:
        if self.bag_of_words:
            return torch.from_numpy(self.bag_of_words.encode(texts).toarray()).to(self.device)
        return self._encode(self.model, texts, self.config.query_max_length)

    def encode_documents(self, texts: list[str]) -> torch.Tensor:
        return self._encode(self.model, texts, self.config.doc_max_length)

    def starting_documents(self, texts: list[str]) -> torch.Tensor:
        """The documents as the starting model encodes them (needs an anchor)."""
        assert self.start is not None, "only a run with an anchor keeps the starting model"
        with torch.no_grad():
            return self._encode(self.start, texts, self.config.doc_max_length)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, UhdModel):
            self.model.save(folder)
        else:
            self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        if self.bag_of_words and self.bag_of_words.idf is not None:
            np.save(folder / IDF_FILE, self.bag_of_words.idf)
        write_architecture(folder, self.config.architecture)


def _parameter_groups(model: torch.nn.Module, config: TrainingConfig) -> list[dict]:
    """One group, or with a head learning rate two: the pretrained backbone and the UHD head."""
    if config.head_learning_rate is None:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    return [
        {"params": [p for p in model.backbone.parameters() if p.requires_grad]},
        {"params": [p for p in model.head.parameters() if p.requires_grad], "lr": config.head_learning_rate},
    ]


def _excluded(batch: Batch, positives: dict[str, list[str]]) -> torch.Tensor:
    """(queries, documents): True where another query's document is judged relevant to this query."""
    documents = batch.positive_ids + batch.negative_ids
    return torch.tensor(
        [
            [j != i and doc_id in positives[query_id] for j, doc_id in enumerate(documents)]
            for i, query_id in enumerate(batch.query_ids)
        ]
    )


def _teacher_scores(batch: Batch, teacher: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """(queries, documents) teacher scores of every document of the batch, and which queries the teacher ranked.

    A document missing from the teacher's list for a query scored below its last hit: it gets that minimum.
    """
    documents = batch.positive_ids + batch.negative_ids
    rows, known = [], []
    for query_id in batch.query_ids:
        ranked = teacher.get(query_id, {})
        floor = min(ranked.values(), default=0.0)
        rows.append([ranked.get(doc_id, floor) for doc_id in documents])
        known.append(bool(ranked))
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(known)


def _step_log(
    step: int,
    parts: dict[str, torch.Tensor],
    queries: torch.Tensor,
    documents: torch.Tensor,
    lambda_d: float,
    lambda_q: float,
    started: float,
) -> dict:
    query_active, document_active = queries > 0, documents > 0
    return {
        "step": step,
        **{name: round(float(value.detach()), 6) for name, value in parts.items()},
        "lambda_d": lambda_d,
        "lambda_q": lambda_q,
        "active_terms_query": round(float(query_active.sum(dim=1).float().mean()), 2),
        "active_terms_document": round(float(document_active.sum(dim=1).float().mean()), 2),
        # Expected postings touched per (query, document) pair: Σ_j P(q_j ≠ 0)·P(d_j ≠ 0) over the batch.
        "flops": round(float((query_active.float().mean(dim=0) * document_active.float().mean(dim=0)).sum()), 4),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _checkpoints(staging: Path) -> list[Path]:
    """Complete checkpoints (the state file is written last), latest first."""
    found = [folder for folder in (staging / "checkpoints").glob("step-*") if (folder / STATE_FILE).is_file()]
    return sorted(found, key=lambda folder: int(folder.name.removeprefix("step-")), reverse=True)


def _checkpoint(folder: Path, student: Student, optimizer: torch.optim.Optimizer, schedule, step: int, seconds: float) -> None:
    student.save(folder)
    state = {
        "step": step,
        "seconds": seconds,
        "config": student.config.to_dict(),
        "model": student.model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),  # dropout masks continue as in an uninterrupted run
    }
    partial = folder / f"{STATE_FILE}.partial"
    torch.save(state, partial)
    partial.rename(folder / STATE_FILE)


def _resumable_state(staging: Path, config: TrainingConfig) -> dict | None:
    if not staging.is_dir():
        raise LsrError(f"nothing to resume: {staging} does not exist (train without --resume)")
    checkpoints = _checkpoints(staging)
    if not checkpoints:
        raise LsrError(f"nothing to resume: {staging} holds no checkpoint (train with --checkpoint-every N to make them)")
    state = torch.load(checkpoints[0] / STATE_FILE, map_location="cpu", weights_only=False)
    # A setting lsr gained after the checkpoint was written has its default there, so an older run still resumes.
    started, wanted = {**TrainingConfig().to_dict(), **state["config"]}, config.to_dict()
    if started != wanted:
        differing = sorted(key.replace("_", " ") for key, value in wanted.items() if started.get(key) != value)
        raise LsrError(f"cannot resume from {staging}: it was started with another {', '.join(differing)}")
    return state


def _restore(state: dict, staging: Path, student: Student, optimizer: torch.optim.Optimizer, schedule) -> tuple[int, float]:
    """Loads the checkpoint into the fresh objects and cuts the log back to its step; returns (step, seconds)."""
    student.model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    torch.set_rng_state(state["torch_rng"])
    log = staging / LOG_FILE
    kept = [line for line in log.read_text().splitlines() if json.loads(line)["step"] <= state["step"]]
    log.write_text("".join(line + "\n" for line in kept))
    for later in (staging / "checkpoints").glob("step-*"):
        if int(later.name.removeprefix("step-")) > state["step"]:
            shutil.rmtree(later)
    return state["step"], state["seconds"]


def train(
    config: TrainingConfig,
    data: TrainingData,
    out: Path,
    *,
    teacher: Run | None = None,
    overwrite: bool = False,
    resume: bool = False,
    on_log: Callable[[dict], None] | None = None,
    device: str = defaults.DEVICE,
) -> dict:
    """Trains, writes the model folder ``out`` and returns the summary also saved in its training.json.

    ``resume`` continues an interrupted run of the same configuration from the last checkpoint in ``<out>.partial``
    (on any ``device``: auto is CUDA when torch sees a GPU).
    """
    on = resolve_device(device)
    if (config.distillation is None) != (teacher is None):
        raise LsrError("distillation needs both a method (marginmse or kl) and a teacher run")
    if out.exists() and not overwrite:
        raise LsrError(f"{out} already exists: pass --overwrite to replace it")
    if out.exists() and not (out / ARCH_FILE).is_file() and any(out.iterdir()):
        raise LsrError(f"{out} is not a model folder written by `lsr train`; refusing to overwrite it")
    staging = out.with_name(f"{out.name}.partial")
    resumed = _resumable_state(staging, config) if resume else None
    if resumed is None:
        if _checkpoints(staging) and not overwrite:
            raise LsrError(
                f"an interrupted training run left {staging}: pass --resume to continue it, or --overwrite to start over"
            )
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    torch.manual_seed(config.seed)
    idf = None
    if config.architecture.idf:
        idf = compute_idf(load_tokenizer(resolve_model(config.base).path), list(data.documents.values()), config.doc_max_length)
    student = Student(config, idf, on)
    optimizer = torch.optim.AdamW(_parameter_groups(student.model, config), lr=config.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, config.steps // 10), config.steps)
    done, elapsed, entry = 0, 0.0, None
    if resumed is not None:
        done, elapsed = _restore(resumed, staging, student, optimizer, schedule)
    learns_queries = config.architecture.query_encoder == "model"
    started = time.perf_counter() - elapsed
    student.model.train()
    with (staging / LOG_FILE).open("a") as log_file:
        # The batches are drawn from the seed alone, so a resumed run skips the ones it has trained on.
        for step, batch in enumerate(data.batches(config.batch_size, config.steps, config.seed), start=1):
            if step <= done:
                continue
            queries = student.encode_queries([data.queries[q] for q in batch.query_ids])
            document_texts = [data.documents[d] for d in batch.positive_ids + batch.negative_ids]
            documents = student.encode_documents(document_texts)
            scores = queries @ documents.T
            lambda_d = losses.warmed_up(config.lambda_d, step, config.lambda_warmup_steps)
            lambda_q = losses.warmed_up(config.lambda_q, step, config.lambda_warmup_steps) if learns_queries else 0.0
            start = student.starting_documents(document_texts) if config.anchor else None
            parts = {
                "ranking_loss": losses.contrastive(scores, _excluded(batch, data.positives).to(on)),
                "flops_d": losses.flops(documents if start is None else documents * (start == 0)),
                "flops_q": losses.flops(queries) if learns_queries else torch.zeros((), device=on),
                "l1_q": losses.l1(queries) if learns_queries and config.l1_q else torch.zeros((), device=on),
            }
            if start is not None:
                parts["anchor"] = losses.shortfall(documents, start)
            loss = (
                config.ranking_weight * parts["ranking_loss"]
                + lambda_d * parts["flops_d"]
                + lambda_q * parts["flops_q"]
                + config.l1_q * parts["l1_q"]
                + config.anchor * parts.get("anchor", 0.0)
            )
            if teacher is not None:
                teacher_scores, known = _teacher_scores(batch, teacher)
                teacher_scores = teacher_scores.to(on) * config.teacher_scale
                parts["distillation"] = (
                    losses.DISTILLATION[config.distillation](scores, teacher_scores, known.nonzero().squeeze(1).to(on))
                    if known.any()
                    else torch.zeros((), device=on)
                )
                loss = loss + config.distillation_weight * parts["distillation"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            entry = _step_log(step, {"loss": loss, **parts}, queries.detach(), documents.detach(), lambda_d, lambda_q, started)
            log_file.write(json.dumps(entry) + "\n")
            if on_log:
                on_log(entry)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                log_file.flush()
                _checkpoint(staging / "checkpoints" / f"step-{step}", student, optimizer, schedule, step, entry["seconds"])
    student.model.eval()
    student.save(staging)
    summary = {
        "config": config.to_dict(),
        "training_queries": len(data.queries),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "last_step": entry,
    }
    (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return summary
