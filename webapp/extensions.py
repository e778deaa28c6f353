"""Unbound extension objects; ``create_app`` binds them. State lives in ``app.extensions``."""

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

api = Api()
csrf = CSRFProtect()
# Per-client limits for the expensive endpoints, in this process's memory (RATE_LIMIT; off by default).
limiter = Limiter(key_func=get_remote_address, storage_uri="memory://", headers_enabled=True)
rate_limited = limiter.shared_limit(
    lambda: current_app.config["RATE_LIMIT"], scope="uploads-and-searches", methods=["POST"]
)
