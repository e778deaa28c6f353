"""A library is bound to its model: another model is refused with what to do."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.conftest import INT8, MODEL, noise_images
from webapp import create_app
from webapp.errors import ModelMismatch
from webapp.models import DEFAULT, UNBOUND_DEFAULT, ModelIdentity
from webapp.runtime import EXTENSION
from webapp.services.binding import ModelBinding
from webapp.services.database import Database, collections, sqlite_url

FP32 = ModelIdentity("efficientnet-lite0", "fp32", "a" * 64, 1280)


def test_the_first_model_binds_the_collection_and_another_is_refused(tmp_path: Path) -> None:
    binding = ModelBinding(Database(sqlite_url(tmp_path / "db.sqlite")))
    assert binding.active("images") is None
    assert binding.bind("images", FP32) == "images"  # a collection of an earlier release is adopted alike
    assert binding.bind("images", FP32) == "images"
    assert binding.active("images").model == FP32
    rebuilt = ModelIdentity("efficientnet-lite0", "fp32", "b" * 64, 1280)  # same name, other file
    with pytest.raises(ModelMismatch, match=r"efficientnet-lite0 \(fp32, file aaaaaaaaaaaa\)"):
        binding.bind("images", rebuilt)
    assert binding.bind("others", ModelIdentity(INT8, "int8", "c" * 64, 1280)) == "others"  # its own model

    int8 = ModelIdentity(INT8, "int8", "d" * 64, 1280)
    building = binding.start_building("images", int8)
    assert building.startswith("images_efficientnet_lite0_int8_") and binding.start_building("images", int8) == building
    assert binding.bind("images", FP32) == "images"  # still searched until the switch
    binding.switch("images", building)
    assert binding.bind("images", int8) == building and [b.collection for b in binding.retired("images")] == ["images"]
    with pytest.raises(ModelMismatch, match="WEBAPP_MODEL=efficientnet-lite0-int8"):
        binding.bind("images", FP32)


def test_an_app_set_to_another_model_refuses_to_serve_the_library(tmp_path: Path, model_dir: Path) -> None:
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir), "SECRET_KEY": "k"}
    first = create_app({**settings, "MODEL": MODEL})
    added = first.test_client().post("/api/v1/images", data={"image": (io.BytesIO(noise_images(1)[0]), "a.jpg")})
    assert added.status_code == 201
    first.extensions[EXTENSION].close()

    second = create_app({**settings, "MODEL": INT8})
    client = second.test_client()
    for path in ("/api/v1/stats", "/api/v1/images"):
        refused = client.get(path)
        assert refused.status_code == 503, refused.json
        message = refused.json["message"]
        assert (
            "library images holds vectors of efficientnet-lite0 (fp32" in message
            and f"set to embed with {INT8} (int8" in message
        )
        assert f"flask --app wsgi reindex --model {INT8}" in message
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 503 and "holds vectors of efficientnet-lite0" in ready.json["store"]["message"]
    second.extensions[EXTENSION].close()

    again = create_app({**settings, "MODEL": MODEL})  # the right model serves it as before
    assert again.test_client().get("/api/v1/stats").json["count"] == 1
    again.extensions[EXTENSION].close()


def test_with_no_model_set_a_new_library_takes_the_default_and_a_made_one_keeps_its_model(
    tmp_path: Path, model_dir: Path
) -> None:
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir), "SECRET_KEY": "k"}
    assert DEFAULT == INT8 and UNBOUND_DEFAULT == MODEL
    new = create_app({**settings, "DATA_DIR": str(tmp_path / "new")})  # WEBAPP_MODEL unset
    assert new.test_client().get("/api/v1/stats").json["model"] == INT8
    assert "EfficientNet-Lite0 INT8 embeddings" in new.test_client().get("/").text  # the footer
    new.extensions[EXTENSION].close()

    made = create_app({**settings, "MODEL": MODEL})  # a library made with FP32
    client = made.test_client()
    assert client.post("/api/v1/images", data={"image": (io.BytesIO(noise_images(1)[0]), "a.jpg")}).status_code == 201
    made.extensions[EXTENSION].close()
    later = create_app(settings)  # unset: the library's model, not the default
    client = later.test_client()
    stats = client.get("/api/v1/stats").json
    assert stats["model"] == MODEL and stats["count"] == 1
    assert "EfficientNet-Lite0 embeddings" in client.get("/").text
    found = client.post("/api/v1/search", data={"image": (io.BytesIO(noise_images(1)[0]), "q.jpg")})
    assert found.status_code == 200 and found.json["results"][0]["score"] > 0.99, found.json
    later.extensions[EXTENSION].close()

    database = Database(sqlite_url(tmp_path / "data" / "webapp.sqlite"))
    with database.connect() as conn:  # as a release before binding left it: images, no record of the model
        conn.execute(collections.delete())
    older = create_app(settings)
    assert older.test_client().get("/api/v1/stats").json["model"] == MODEL
    older.extensions[EXTENSION].close()
