"""Schemathesis against our own OpenAPI document: no 5xx, and every answer as documented."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.schemas import OpenApiSchema

from webapp import create_app
from webapp.runtime import EXTENSION

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Flask]:
    data = tmp_path_factory.mktemp("fuzz")
    # A reindex the fuzz starts switches at once: its wait for other processes to follow is short.
    settings = {"DATA_DIR": str(data), "MODEL_DIR": str(model_dir), "SECRET_KEY": "fuzz", "LIBRARY_FOLLOW_SECONDS": 0.5}
    app = create_app(settings)
    yield app
    app.extensions[EXTENSION].close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: Flask) -> OpenApiSchema:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)


def test_api_conforms_to_its_documentation(api_schema: OpenApiSchema) -> None:
    """Fuzz every documented operation (a bounded number of examples each); report all failures."""
    failures = []
    calls: Counter[str] = Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call_and_validate(checks=CHECKS)
            calls[f"{case.operation.label} {response.status_code}"] += 1

        try:
            run()
        except Exception as exc:  # collect, so one failing operation does not hide the others
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    print("\n".join(f"{n:4d}  {label}" for label, n in sorted(calls.items())))
    operations = {label.rsplit(" ", 1)[0] for label in calls}
    assert len(operations) >= 14 and sum(calls.values()) >= 14 * 10, calls
