"""The baseline: the least a Quart app can do to answer the same route."""

from __future__ import annotations

from quart import Quart

app = Quart(__name__)


@app.get("/api/common/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
