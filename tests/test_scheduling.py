"""How make test spreads the suite over pytest-xdist workers (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.conftest import MilvusServerScheduling, on_milvus_server


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("tests/test_api.py::test_search[server]", True),
        ("tests/test_api.py::test_search[sqlite-server]", True),
        ("tests/test_library_api.py::test_empty[sqlite-?confirm=3-server]", True),
        ("tests/test_api.py::test_search[lite]", False),
        ("tests/test_api.py::test_search[postgresql-lite]", False),
        ("tests/test_api.py::test_observers[observer]", False),
        ("tests/test_api.py::test_the_server_answers", False),
        ("tests/test_server_mode.py::test_three_workers_share_one_server_consistently", True),
        ("tests/test_scaleout.py::test_cancel_and_resume_from_the_other_machine", True),
    ],
)
def test_a_test_of_the_milvus_server_is_told_by_its_id(nodeid: str, expected: bool) -> None:
    assert on_milvus_server(nodeid) is expected


def test_the_milvus_servers_tests_are_one_unit_of_work_and_the_rest_go_by_module() -> None:
    scope = MilvusServerScheduling._split_scope
    server_tests = ["tests/test_api.py::test_a[server]", "tests/test_scaleout.py::test_b"]
    assert {scope(None, nodeid) for nodeid in server_tests} == {"milvus-server"}  # type: ignore[arg-type]
    assert scope(None, "tests/test_api.py::test_a[lite]") == "tests/test_api.py"  # type: ignore[arg-type]
    assert scope(None, "tests/e2e/test_search.py::test_c") == "tests/e2e/test_search.py"  # type: ignore[arg-type]
