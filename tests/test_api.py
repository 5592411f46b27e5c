import pytest
from fastapi.testclient import TestClient

from lsr.api.app import create_app
from lsr.retrieval.search import LiveSearcher


@pytest.fixture(scope="module")
def client(small_searcher):
    return TestClient(create_app(LiveSearcher.from_searcher(small_searcher)))


def test_search_returns_the_searchers_ranking(client, small_searcher):
    response = client.post("/search", json={"query": "heat transfer in hypersonic flow", "k": 5})
    assert response.status_code == 200
    body = response.json()
    expected = small_searcher.search("heat transfer in hypersonic flow", 5)
    assert [hit["id"] for hit in body["hits"]] == [hit.id for hit in expected]
    assert [hit["rank"] for hit in body["hits"]] == [1, 2, 3, 4, 5]
    assert body["hits"][0]["title"] == expected[0].title
    assert body["hits"][0]["score"] == pytest.approx(expected[0].score)
    assert body["took_ms"] > 0


def test_default_k_is_ten(client):
    assert len(client.post("/search", json={"query": "aerodynamic heating"}).json()["hits"]) == 10


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "   \t\n"},
        {"query": "wing", "k": 0},
        {"query": "wing", "k": -3},
        {"query": "wing", "k": 10**9},
        {"query": "wing", "k": "ten"},
        {"k": 5},
        {"query": 42},
        {"query": "wing", "unexpected": True},
        {"query": "x" * 5000},
    ],
)
def test_bad_bodies_are_422_with_a_reason(client, body):
    response = client.post("/search", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_non_json_body_is_422(client):
    response = client.post("/search", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_health_and_docs(client):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["index"]["doc_count"] == 120
    assert health["index"]["encoder"] == "splade-tiny"
    assert health["index"]["query_idf"] == 0.5  # what a new splade-tiny index records
    assert client.get("/docs").status_code == 200
    assert "/search" in client.get("/openapi.json").json()["paths"]


def test_concurrent_requests_all_succeed_with_consistent_results(client, small_searcher):
    from concurrent.futures import ThreadPoolExecutor

    queries = [
        f"{topic} at mach {n}" for n in range(4) for topic in ("shock waves", "heat transfer", "wing flutter", "boundary layer")
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda q: client.post("/search", json={"query": q, "k": 5}), queries))
    assert all(response.status_code == 200 for response in responses)
    for query, response in zip(queries, responses, strict=True):
        assert [hit["id"] for hit in response.json()["hits"]] == [hit.id for hit in small_searcher.search(query, 5)]
