"""The service as users run it: `python -m app serve` over real HTTPS, `python -m app dev` (what `make run`
starts), graceful SIGTERM, and the refusal to start a deployed profile without its secrets."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from app.database import Database
from app.dev.certificate import ensure_self_signed
from app.runtime.migrations import head_revision
from app.settings import new_token_key, parse_token_keys
from tests.support.postgres import HEAD
from tests.support.processes import ServiceProcess, clean_environment, free_port, free_port_run, tls_client_context

pytestmark = pytest.mark.integration


async def get(url: str, cert_file: Path) -> tuple[int, dict[str, str], Any]:
    connector = aiohttp.TCPConnector(ssl=tls_client_context(cert_file))
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as response:
        return response.status, dict(response.headers), await response.json()


async def test_serve_answers_over_verified_https_and_stops_cleanly_on_sigterm(
    database_uri: str, tmp_path: Path
) -> None:
    cert_file, key_file = ensure_self_signed(tmp_path / "tls")
    port = free_port()
    environment = clean_environment(
        PROFILE="test",
        DB_URI=database_uri,
        LISTEN_PORT=str(port),
        TLS_CERT_FILE=str(cert_file),
        TLS_KEY_FILE=str(key_file),
    )
    async with ServiceProcess(["serve"], environment, cwd=tmp_path) as service:
        status, headers, body = await get(f"https://localhost:{port}/api/common/health", cert_file)
        assert (status, body) == (200, {"status": "ok"})
        assert len(headers["X-Request-ID"]) == 32
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        status, _, _ = await get(f"https://127.0.0.1:{port}/api/common/ready", cert_file)
        assert status == 200
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/api/common/health"):
                pass
        assert await probe(environment) == 0  # the container's HEALTHCHECK, over TLS
        assert await service.terminate() == 0
    assert any("Application shutdown complete" in line for line in service.output)
    assert await probe(environment) == 1


async def probe(environment: dict[str, str]) -> int | None:
    """`python -m app.runtime.probe` as the image's HEALTHCHECK runs it; its exit code."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "app.runtime.probe", env=environment)
    return await asyncio.wait_for(process.wait(), timeout=30)


@pytest.mark.parametrize(
    ("signal_number", "again_at"),
    [(signal.SIGTERM, None), (signal.SIGINT, None), (signal.SIGINT, "Finished server process")],
    ids=["SIGTERM", "Ctrl-C", "Ctrl-C again during the clean-up"],
)
async def test_dev_serves_https_on_embedded_postgres_and_a_stop_signal_stops_both(
    tmp_path: Path, signal_number: int, again_at: str | None
) -> None:
    port = free_port_run(4)  # the API's, then the three simulators': all below the ephemeral range
    simulators = port + 1
    environment = clean_environment(
        LISTEN_PORT=str(port), DATA_DIR=str(tmp_path / "data"), SIMULATOR_BASE_PORT=str(simulators)
    )
    ready = f"Uvicorn running on https://127.0.0.1:{port}"
    async with ServiceProcess(["dev"], environment, cwd=tmp_path, ready_line=ready) as service:
        cert_file = tmp_path / "data" / "tls" / "localhost.crt"
        status, _, body = await get(f"https://localhost:{port}/api/common/ready", cert_file)
        assert (status, body) == (200, {"status": "ready", "schema_revision": HEAD})
        postmaster_pid_file = tmp_path / "data" / "postgres" / "postmaster.pid"
        postmaster = psutil.Process(int(postmaster_pid_file.read_text().split()[0]))
        assert postmaster.is_running()
        simulator_processes = [
            child for child in psutil.Process(service.pid).children() if "simulators" in child.cmdline()
        ]
        assert sorted(child.cmdline()[3] for child in simulator_processes) == ["catalog", "notify", "payments"]
        (worker,) = [
            child for child in psutil.Process(service.pid).children() if child.cmdline()[1:] == ["-m", "app", "worker"]
        ]
        assert worker.is_running()
        for offset in range(3):
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{simulators + offset}/__sim/clock") as response,
            ):
                assert response.status == 200

        assert await service.terminate(signal_number=signal_number, again_at=again_at) == 0, "".join(service.output)
    assert not postmaster_pid_file.exists()
    await asyncio.to_thread(postmaster.wait, 10)
    assert not postmaster.is_running()
    for child in [*simulator_processes, worker]:
        await asyncio.to_thread(child.wait, 10)
        assert not child.is_running()


@pytest.mark.parametrize("profile", ["stage", "prod"])
async def test_deployed_profile_refuses_to_start_without_its_secrets(profile: str, tmp_path: Path) -> None:
    environment = clean_environment(PROFILE=profile, DB_URI="postgresql://app:hunter2-secret@db/app")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", env=environment, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    message = stderr.decode()
    assert f"the {profile} profile needs TOKEN_KEYS, TLS_CERT_FILE, TLS_KEY_FILE" in message
    assert "hunter2-secret" not in message + stdout.decode()


async def test_serve_without_a_profile_refuses_to_start(tmp_path: Path) -> None:
    """A deployment that forgot PROFILE would otherwise run as dev: ephemeral keys, .env, an embedded database."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", env=clean_environment(), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert "PROFILE is not set" in stderr.decode()
    assert not (tmp_path / ".data").exists()  # nothing was started, not even an embedded database


def test_environment_of_the_test_run_is_not_leaked_into_children() -> None:
    os.environ["DB_URI"] = "postgresql://leak@nowhere/db"
    try:
        assert "DB_URI" not in clean_environment()
    finally:
        del os.environ["DB_URI"]


async def test_migrate_command_brings_an_empty_database_to_the_newest_revision(
    empty_database_uri: str, tmp_path: Path
) -> None:
    environment = clean_environment(PROFILE="test", DB_URI=empty_database_uri)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "migrate", env=environment, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode()
    database = Database(empty_database_uri)
    try:
        assert await database.schema_revision() == head_revision()
    finally:
        await database.dispose()


async def test_serve_without_db_uri_in_test_profile_runs_and_stops_its_embedded_postgres(tmp_path: Path) -> None:
    cert_file, key_file = ensure_self_signed(tmp_path / "tls")
    port = free_port()
    environment = clean_environment(
        PROFILE="test",
        LISTEN_PORT=str(port),
        DATA_DIR=str(tmp_path / "data"),
        TLS_CERT_FILE=str(cert_file),
        TLS_KEY_FILE=str(key_file),
    )
    async with ServiceProcess(["serve"], environment, cwd=tmp_path) as service:
        status, _, body = await get(f"https://localhost:{port}/api/common/ready", cert_file)
        assert status == 503  # `serve` does not migrate: that is `python -m app migrate`'s job
        assert body["detail"] == "The database schema is not at the migration this build needs."
        postmaster_pid_file = tmp_path / "data" / "postgres" / "postmaster.pid"
        postmaster = psutil.Process(int(postmaster_pid_file.read_text().split()[0]))
        assert await service.terminate() == 0
    await asyncio.to_thread(postmaster.wait, 10)
    assert not postmaster.is_running()


async def run_keys(action: str, **environment: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "keys", action, env=clean_environment(**environment),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, output.decode()


async def test_keys_new_mints_an_entry_the_settings_accept_and_list_never_shows_secrets() -> None:
    code, minted = await run_keys("new", PROFILE="test")
    assert code == 0
    entry = minted.strip()
    assert parse_token_keys(entry)[0][0] == entry.split(":")[0]
    code, listing = await run_keys("list", PROFILE="test", TOKEN_KEYS=f"{entry},{new_token_key()}")
    assert code == 0
    kid = entry.split(":")[0]
    assert listing.splitlines()[0] == f"{kid}\tseals and opens"
    assert listing.splitlines()[1].endswith("\topens")
    assert entry.split(":")[1] not in listing
