"""The HTTP store: a client of ``moss serve`` (store, request I/O, wire format)."""

from .store import HttpStore

__all__ = ["HttpStore"]
