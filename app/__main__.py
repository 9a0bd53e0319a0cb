"""python -m app serve | worker | jobs | dev | migrate | keys"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from pydantic import SecretStr, ValidationError

from app.dev.certificate import ensure_self_signed
from app.dev.embedded_postgres import embedded_postgres
from app.dev.simulators import simulated_providers
from app.runtime.migrations import upgrade
from app.settings import ProfileNotSetError, Settings, load_settings, new_token_key
from app.src.utils.logs import configure_logging, get_logger


@contextmanager
def _database(settings: Settings) -> Iterator[Settings]:
    """The settings with DB_URI filled: the given one, or an embedded PostgreSQL in dev and test."""
    if settings.db_uri is not None:
        yield settings
        return
    with embedded_postgres(settings.embedded_database_dir) as uri:
        yield settings.model_copy(update={"db_uri": SecretStr(uri)})


def _migrate(settings: Settings) -> None:
    assert settings.db_uri is not None  # noqa: S101 - _database() filled it
    asyncio.run(upgrade(settings.db_uri.get_secret_value()))
    get_logger("migrate").info("database migrated to head")


def serve(settings: Settings) -> None:
    from app.http.factory import create_app  # Quart only for the commands that serve HTTP
    from app.runtime.server import run_server

    run_server(create_app(settings), settings)


def worker(settings: Settings) -> None:
    """The scheduled jobs, until SIGTERM or Ctrl-C (then running jobs get SHUTDOWN_TIMEOUT seconds to end)."""
    from app.scheduler import run_worker

    async def until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        await run_worker(settings, stop)

    asyncio.run(until_stopped())


def jobs(settings: Settings) -> None:
    from app.scheduler import job_table

    sys.stdout.write("\n".join(asyncio.run(job_table(settings))) + "\n")


def migrate(settings: Settings) -> None:
    with _database(settings) as settings_with_database:
        _migrate(settings_with_database)


def dev(settings: Settings) -> None:
    """Embedded PostgreSQL, migrations, the provider simulators, a self-signed certificate and the API on
    https://localhost:8443; stopping it stops them all."""
    if not settings.uses_tls:
        cert_file, key_file = ensure_self_signed(settings.data_dir / "tls")
        settings = settings.model_copy(update={"tls_cert_file": cert_file, "tls_key_file": key_file})
    with _database(settings) as settings, simulated_providers(settings) as settings:
        _migrate(settings)
        base = f"https://localhost:{settings.listen_port}"
        sys.stdout.write(
            f"\nProving Ground is starting on {base}\n"
            f"  health     {base}/api/common/health\n"
            f"  API docs   {base}/docs\n"
            f"  metrics    {base}/metrics\n"
            f"  payments   {settings.payments_url}/__sim/journal\n"
            f"  catalog    {settings.catalog_url}/__sim/journal\n"
            f"  notify     {settings.notify_url}/__sim/inbox\n"
            f"The certificate is self-signed: {settings.tls_cert_file}. Stop with Ctrl-C.\n\n"
        )
        sys.stdout.flush()
        serve(settings)


def keys(settings: Settings, action: str) -> None:
    """`new`: a fresh TOKEN_KEYS entry to put first; `list`: the key ids in TOKEN_KEYS (never their secrets)."""
    if action == "new":
        sys.stdout.write(new_token_key() + "\n")
        return
    ring = settings.token_key_ring() or []
    if not ring:
        sys.stdout.write("TOKEN_KEYS is not set\n")
    for position, (kid, _) in enumerate(ring):
        sys.stdout.write(f"{kid}\t{'seals and opens' if position == 0 else 'opens'}\n")


COMMANDS = {"serve": serve, "worker": worker, "jobs": jobs, "dev": dev, "migrate": migrate}


def readable_in_a_terminal(settings: Settings, command: str, stdout: TextIO) -> Settings:
    """`make run` in a terminal is read by a person: console lines unless LOG_FORMAT says otherwise."""
    if command == "dev" and "log_format" not in settings.model_fields_set and stdout.isatty():
        return settings.model_copy(update={"log_format": "console"})
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description="Proving Ground service")
    parser.add_argument(
        "command",
        choices=[*sorted(COMMANDS), "keys"],
        help="serve: the API; worker: the scheduled jobs; jobs: their schedules and last runs; dev: what `make run` "
        "starts; migrate: apply the database migrations; keys new|list: the token key ring",
    )
    parser.add_argument("action", nargs="?", choices=["new", "list"], help="with keys")
    arguments = parser.parse_args(argv)
    if (arguments.command == "keys") != (arguments.action is not None):
        parser.error("`keys` takes `new` or `list`; the other commands take nothing more")
    overrides = {"profile": "dev"} if arguments.command == "dev" else {}
    try:
        settings = load_settings(profile_required=arguments.command in {"serve", "worker"}, **overrides)
    except ValidationError as error:
        messages = "; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())
        sys.stderr.write(f"invalid settings: {messages}\n")
        return 2
    except ProfileNotSetError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    if arguments.command == "keys":
        keys(settings, arguments.action)
        return 0
    settings = readable_in_a_terminal(settings, arguments.command, sys.stdout)
    configure_logging(settings.log_level, settings.log_format)
    try:
        COMMANDS[arguments.command](settings)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
