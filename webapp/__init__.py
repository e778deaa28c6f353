"""Reverse image search: a Flask app over a Towhee embedding pipeline and Milvus."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from webapp.config import ROOT

if TYPE_CHECKING:  # Flask is imported by create_app: the query helper processes import this package too
    from flask import Flask


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create the app: settings, extensions, blueprints and error handlers. Nothing heavy runs."""
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from webapp import config as _config
    from webapp.bodies import BodyDeadline
    from webapp.runtime import EXTENSION, Runtime

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.update(_config.load(config))
    s = app.config
    if s["PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=s["PROXIES"], x_proto=s["PROXIES"])  # type: ignore[method-assign]
    app.wsgi_app = BodyDeadline(app.wsgi_app, s["BODY_IDLE_SECONDS"], s["BODY_MIN_BYTES_PER_SECOND"])  # type: ignore[method-assign]
    app.extensions[EXTENSION] = Runtime(app.config, app)
    _register_extensions(app)
    _register_blueprints(app)
    _register_errorhandlers(app)
    _register_commands(app)
    for line in _config.unknown_variables(os.environ):
        app.logger.warning(line)
    return app


def _register_extensions(app: Flask) -> None:
    from webapp import audit, auth, extensions, logs, metrics, multipart, security
    from webapp.converters import JobIdConverter, Sha256Converter

    app.url_map.converters["sha256"] = Sha256Converter
    app.url_map.converters["job_id"] = JobIdConverter
    multipart.install()
    logs.init_app(app)
    rt = app.extensions["webapp"]
    metrics.init_app(app, lambda: metrics.JobsCollector(rt.jobs.count_by_status, rt.queue_depth))
    security.init_app(app)
    auth.init_app(app)
    audit.init_app(app)
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    extensions.api.init_app(app)
    for name, scheme in auth.SECURITY_SCHEMES.items():
        extensions.api.spec.components.security_scheme(name, scheme)
    extensions.api.register_converter(Sha256Converter, Sha256Converter.openapi)
    extensions.api.register_converter(JobIdConverter, JobIdConverter.openapi)


def _register_blueprints(app: Flask) -> None:
    from webapp import extensions
    from webapp.api import blueprints, docs_assets, root_blueprints
    from webapp.pages.routes import blp as pages

    for blp in blueprints + root_blueprints:
        extensions.csrf.exempt(blp)  # the API authenticates nothing by cookie, so CSRF does not apply
        mount = "" if blp in root_blueprints else "/api/v1"
        extensions.api.register_blueprint(blp, url_prefix=mount + (blp.url_prefix or ""))
    app.register_blueprint(docs_assets)
    app.register_blueprint(pages)


def _register_errorhandlers(app: Flask) -> None:
    from webapp.handlers import register

    register(app)


def _register_commands(app: Flask) -> None:
    from webapp import cli

    cli.init_app(app)
