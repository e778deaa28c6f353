"""The REST API under /api/v1 (flask-smorest), the bootcamp-compatible endpoints, and Swagger UI's assets."""

from flask import Blueprint as FlaskBlueprint
from swagger_ui_bundle import swagger_ui_path

from webapp.api.activity.routes import blp as activity
from webapp.api.compat.routes import blp as bootcamp
from webapp.api.duplicates.routes import blp as duplicates
from webapp.api.health.routes import blp as health
from webapp.api.images.routes import blp as images
from webapp.api.jobs.routes import blp as jobs
from webapp.api.library.routes import blp as library
from webapp.api.search.routes import blp as search
from webapp.api.stats.routes import blp as stats
from webapp.api.trash.routes import blp as trash

blueprints = [search, images, duplicates, jobs, stats, library, trash, activity, health]  # under /api/v1
root_blueprints = [bootcamp]  # at the paths their existing clients call (/img/..., /progress, /data)

docs_assets = FlaskBlueprint(
    "swagger_ui_assets",
    __name__,
    static_folder=str(swagger_ui_path),
    static_url_path="/assets",
    url_prefix="/api/docs",
)
