"""Proving Ground. `create_app()` builds the HTTP service (`uvicorn app:create_app --factory`).

It is imported on first use, not with the package: a process that serves no HTTP (a migration, the worker)
imports `app` without loading Quart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.http.factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.http.factory import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")
