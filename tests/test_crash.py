"""Durability: kill -9 a real `lsr serve` during a stream of upserts; after a restart every acknowledged
write is there (and searchable)."""

import os
import shutil
import signal
import threading
import time

import httpx
import pytest
from conftest import free_port, start_server

API_KEY = "crash-test-key"
ENV = {**os.environ, "LSR_API_KEY": API_KEY, "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
def test_every_acknowledged_upsert_survives_kill_9(tmp_path, small_index):
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    port = free_port()
    server = start_server(index, port, ENV, timeout_s=120)
    acknowledged: list[str] = []
    stop = threading.Event()

    def write_until_killed() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=30) as client:
            for batch in range(10_000):
                if stop.is_set():
                    return
                ids = [f"crash-{batch}-{i}" for i in range(4)]
                docs = [
                    {"id": i, "title": f"durable document {i}", "text": f"written in batch {batch} before the crash"} for i in ids
                ]
                try:
                    response = client.post("/documents", json={"documents": docs})
                except httpx.TransportError:
                    return  # the server died with this batch in flight: it was never acknowledged
                assert response.status_code == 200, response.text
                acknowledged.extend(response.json()["upserted"])

    writer = threading.Thread(target=write_until_killed)
    writer.start()
    try:
        while len(acknowledged) < 40 and writer.is_alive():
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # mid-stream: the writer has a batch in flight
        server.wait()
    finally:
        stop.set()
        writer.join()
        server.kill()
    assert len(acknowledged) >= 40

    restarted = start_server(index, port, ENV, timeout_s=120)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            missing = [doc_id for doc_id in acknowledged if client.get(f"/documents/{doc_id}").status_code != 200]
            assert not missing, f"{len(missing)} acknowledged writes lost: {missing[:5]}"
            last = acknowledged[-1]
            hits = client.post("/search", json={"query": f"durable document {last}", "k": 5}).json()["hits"]
            assert last in [hit["id"] for hit in hits]
            assert client.post("/documents", json={"documents": [{"id": "x", "title": "y"}]}).status_code == 401
    finally:
        restarted.terminate()
        restarted.wait(30)
