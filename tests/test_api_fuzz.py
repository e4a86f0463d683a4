"""Fuzz the live HTTP API from its own OpenAPI schema (schemathesis): no 5xx, responses match the schema.

Driven through schemathesis's Python API with hypothesis (its pytest plugin does not support pytest 9).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from server_util import running_server

schemathesis = pytest.importorskip("schemathesis")
DATA = Path(__file__).parent / "data"


def test_api_conforms_to_its_schema_under_fuzzing():
    with running_server("--corpus", str(DATA / "small_corpus.txt")) as base:
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        operations = [r.ok() for r in schema.get_all_operations()]
        assert {op.path for op in operations} >= {
            "/api/search",
            "/api/prompts/{prompt_id}",
            "/api/facets",
            "/api/random",
            "/healthz",
            "/readyz",
        }
        for op in operations:

            @given(case=op.as_strategy())
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def check(case):
                case.call_and_validate(base_url=base)

            check()
