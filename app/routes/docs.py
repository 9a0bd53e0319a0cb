"""/docs: Swagger UI for /openapi.json, its scripts and styles served from the swagger-ui-bundle package (so it
works where no CDN can be reached, and its Content-Security-Policy allows this origin's scripts only)."""

from __future__ import annotations

from functools import cache

from quart import Blueprint, Response, abort
from quart_schema import hide
from swagger_ui_bundle import swagger_ui_path

blueprint = Blueprint("docs", __name__)
ASSETS = f"/docs/assets/{swagger_ui_path.name}"  # versioned: each release of the assets has its own URLs
_TYPES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "index.css": "text/css"}
_START = (
    'window.addEventListener("load", function () {\n'
    '  window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'
    "});\n"
)
_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Proving Ground API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="stylesheet" href="{ASSETS}/index.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/start.js"></script>
</body>
</html>
"""
_FOREVER = "public, max-age=31536000, immutable"


@blueprint.get("/docs")
@hide
async def page() -> Response:
    return Response(_PAGE, content_type="text/html; charset=utf-8")


@blueprint.get(f"{ASSETS}/<name>")
@hide
async def asset(name: str) -> Response:
    if name == "start.js":
        body, content_type = _START.encode(), "text/javascript"
    elif name in _TYPES:
        body, content_type = _read(name), _TYPES[name]
    else:
        abort(404)
    return Response(body, content_type=f"{content_type}; charset=utf-8", headers={"Cache-Control": _FOREVER})


@cache
def _read(name: str) -> bytes:
    content: bytes = (swagger_ui_path / name).read_bytes()
    return content
