"""python -m app serve | worker | jobs | dev | migrate | keys | users"""

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
from app.dev.worker import worker_process
from app.runtime.migrations import upgrade
from app.settings import ProfileNotSetError, Settings, load_settings, new_token_key
from app.src.utils.logs import configure_logging, get_logger
from app.src.utils.tracing import start_tracing, stop_tracing


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

    start_tracing("api")
    try:
        run_server(create_app(settings), settings)
    finally:
        stop_tracing()


def worker(settings: Settings) -> None:
    """The scheduled jobs, until SIGTERM or Ctrl-C (then running jobs get SHUTDOWN_TIMEOUT seconds to end)."""
    from app.scheduler import run_worker

    async def until_stopped() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        await run_worker(settings, stop)

    start_tracing("worker")
    try:
        asyncio.run(until_stopped())
    finally:
        stop_tracing()


def jobs(settings: Settings, action: str, name: str | None) -> int:
    """`jobs` (or `jobs list`): the table; `jobs run NAME`: that job once, now (exit 1 unless it succeeded)."""
    from app.scheduler import job_table, registered_jobs, run_job_now

    if action == "list":
        sys.stdout.write("\n".join(asyncio.run(job_table(settings))) + "\n")
        return 0
    known = [job.name for job in registered_jobs(settings)]
    if name not in known:
        sys.stderr.write(f"no job named {name!r}; the jobs are: {', '.join(known)}\n")
        return 2
    outcome = asyncio.run(run_job_now(settings, name))
    sys.stdout.write(f"{name}\t{outcome or 'not run: it is still running elsewhere'}\n")
    return 0 if outcome == "succeeded" else 1


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
        with worker_process(settings):
            _announce_and_serve(settings)


def _announce_and_serve(settings: Settings) -> None:
    base = f"https://localhost:{settings.listen_port}"
    sys.stdout.write(
        f"\nProving Ground is starting on {base} (and its worker beside it)\n"
        f"  health     {base}/api/common/health\n"
        f"  API docs   {base}/docs\n"
        f"  metrics    {base}/metrics\n"
        f"  payments   {settings.payments_url}/__sim/journal\n"
        f"  catalog    {settings.catalog_url}/__sim/journal\n"
        f"  notify     {settings.notify_url}/__sim/inbox   (links to confirm addresses arrive here)\n"
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


def users(settings: Settings, emails: list[str], display_name: str, password: str, totp_on: bool | None = None) -> int:
    """`users create`: verified accounts with these addresses and this password (and TOTP on with a new secret, each
    printed, or off); an address already taken is brought to that state (so a load test can run it again against a
    fresh deployment or staging)."""
    from app.bootstrap import open_services
    from app.src.api.common.errors import InvalidInputError

    async def create() -> None:
        async with open_services(settings) as services:
            for email in emails:
                user_id, secret = await services.auth.put_verified_account(
                    email, display_name, password, totp_on=totp_on
                )
                second_factor = "" if totp_on is None else f"\ttotp {secret or 'off'}"
                sys.stdout.write(f"{email}\tuser {user_id}\tverified{second_factor}\n")

    try:
        asyncio.run(create())
    except InvalidInputError as refused:
        sys.stderr.write(f"refused: {refused.detail}\n")
        return 2
    return 0


COMMANDS = {"serve": serve, "worker": worker, "dev": dev, "migrate": migrate}
HELP = {
    "serve": "the API (needs PROFILE)",
    "worker": "the scheduled jobs and the outbox's dispatcher (needs PROFILE)",
    "dev": "what `make run` starts: embedded PostgreSQL, simulators, worker and API",
    "migrate": "apply the database migrations",
}


def readable_in_a_terminal(settings: Settings, command: str, stdout: TextIO) -> Settings:
    """`make run` in a terminal is read by a person: console lines unless LOG_FORMAT says otherwise."""
    if command == "dev" and "log_format" not in settings.model_fields_set and stdout.isatty():
        return settings.model_copy(update={"log_format": "console"})
    return settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Proving Ground service")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in sorted(COMMANDS):
        commands.add_parser(name, help=HELP[name])
    keys_parser = commands.add_parser("keys", help="the token key ring: `new` makes an entry, `list` shows ids")
    keys_parser.add_argument("action", choices=["new", "list"])
    jobs_parser = commands.add_parser(
        "jobs", help="`list` (the default): each job's schedule, next fire time and last run; `run NAME`: run it now"
    )
    jobs_parser.add_argument("action", nargs="?", choices=["list", "run"], default="list")
    jobs_parser.add_argument("name", nargs="?", metavar="NAME")
    users_parser = commands.add_parser("users", help="`create`: verified accounts; the password is read from stdin")
    users_parser.add_argument("action", choices=["create"])
    users_parser.add_argument("emails", nargs="+", metavar="EMAIL")
    users_parser.add_argument("--display-name", required=True)
    users_parser.add_argument(
        "--totp", action=argparse.BooleanOptionalAction, default=None,
        help="TOTP on with a new secret (printed: for load-test accounts) or off; unchanged by default",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
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
    if arguments.command == "jobs":
        return jobs(settings, arguments.action, arguments.name)
    if arguments.command == "users":
        password = sys.stdin.readline().rstrip("\n")
        return users(settings, arguments.emails, arguments.display_name, password, arguments.totp)
    try:
        COMMANDS[arguments.command](settings)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
