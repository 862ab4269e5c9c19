"""The PostgreSQL store: versions in one database shared by many ``moss serve`` replicas."""

from .store import SCHEMA_VERSION, PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]
