"""The service endpoints end to end over the real splade-tiny and a copy of the small Cranfield index."""

import shutil
import threading

import pytest
from fastapi.testclient import TestClient

from lsr.api.app import create_app
from lsr.api.settings import Settings
from lsr.indexer.live import LiveIndex
from lsr.retrieval.search.live import LiveSearcher

KEY = "test-key"
WRITE = {"X-API-Key": KEY}


def open_client(path, splade, **settings) -> TestClient:
    service = LiveSearcher(LiveIndex(path), splade)
    return TestClient(create_app(service, Settings(**settings)))


@pytest.fixture(scope="module")
def index_copy(tmp_path_factory, small_index):
    copy = tmp_path_factory.mktemp("service") / "index"
    shutil.copytree(small_index, copy)
    return copy


@pytest.fixture(scope="module")
def client(index_copy, splade):
    with open_client(index_copy, splade, api_key=KEY, max_body_bytes=200_000) as client:
        yield client


def test_writes_without_a_configured_key_are_disabled(small_index, splade):
    with open_client(small_index, splade) as client:
        response = client.post("/documents", json={"documents": [{"id": "a", "title": "b"}]}, headers=WRITE)
        assert response.status_code == 403 and "writes disabled" in response.json()["detail"]
        assert client.delete("/documents/1", headers=WRITE).status_code == 403


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_writes_need_the_right_key(client, headers):
    assert client.post("/documents", json={"documents": [{"id": "a", "title": "b"}]}, headers=headers).status_code == 401
    assert client.delete("/documents/1", headers=headers).status_code == 401


def test_upsert_get_search_delete(client):
    doc = {"id": "live-1", "title": "ornithopter wing", "text": "flapping wing ornithopter lift", "metadata": {"kind": "note"}}
    response = client.post("/documents", json={"documents": [doc]}, headers=WRITE)
    assert response.status_code == 200 and response.json()["upserted"] == ["live-1"]
    assert client.get("/documents/live-1").json() == doc
    hits = client.post("/search", json={"query": "ornithopter", "k": 3, "filter": {"kind": "note"}}).json()["hits"]
    assert [hit["id"] for hit in hits] == ["live-1"]
    assert client.delete("/documents/live-1", headers=WRITE).status_code == 204
    assert client.get("/documents/live-1").status_code == 404
    assert client.delete("/documents/live-1", headers=WRITE).status_code == 404
    assert "live-1" not in [h["id"] for h in client.post("/search", json={"query": "ornithopter", "k": 50}).json()["hits"]]


def test_ids_with_slashes_are_fetched_searched_and_deleted(client):
    doc = {"id": "beir/dir/doc-1", "title": "slashed ornithopter", "text": "ornithopter with slashes", "metadata": {}}
    assert client.post("/documents", json={"documents": [doc]}, headers=WRITE).json()["upserted"] == [doc["id"]]
    assert client.get("/documents/beir/dir/doc-1").json() == doc
    assert client.get("/documents/beir%2Fdir%2Fdoc-1").json() == doc  # percent-encoded slashes name it too
    assert client.get("/documents/beir/dir").status_code == 404  # a prefix is another id
    hits = client.post("/search", json={"query": "slashed ornithopter", "k": 1}).json()["hits"]
    assert [hit["id"] for hit in hits] == [doc["id"]]
    assert client.get("/explain", params={"query": "ornithopter", "id": doc["id"]}).json()["doc_id"] == doc["id"]
    assert client.delete("/documents/beir/dir/doc-1", headers=WRITE).status_code == 204
    assert client.get("/documents/beir/dir/doc-1").status_code == 404
    assert client.delete("/documents/beir/dir/doc-1", headers=WRITE).status_code == 404
    assert client.post("/documents/beir/dir", json={}, headers=WRITE).status_code == 405  # no route but GET and DELETE


def test_ids_are_stripped_as_the_corpus_reader_strips_them(client):
    doc = {"id": " \tpadded-1 \n", "title": "padded ornithopter", "text": "ornithopter with padding"}
    assert client.post("/documents", json={"documents": [doc]}, headers=WRITE).json()["upserted"] == ["padded-1"]
    assert client.get("/documents/padded-1").json()["id"] == "padded-1"
    assert client.get("/documents/%20padded-1%20").json()["id"] == "padded-1"
    assert client.get("/explain", params={"query": "ornithopter", "id": " padded-1 "}).json()["doc_id"] == "padded-1"
    again = {**doc, "id": "padded-1", "title": "padded again"}  # the same document, not a second one
    client.post("/documents", json={"documents": [again]}, headers=WRITE)
    hits = client.post("/search", json={"query": "padded ornithopter", "k": 5}).json()["hits"]
    assert [hit["id"] for hit in hits].count("padded-1") == 1 and hits[0]["title"] == "padded again"
    assert client.delete("/documents/%20padded-1", headers=WRITE).status_code == 204
    assert client.get("/documents/padded-1").status_code == 404
    for response in (
        client.post("/documents", json={"documents": [{"id": " \t ", "title": "t"}]}, headers=WRITE),
        client.get("/documents/%20%20"),
        client.delete("/documents/%20", headers=WRITE),
    ):
        assert response.status_code == 422, response.text
        assert "must not be empty or only whitespace" in response.json()["detail"][0]["msg"]


def test_pagination_matches_the_full_ranking(client):
    full = client.post("/search", json={"query": "boundary layer", "k": 20}).json()["hits"]
    page = client.post("/search", json={"query": "boundary layer", "k": 5, "offset": 10}).json()["hits"]
    assert [(h["rank"], h["id"]) for h in page] == [(h["rank"], h["id"]) for h in full[10:15]]


def test_batch_search_equals_single_searches(client):
    queries = ["shock waves", "heat transfer"]
    batch = client.post("/search/batch", json={"queries": queries, "k": 4}).json()["results"]
    for query, result in zip(queries, batch, strict=True):
        single = client.post("/search", json={"query": query, "k": 4}).json()
        assert [h["id"] for h in result["hits"]] == [h["id"] for h in single["hits"]]


def test_explain_flag_and_endpoint_agree_with_the_score(client):
    hit = client.post("/search", json={"query": "supersonic flow", "k": 1, "explain": True}).json()["hits"][0]
    assert hit["explanation"]["score"] == pytest.approx(hit["score"])
    explained = client.get("/explain", params={"query": "supersonic flow", "id": hit["id"]}).json()
    assert explained == hit["explanation"]
    assert sum(m["score"] for m in explained["matches"]) == pytest.approx(explained["score"])
    assert client.get("/explain", params={"query": "supersonic flow", "id": "nope"}).status_code == 404
    assert client.get("/explain", params={"query": "  ", "id": hit["id"]}).status_code == 422


def test_encode_decodes_terms(client):
    terms = client.post("/encode", json={"text": "wing flutter"}).json()["terms"]
    by_term = {t["term"]: t for t in terms}
    assert by_term["wing"]["in_text"] and by_term["flutter"]["in_text"]
    assert terms == sorted(terms, key=lambda t: -t["weight"])
    hit = client.post("/search", json={"query": "wing flutter", "k": 1}).json()["hits"][0]
    explained = client.get("/explain", params={"query": "wing flutter", "id": hit["id"]}).json()
    assert terms == explained["query_terms"]  # the query as searched: with the index's IDF weighting
    assert client.post("/encode", json={"text": "wing", "dense": True}).json()["dense"] is None  # sparse-only index


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("post", "/search", {"query": "wing", "offset": -1}),
        ("post", "/search", {"query": "wing", "filter": {"a": {"nested": 1}}}),
        ("post", "/search/batch", {"queries": []}),
        ("post", "/search/batch", {"queries": ["ok", " "]}),
        ("post", "/documents", {"documents": [{"id": "a"}]}),
        ("post", "/documents", {"documents": [{"id": "a\x01b", "title": "t"}]}),
        ("post", "/documents", {"documents": []}),
        ("post", "/encode", {"text": ""}),
    ],
)
def test_bad_input_is_4xx_json(client, method, path, body):
    response = getattr(client, method)(path, json=body, headers=WRITE)
    assert 400 <= response.status_code < 500 and response.json()["detail"]


def test_request_size_limit(client):
    response = client.post("/documents", json={"documents": [{"id": "big", "title": "x" * 300_000}]}, headers=WRITE)
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_health_ready_metrics(client):
    assert client.get("/ready").json() == {"ready": True}  # the context manager ran the warm-up
    health = client.get("/health").json()
    assert health["live_documents"] >= 120
    client.post("/search", json={"query": "wing"})
    metrics = client.get("/metrics").text
    assert 'lsr_http_requests_total{method="POST",route="/search",status="200"}' in metrics
    assert "lsr_http_request_duration_seconds_bucket" in metrics
    assert f"lsr_index_documents {float(health['live_documents'])}" in metrics


def test_overload_is_503_with_retry_after(small_index, splade):
    with open_client(small_index, splade, workers=1, max_queue=1, retry_after_s=2) as client:
        barrier = threading.Barrier(8)
        statuses, retry_after = [], set()

        def send() -> None:
            barrier.wait()
            response = client.post("/search/batch", json={"queries": [f"wing {i}" for i in range(32)], "k": 5})
            statuses.append(response.status_code)
            retry_after.add(response.headers.get("retry-after"))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
        assert "2" in retry_after
        assert client.get("/metrics").text.count("lsr_overloaded_rejections_total") >= 1


def test_page_is_served(client):
    response = client.get("/")
    assert response.status_code == 200 and 'id="query"' in response.text


def test_every_model_call_runs_on_the_model_thread(tmp_path, small_index, splade, monkeypatch):
    """torch is called from one thread only (``ModelThread``): searches, batches, /encode, /explain and upserts."""
    from lsr.api.work import ModelThread
    from lsr.retrieval.encoders import SpladeEncoder

    threads = []
    for name in ("encode_queries", "encode_documents"):
        real = getattr(SpladeEncoder, name)

        def recording(self, texts, *args, real=real, **kwargs):
            threads.append(threading.current_thread().name)
            return real(self, texts, *args, **kwargs)

        monkeypatch.setattr(SpladeEncoder, name, recording)
    shutil.copytree(small_index, tmp_path / "index")
    model = ModelThread()
    service = model.call(LiveSearcher, LiveIndex(tmp_path / "index"), splade)
    with TestClient(create_app(service, Settings(api_key=KEY), model)) as client:
        assert client.post("/search", json={"query": "heat transfer"}).status_code == 200
        assert client.post("/search/batch", json={"queries": ["heat", "flow"]}).status_code == 200
        assert client.post("/encode", json={"text": "boundary layer", "kind": "document"}).status_code == 200
        assert client.get("/explain", params={"query": "heat", "id": "1"}).status_code == 200
        upsert = {"documents": [{"id": "new", "title": "shock waves", "text": "a new document"}]}
        assert client.post("/documents", json=upsert, headers=WRITE).status_code == 200
    assert len(threads) >= 6 and set(threads) == {"lsr-model_0"}, threads
