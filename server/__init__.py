"""The View Tomogram service: a thin Flask app over ngstate.

``create_app(config)`` builds the app; ``server.wsgi:app`` and
``gunicorn 'server:create_app()'`` are the production entry points.
"""

from server.app import create_app

__all__ = ["create_app"]
