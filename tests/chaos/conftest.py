"""Fixtures of the chaos tests: the shared PostgreSQL server (a fresh database per session)."""

from __future__ import annotations

from pgserver import postgres_url  # noqa: F401  (the session fixture, shared with other layers)
