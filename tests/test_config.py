"""The factory and its configuration."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from webapp import create_app
from webapp.config import ROOT, load, machine_key_warning, unknown_variables


def test_defaults_work_with_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEBAPP_DATA_DIR", str(tmp_path))
    app = create_app()
    assert app.config["MILVUS_URI"] == str(tmp_path / "milvus.db")
    assert app.config["MODEL_DIR"] == str(tmp_path / "models")
    assert app.config["MAX_CONTENT_LENGTH"] == 32 * 1024 * 1024
    assert app.template_folder == str(ROOT / "templates")


def test_relative_data_dir_is_under_the_project() -> None:
    app = create_app({"DATA_DIR": "var", "SECRET_KEY": "x"})
    assert app.config["DATA_DIR"] == str(ROOT / "var")


def test_environment_overrides_defaults_and_test_config_overrides_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WEBAPP_COLLECTION", "from_env")
    monkeypatch.setenv("WEBAPP_THUMBNAIL_SIZE", "128")
    monkeypatch.setenv("WEBAPP_MILVUS_URI", "http://milvus.internal:19530")
    app = create_app({"DATA_DIR": str(tmp_path), "THUMBNAIL_SIZE": 64})
    assert app.config["COLLECTION"] == "from_env"
    assert app.config["THUMBNAIL_SIZE"] == 64  # the mapping wins over the environment
    assert app.config["MILVUS_URI"] == "http://milvus.internal:19530"


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = create_app({"DATA_DIR": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"DATA_DIR": str(tmp_path)}).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="WEBAPP_SECRET_KEY must be set"):
        create_app({"DATA_DIR": str(tmp_path), "ENV": "production"})
    assert create_app({"DATA_DIR": str(tmp_path), "ENV": "production", "SECRET_KEY": "s"})


def test_creating_the_app_loads_nothing(tmp_path: Path) -> None:
    app = create_app({"DATA_DIR": str(tmp_path / "d"), "SECRET_KEY": "x"})
    assert not (tmp_path / "d" / "milvus.db").exists()
    assert not app.extensions["webapp"].built("library")


def test_creating_the_app_imports_neither_the_model_nor_milvus_libraries(tmp_path: Path) -> None:
    # They load where the model and the store are built: a command such as `users create` starts
    # without them (0.7 s instead of 1.8 for `import wsgi` here).
    heavy = {"pymilvus", "milvus_lite", "towhee", "onnxruntime", "grpc"}
    code = (
        "import sys; from webapp import create_app; "
        f"create_app({{'DATA_DIR': {str(tmp_path)!r}, 'SECRET_KEY': 'x'}}); "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_missing_model_is_explained_not_a_traceback(tmp_path: Path) -> None:
    app = create_app({"DATA_DIR": str(tmp_path), "MODEL_DIR": str(tmp_path / "none"), "SECRET_KEY": "x"})
    client = app.test_client()
    response = client.get("/api/v1/stats")
    assert response.status_code == 503
    assert "make model" in response.json["message"]
    page = client.get("/")
    assert page.status_code == 503
    assert "make model" in page.get_data(as_text=True)


def test_a_variable_that_names_no_setting_is_logged_with_the_nearest_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WEBAPP_DATABASE_URI", "postgresql+psycopg://pg/webapp")  # for DATABASE_URL
    monkeypatch.setenv("WEBAPP_QUUX", "1")
    monkeypatch.setenv("WEBAPP_API_SPEC_OPTIONS__info__title", "Ours")  # a key of a setting
    monkeypatch.setenv("WEBAPP_WORKERS", "2")  # Gunicorn's, in gunicorn.conf.py
    with caplog.at_level(logging.WARNING):
        create_app({"DATA_DIR": str(tmp_path)})
    assert [r.getMessage() for r in caplog.records if "is not a setting" in r.getMessage()] == [
        "WEBAPP_DATABASE_URI is not a setting, so it changes nothing; did you mean WEBAPP_DATABASE_URL?",
        "WEBAPP_QUUX is not a setting, so it changes nothing (README, Configuration)",
    ]


def test_every_setting_the_readme_names_is_known() -> None:
    readme = (ROOT / "README.md").read_text()
    names = set(re.findall(r"WEBAPP_([A-Z][A-Z0-9_]*[A-Z0-9])", readme)) - {"X", "DATABASE_URI"}  # examples
    assert len(names) > 50
    assert unknown_variables({f"WEBAPP_{name}": "" for name in names}) == []


def test_a_web_machine_sharing_a_database_with_a_key_of_its_own_is_warned(tmp_path: Path) -> None:
    shared = "postgresql+psycopg://webapp@pg/webapp"
    own_key = load({"DATA_DIR": str(tmp_path), "DATABASE_URL": shared})
    warning = machine_key_warning(own_key)
    assert warning is not None and f"{tmp_path}/secret_key" in warning and "WEBAPP_SECRET_KEY" in warning
    assert machine_key_warning(load({"DATA_DIR": str(tmp_path), "DATABASE_URL": shared, "SECRET_KEY": "k"})) is None
    assert machine_key_warning(load({"DATA_DIR": str(tmp_path)})) is None  # SQLite: one machine
