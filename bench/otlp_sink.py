"""`python -m bench.otlp_sink PORT`: an OTLP/HTTP endpoint that accepts trace exports and drops them, so that
`make bench` measures what tracing costs the service, not what a collector does with the spans."""

from __future__ import annotations

import sys

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    await request.read()  # the export (or the readiness probe's GET)
    return web.Response(content_type="application/x-protobuf")


def main() -> None:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", accept)
    app.router.add_get("/", accept)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
