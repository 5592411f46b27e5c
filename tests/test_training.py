"""Training on real data with the real splade-tiny: FLOPS regularization, UHD, inference-free queries,
and trained model folders that index, serve and evaluate like any encoder."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from lsr.errors import EncoderError, EncoderMismatchError, LsrError
from lsr.retrieval.encoders import Architecture, UhdSettings, load_sparse_encoder
from lsr.retrieval.encoders.bow import BagOfWordPieces, compute_idf
from lsr.retrieval.encoders.uhd import UhdHead
from lsr.retrieval.training import TrainingConfig, load_training_data, losses, negatives_from_run, score_spread_ratio, train
from lsr.runs import read_run


@pytest.fixture(scope="module")
def nfcorpus_pairs():
    """30 real nfcorpus train queries with their positives; negatives are random documents."""
    from conftest import shared_dataset

    return load_training_data(shared_dataset("nfcorpus"), "train", max_queries=30, seed=1)


def lsr(*args):
    return subprocess.run([sys.executable, "-m", "lsr", *args], capture_output=True, text=True, timeout=600)


def first_positives(pairs, queries: int) -> list[str]:
    return [pairs.documents[pairs.positives[q][0]] for q in sorted(pairs.queries)[:queries]]


def mean_active_terms(model_folder, texts) -> float:
    return load_sparse_encoder(str(model_folder), doc_max_length=64).encode_documents(texts).getnnz(axis=1).mean()


@pytest.mark.slow
def test_higher_lambda_gives_fewer_active_terms(tmp_path, nfcorpus_pairs):
    texts = first_positives(nfcorpus_pairs, 10)
    terms = []
    for lam in (0.0, 0.05, 1.0):
        config = TrainingConfig(
            steps=5,
            batch_size=4,
            learning_rate=1e-3,
            lambda_d=lam,
            lambda_q=lam,
            lambda_warmup_steps=0,
            query_max_length=16,
            doc_max_length=32,
        )
        train(config, nfcorpus_pairs, tmp_path / f"lambda-{lam}")
        terms.append(mean_active_terms(tmp_path / f"lambda-{lam}", texts))
    assert terms[0] > terms[1] > terms[2], terms


@pytest.mark.slow
def test_an_anchor_keeps_the_starting_models_document_terms(tmp_path, nfcorpus_pairs):
    """A strong FLOPS term at a high rate prunes documents; with an anchor it may prune only what the starting model
    did not have, and the step's loss adds anchor × the shortfall."""
    texts = first_positives(nfcorpus_pairs, 10)
    start_terms = load_sparse_encoder("splade-tiny", doc_max_length=32).encode_documents(texts)
    kept = {}
    for anchor in (0.0, 100.0):
        config = TrainingConfig(
            steps=5,
            batch_size=4,
            learning_rate=1e-3,
            lambda_d=1.0,
            lambda_q=1.0,
            lambda_warmup_steps=0,
            doc_max_length=32,
            anchor=anchor,
        )
        train(config, nfcorpus_pairs, tmp_path / f"anchor-{anchor}")
        trained = load_sparse_encoder(str(tmp_path / f"anchor-{anchor}"), doc_max_length=32).encode_documents(texts)
        kept[anchor] = start_terms.multiply(trained).nnz / start_terms.nnz  # the starting terms still there
    assert kept[0.0] < 0.5 < 0.9 < kept[100.0], kept
    log = [json.loads(line) for line in (tmp_path / "anchor-100.0" / "training_log.jsonl").read_text().splitlines()]
    for entry in log:
        parts = entry["ranking_loss"] + entry["flops_d"] + entry["flops_q"] + 100.0 * entry["anchor"]
        assert entry["loss"] == pytest.approx(parts, rel=1e-4)


def test_uhd_head_keeps_k_winners_per_token_and_binarizes():
    torch.manual_seed(0)
    settings = UhdSettings(dim=64, k=3, layers=(-1, -2), binarized=False)
    head = UhdHead.random(8, settings)
    hidden = [torch.randn(2, 5, 8, requires_grad=True) for _ in range(3)]
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    vectors = head(hidden, mask)
    assert vectors.shape == (2, 128)
    assert (vectors >= 0).all()
    for bucket in range(2):  # the one-token text: at most k dimensions per bucket
        assert 0 < (vectors[1, bucket * 64 : (bucket + 1) * 64] > 0).sum() <= 3
    assert ((vectors[0, :64] > 0).sum()) <= 5 * 3

    binarized = UhdHead.random(8, UhdSettings(dim=64, k=3, layers=(-1, -2), binarized=True))
    binarized.load_state_dict(head.state_dict())
    binary = binarized(hidden, mask)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(binary > 0, vectors > 0)
    binary.sum().backward()  # straight-through: gradients reach the projections despite the step function
    assert binarized.projections[0].weight.grad.abs().sum() > 0


def test_uhd_head_from_the_masked_lm_head_starts_as_splade(tmp_path):
    """With every winner kept its vector is SPLADE's; k caps each token's dimensions; it saves and loads."""
    from lsr.retrieval.encoders import SpladeEncoder
    from lsr.retrieval.encoders.registry import resolve_model
    from lsr.retrieval.encoders.uhd import UhdModel

    path = resolve_model("splade-tiny").path
    splade = SpladeEncoder("splade-tiny", precision="fp32")
    texts = ["vitamin D deficiency and bone health", "Statins lower cholesterol in adults at risk of heart disease."]
    tokens = splade.tokenizer(texts, padding=True, return_tensors="pt")
    everything = UhdModel.from_backbone(path, UhdSettings(dim=30522, k=30522, head="mlm")).eval()
    with torch.no_grad():
        vectors = everything(**tokens).numpy()
    np.testing.assert_allclose(vectors, splade.encode_documents(texts).toarray(), atol=1e-4)

    few = UhdSettings(dim=30522, k=8, head="mlm")
    model = UhdModel.from_backbone(path, few).eval()
    with torch.no_grad():
        capped = model(**tokens)
        assert ((capped[1] > 0).sum() <= 8 * tokens["attention_mask"][1].sum()).item()
        model.save(tmp_path / "uhd")
        assert torch.equal(UhdModel.load(tmp_path / "uhd", few).eval()(**tokens), capped)
    with pytest.raises(EncoderError, match="vocabulary's 30522 dimensions"):
        UhdModel.from_backbone(path, UhdSettings(dim=8192, k=8, head="mlm"))


def test_starting_a_uhd_model_shows_no_loading_bar_and_leaves_transformers_settings_as_they_were(capsys):
    """The "Loading weights" bar and the expected "unused MLM head" remark are quieted only while the backbone loads:
    transformers' settings are process-wide."""
    from transformers.utils import logging as transformers_logging

    from lsr.retrieval.encoders.registry import resolve_model
    from lsr.retrieval.encoders.uhd import UhdModel

    transformers_logging.set_verbosity_warning()
    transformers_logging.enable_progress_bar()
    UhdModel.from_backbone(resolve_model("splade-tiny").path, UhdSettings(dim=30522, k=8, head="mlm"))
    assert "Loading weights" not in capsys.readouterr().err
    assert transformers_logging.get_verbosity() == transformers_logging.WARNING
    assert transformers_logging.is_progress_bar_enabled()


def test_uhd_settings_are_validated():
    with pytest.raises(EncoderError, match="k must be between 1 and the dimension"):
        UhdSettings(dim=16, k=32)
    with pytest.raises(EncoderError, match="need vocabulary dimensions"):
        Architecture(arch="uhd", query_encoder="bow", uhd=UhdSettings())
    with pytest.raises(EncoderError, match="UHD head must be one of random, mlm"):
        UhdSettings(head="tiled")
    mlm = Architecture(arch="uhd", uhd=UhdSettings(dim=30522, k=8, head="mlm"))
    assert Architecture.from_dict(mlm.to_dict()) == mlm and mlm.spec_params["head"] == "mlm"
    assert "head" not in Architecture(arch="uhd", uhd=UhdSettings()).spec_params  # as recorded before the option


def test_bag_of_word_pieces_queries(splade):
    tokenizer = splade.tokenizer
    plain = BagOfWordPieces(tokenizer, splade.dim, 32).encode(["vitamin D and vitamin C", "bone"])
    expected = set(tokenizer("vitamin D and vitamin C", add_special_tokens=False)["input_ids"])
    assert set(plain[0].indices) == expected and np.all(plain[0].data == 1.0)
    assert plain[1].nnz == 1
    idf = compute_idf(tokenizer, ["the bone", "the cancer", "the diet", "bone diet"], 32)
    [the, bone] = tokenizer.convert_tokens_to_ids(["the", "bone"])
    assert idf[bone] > idf[the] > 0
    weighted = BagOfWordPieces(tokenizer, splade.dim, 32, idf).encode(["the bone"])
    assert dict(zip(weighted.indices, weighted.data)) == pytest.approx({the: idf[the], bone: idf[bone]})


def test_losses_follow_their_formulas():
    weights = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert losses.flops(weights) == pytest.approx(2.0**2 + 0 + 1.0**2)
    assert losses.l1(weights) == pytest.approx(3.0)
    start = torch.tensor([[2.0, 1.0, 1.0], [3.0, 0.0, 0.5]])  # shortfalls 1, 1, 0 and 0, 0, 0.5
    assert losses.shortfall(weights, start) == pytest.approx((1.0 + 1.0 + 0.25) / 2)
    assert [losses.warmed_up(0.1, t, 10) for t in (0, 5, 10, 20)] == pytest.approx([0.0, 0.025, 0.1, 0.1])
    # Two queries; columns: positive of query 0, of query 1, negative of query 0, of query 1.
    student = torch.tensor([[5.0, 0.0, 2.0, 0.0], [0.0, 4.0, 0.0, 3.0]])
    teacher = torch.tensor([[13.0, 9.0, 10.0, 9.0], [0.0, 1.0, 0.0, 0.0]])
    both, first = torch.tensor([0, 1]), torch.tensor([0])
    assert losses.margin_mse(student, teacher, first) == pytest.approx(0.0)  # margins 3 and 3
    assert losses.margin_mse(student, teacher, both) == pytest.approx(0.0)  # query 1: margins 1 and 1
    assert losses.margin_mse(
        student, teacher + torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]), both
    ) == pytest.approx(2.0**2 / 2)
    # Listwise: every document of the batch counts, and adding a constant to a row changes nothing.
    assert losses.kl_divergence(student, student + 7.0, both) == pytest.approx(0.0, abs=1e-6)
    assert losses.kl_divergence(student, teacher, first) > 0


def test_training_arguments_are_validated(tmp_path, nfcorpus_pairs):
    with pytest.raises(LsrError, match="distillation needs both"):
        train(TrainingConfig(steps=1, distillation="kl"), nfcorpus_pairs, tmp_path / "m")
    with pytest.raises(LsrError, match="batch size 64 exceeds the 30 training queries"):
        train(TrainingConfig(steps=1, batch_size=64), nfcorpus_pairs, tmp_path / "m")
    bad_run = tmp_path / "run.txt"
    bad_run.write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(LsrError, match="run.txt:1: score 'high' is not a number"):
        read_run(bad_run)
    with pytest.raises(LsrError, match="with ranking weight 0 only distillation is left"):
        TrainingConfig(ranking_weight=0.0)
    assert not (tmp_path / "m").exists()


def test_negatives_from_a_teacher_run_are_its_top_documents_minus_positives(nfcorpus_pairs):
    query = sorted(nfcorpus_pairs.queries)[0]
    positive = nfcorpus_pairs.positives[query][0]
    others = [d for d in sorted(nfcorpus_pairs.documents) if d not in nfcorpus_pairs.positives[query]][:4]
    run = {query: {others[0]: 1.0, positive: 9.0, others[1]: 5.0, others[2]: 3.0, others[3]: 2.0}}
    data = replace(nfcorpus_pairs, negatives={})
    negatives_from_run(data, run, depth=4)  # the top 4: positive, others[1], others[2], others[3]
    assert data.negatives == {query: [others[1], others[2], others[3]]}
    with pytest.raises(LsrError, match="ranks none of the training queries"):
        negatives_from_run(data, {"not-a-training-query": {others[0]: 1.0}})
    with pytest.raises(LsrError, match="teacher run holds 1 hits that are not in the training corpus"):
        negatives_from_run(data, {query: {"no-such-document": 1.0}})


def test_score_spread_ratio_puts_the_teacher_in_the_students_units():
    teacher = {"q1": {"a": 3.0, "b": 2.0, "c": 0.0}, "q2": {"a": 1.0, "b": 0.5}}
    student = {q: {d: 2.5 * score + 10.0 for d, score in ranked.items()} for q, ranked in teacher.items()}
    assert score_spread_ratio(student, teacher) == pytest.approx(2.5)
    with pytest.raises(LsrError, match="share no query"):
        score_spread_ratio({"q3": {"a": 1.0}}, teacher)


def test_cli_measures_the_teacher_scale_only_from_a_teacher_run(tmp_path):
    from conftest import shared_dataset

    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\n")
    for extra in ([], ["--teacher-run", str(run), "--distillation", "kl", "--teacher-scale", "2"]):
        refused = lsr("train", str(shared_dataset("nfcorpus")), "--out", str(tmp_path / "m"), "--student-run", str(run), *extra)
        assert refused.returncode == 2 and "--student-run measures the teacher scale" in refused.stderr, refused.stderr
    assert not (tmp_path / "m").exists()


def test_distillation_alone_drives_the_loss(tmp_path, nfcorpus_pairs):
    """Ranking weight 0 and no FLOPS term: each step's loss is the distillation loss alone."""
    teacher = {
        q: {d: float(rank) for rank, d in enumerate(reversed(sorted(nfcorpus_pairs.documents)[:40]))}
        for q in nfcorpus_pairs.queries
    }
    data = replace(nfcorpus_pairs, negatives={})
    negatives_from_run(data, teacher, depth=20)
    config = TrainingConfig(
        steps=2,
        batch_size=4,
        doc_max_length=32,
        query_max_length=16,
        distillation="kl",
        ranking_weight=0.0,
        lambda_d=0.0,
        lambda_q=0.0,
    )
    train(config, data, tmp_path / "model", teacher=teacher)
    log = [json.loads(line) for line in (tmp_path / "model" / "training_log.jsonl").read_text().splitlines()]
    assert all(entry["loss"] == pytest.approx(entry["distillation"]) and entry["ranking_loss"] > 0 for entry in log)


@pytest.mark.slow
def test_trained_uhd_model_indexes_serves_and_evaluates(tmp_path, small_dataset, small_index, splade):
    """`lsr train --arch uhd` → `lsr index --encoder FOLDER` → API search → `lsr eval`, all real."""
    from conftest import shared_dataset

    from lsr.api.app import create_app
    from lsr.indexer import IndexFolder
    from lsr.retrieval.search import LiveSearcher, Searcher

    model, index = tmp_path / "uhd-model", tmp_path / "uhd-index"
    trained = lsr(
        "train",
        str(shared_dataset("nfcorpus")),
        "--out",
        str(model),
        "--arch",
        "uhd",
        "--uhd-dim",
        "512",
        "--uhd-k",
        "8",
        "--uhd-layers",
        "-1,-2",
        "--binarize",
        "--max-queries",
        "20",
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--doc-max-length",
        "32",
        "--checkpoint-every",
        "1",
    )
    assert trained.returncode == 0, trained.stderr
    assert "step 2/2" in trained.stdout
    log = [json.loads(line) for line in (model / "training_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2] and {"ranking_loss", "flops_d", "active_terms_document", "flops"} <= set(
        log[0]
    )
    assert (model / "checkpoints" / "step-1" / "uhd_heads.safetensors").is_file()

    indexed = lsr("index", str(small_dataset), "--out", str(index), "--encoder", str(model), "--doc-max-length", "64")
    assert indexed.returncode == 0, indexed.stderr
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["dim"] == 1024
    assert manifest["encoder"]["kind"] == "uhd"
    assert manifest["encoder"]["arch"] == {
        "arch": "uhd",
        "query_encoder": "model",
        "idf": False,
        "dim": 512,
        "k": 8,
        "layers": [-1, -2],
        "binarized": True,
    }
    assert set(np.unique(IndexFolder(index).vectors.data)) == {100}  # binarized weights quantize to 1.0 × 100

    searcher = Searcher.open(index)
    response = TestClient(create_app(LiveSearcher.from_searcher(searcher))).post(
        "/search", json={"query": "flow over a wing", "k": 5}
    )
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert [hit["id"] for hit in hits] == [hit.id for hit in searcher.search("flow over a wing", 5)]
    assert all(float(hit["score"]).is_integer() for hit in hits)  # binarized: scores count overlapping dimensions

    evaluated = lsr("eval", str(index), str(small_dataset), "-m", "nDCG@10", "--out", str(tmp_path / "report"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert "nDCG@10" in json.loads((tmp_path / "report" / "report.json").read_text())["measures"]

    with pytest.raises(EncoderMismatchError, match="search it with the encoder that built it"):
        Searcher(IndexFolder(index), splade)
    with pytest.raises(EncoderMismatchError):
        Searcher(IndexFolder(small_index), load_sparse_encoder(str(model)))


def test_zero_steps_keep_the_base_weights_and_fit_only_the_query_side(tmp_path, nfcorpus_pairs, splade):
    """`lsr train --inference-free --idf --steps 0`: splade-tiny's documents, queries weighted by the corpus IDF."""
    config = TrainingConfig(architecture=Architecture(query_encoder="bow", idf=True), steps=0)
    summary = train(config, nfcorpus_pairs, tmp_path / "model")
    assert summary["last_step"] is None
    encoder = load_sparse_encoder(str(tmp_path / "model"))
    texts = list(nfcorpus_pairs.documents.values())[:8]
    found, base = encoder.encode_documents(texts), splade.encode_documents(texts)
    assert found.nnz > 0 and (found != base).nnz == 0
    idf = compute_idf(splade.tokenizer, list(nfcorpus_pairs.documents.values()), config.doc_max_length)
    np.testing.assert_array_equal(np.load(tmp_path / "model" / "idf.npy"), idf)


@pytest.mark.slow
def test_inference_free_model_with_distillation(tmp_path, nfcorpus_pairs, small_dataset):
    """Queries need no model call: their vectors are the IDF-weighted word-pieces the folder records."""
    from lsr.datasets import read_corpus
    from lsr.indexer import build_index
    from lsr.retrieval.search import Searcher

    teacher = tmp_path / "teacher.run"
    teacher.write_text(
        "".join(
            f"{q} Q0 {d} {rank} {10.0 - rank} teacher\n"
            for q in nfcorpus_pairs.queries
            for rank, d in enumerate(nfcorpus_pairs.positives[q][:3], 1)
        )
    )
    config = TrainingConfig(
        architecture=Architecture(query_encoder="bow", idf=True),
        steps=2,
        batch_size=4,
        doc_max_length=32,
        distillation="marginmse",
    )
    summary = train(config, nfcorpus_pairs, tmp_path / "model", teacher=read_run(teacher))
    assert "distillation" in summary["last_step"]
    encoder = load_sparse_encoder(str(tmp_path / "model"), doc_max_length=64)
    assert encoder.spec.arch == {"arch": "splade", "query_encoder": "bow", "idf": True}
    idf = np.load(tmp_path / "model" / "idf.npy")
    query = encoder.encode_queries(["vitamin supplements"])
    tokens = encoder.decode(query.indices)
    assert sorted(tokens) == sorted(["vitamin", "supplements"]) or len(tokens) <= 4
    np.testing.assert_allclose(query.data, idf[query.indices])

    build_index(read_corpus(small_dataset), encoder, tmp_path / "index", progress=False)
    hits = Searcher.open(tmp_path / "index").search("pressure distribution on a wing", 5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score > 0


def test_train_command_refuses_bad_settings_in_one_line(tmp_path):
    from conftest import shared_dataset

    result = lsr(
        "train",
        str(shared_dataset("nfcorpus")),
        "--out",
        str(tmp_path / "m"),
        "--arch",
        "uhd",
        "--uhd-dim",
        "16",
        "--uhd-k",
        "32",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: UHD k must be between 1 and the dimension 16, got 32"
    assert not (tmp_path / "m").exists()


def test_training_never_overwrites_a_folder_it_did_not_write(tmp_path, nfcorpus_pairs):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(LsrError, match="not a model folder written by `lsr train`"):
        train(TrainingConfig(steps=1, batch_size=4), nfcorpus_pairs, tmp_path / "precious", overwrite=True)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


class Interrupted(Exception):
    pass


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_model_an_uninterrupted_run_writes(tmp_path, nfcorpus_pairs):
    from safetensors.torch import load_file

    config = TrainingConfig(
        steps=4,
        batch_size=4,
        learning_rate=1e-3,
        lambda_warmup_steps=2,
        query_max_length=16,
        doc_max_length=32,
        checkpoint_every=2,
    )
    train(config, nfcorpus_pairs, tmp_path / "straight")

    def interrupt_at_step_3(entry: dict) -> None:
        if entry["step"] == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, nfcorpus_pairs, tmp_path / "resumed", on_log=interrupt_at_step_3)
    assert not (tmp_path / "resumed").exists()
    with pytest.raises(LsrError, match="pass --resume to continue it"):
        train(config, nfcorpus_pairs, tmp_path / "resumed")
    with pytest.raises(LsrError, match="started with another learning rate"):
        train(replace(config, learning_rate=1e-4), nfcorpus_pairs, tmp_path / "resumed", resume=True)
    # A checkpoint written before lsr had a setting (here the anchor) resumes with that setting's default.
    state_file = tmp_path / "resumed.partial" / "checkpoints" / "step-2" / "training_state.pt"
    state = torch.load(state_file, weights_only=False)
    del state["config"]["anchor"]
    torch.save(state, state_file)

    train(config, nfcorpus_pairs, tmp_path / "resumed", resume=True)
    log = [json.loads(line) for line in (tmp_path / "resumed" / "training_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4]
    straight, resumed = (
        load_file(tmp_path / "straight" / "model.safetensors"),
        load_file(tmp_path / "resumed" / "model.safetensors"),
    )
    assert straight.keys() == resumed.keys()
    for name, weights in straight.items():
        torch.testing.assert_close(resumed[name], weights, rtol=0, atol=1e-6, msg=name)


def test_resume_without_an_interrupted_run_is_one_line_error(tmp_path):
    from conftest import shared_dataset

    result = lsr(
        "train", str(shared_dataset("nfcorpus")), "--out", str(tmp_path / "m"), "--max-queries", "8", "--steps", "2", "--resume"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: nothing to resume: {tmp_path / 'm.partial'} does not exist (train without --resume)"


def test_head_learning_rate_is_for_uhd_only():
    with pytest.raises(LsrError, match="head learning rate needs a UHD architecture"):
        TrainingConfig(head_learning_rate=1e-3)


def test_an_anchor_needs_a_starting_model_that_has_document_terms():
    with pytest.raises(LsrError, match="a random UHD head has none worth keeping"):
        TrainingConfig(anchor=1.0, architecture=Architecture(arch="uhd", uhd=UhdSettings(dim=2048, k=8)))
    anchored_mlm_head = TrainingConfig(
        anchor=1.0, architecture=Architecture(arch="uhd", uhd=UhdSettings(dim=30522, k=8, head="mlm"))
    )
    assert anchored_mlm_head.anchor == 1.0


@pytest.mark.parametrize(
    "settings",
    [
        UhdSettings(dim=30522, k=8, layers=(-1, -2), binarized=True, head="mlm"),
        UhdSettings(dim=30522, k=8, head="mlm"),
        UhdSettings(dim=2048, k=16, layers=(-1, 1)),
    ],
    ids=["mlm-binarized-2-buckets", "mlm", "random-2-buckets"],
)
def test_uhd_screened_encoder_and_training_equal_the_models_full_forward_pass(tmp_path, settings):
    """The CPU encoder and training decode only the screen's columns (uhd._ScreenedUhd); the vectors are the full
    forward pass's (the same active dimensions, the same weights to float rounding), and so are training's
    gradients. Real nfcorpus documents, padded batch."""
    from conftest import shared_dataset
    from transformers import AutoTokenizer

    from lsr.datasets import read_corpus
    from lsr.retrieval.encoders.arch import write_architecture
    from lsr.retrieval.encoders.registry import resolve_model
    from lsr.retrieval.encoders.uhd import UhdModel

    base = resolve_model("splade-tiny").path
    model = UhdModel.from_backbone(base, settings).eval()
    with torch.no_grad():  # a trained head, not the one it starts from: the screen must hold for any weights
        for projection in model.head.projections:
            for parameter in projection.parameters():
                if parameter.dim() == 2:
                    parameter.add_(torch.randn_like(parameter) * parameter.std() * 0.05)
    model.save(tmp_path)
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path)
    write_architecture(tmp_path, Architecture(arch="uhd", uhd=settings))
    encoder = load_sparse_encoder(str(tmp_path), doc_max_length=128)
    texts = [document.contents for document in read_corpus(shared_dataset("nfcorpus")).documents[:12]]
    tokens = encoder.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        expected = model(**tokens).numpy()
    vectors = encoder.encode_documents(texts).toarray()
    assert np.array_equal(vectors != 0, expected != 0)
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    assert (expected != 0).sum(axis=1).min() > settings.k  # not an empty comparison

    # Training's screened forward pass (UhdHead(screened=True)): the same values and the same gradients.
    weights = torch.rand(expected.shape, generator=torch.Generator().manual_seed(0))
    gradients = []
    for screened in (False, True):
        model.zero_grad()
        vectors = model(**tokens, screened=screened)
        (vectors * weights).sum().backward()
        gradients.append([parameter.grad.clone() for parameter in model.parameters() if parameter.grad is not None])
        np.testing.assert_allclose(vectors.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    assert len(gradients[0]) == len(gradients[1]) > 10
    for full, screened in zip(*gradients, strict=True):
        torch.testing.assert_close(screened, full, rtol=1e-4, atol=1e-5)  # sums over tokens in another order
