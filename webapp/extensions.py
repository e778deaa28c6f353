"""Unbound extension objects; ``create_app`` binds them. State lives in ``app.extensions``."""

from flask_smorest import Api
from flask_wtf.csrf import CSRFProtect

api = Api()
csrf = CSRFProtect()
