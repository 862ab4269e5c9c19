"""``moss serve``: the HTTP index service over any store (needs the ``server`` extra)."""

from .app import DEFAULT_MAX_UPLOAD_BYTES, create_app, create_app_from_env

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app", "create_app_from_env"]
