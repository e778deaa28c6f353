"""WSGI entry point: ``gunicorn wsgi:app`` (see gunicorn.conf.py) or ``flask --app wsgi``."""

from webapp import create_app

app = create_app()
