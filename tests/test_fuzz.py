"""Schemathesis fuzzes every endpoint from the OpenAPI schema (in-process ASGI): no input may cause a 5xx."""

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lsr.api.app import create_app
from lsr.api.settings import Settings
from lsr.indexer.live import LiveIndex
from lsr.retrieval.search.live import LiveSearcher

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, small_index, splade):
    copy = tmp_path_factory.mktemp("fuzz") / "index"
    shutil.copytree(small_index, copy)
    return create_app(LiveSearcher(LiveIndex(copy), splade), Settings(api_key=KEY))


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_causes_a_server_error(case):
    response = case.call(headers={"X-API-Key": KEY})
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
