"""`python -m simulators <provider>`: each simulator as its own process, as `make run` starts them."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from simulators.client import SimulatorClient
from tests.support.processes import ServiceProcess, clean_environment, free_port


@pytest.mark.parametrize("provider", ["payments", "catalog", "notify"])
async def test_each_simulator_runs_as_its_own_process_with_a_seed_and_a_config_file(
    provider: str, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"journal_size": 50, "api_keys": ["sk_cli"]}))
    arguments = [provider, "--port", str(port), "--seed", "11", "--config", str(config)]
    async with ServiceProcess(arguments, clean_environment(), cwd=tmp_path, module="simulators") as process:
        async with SimulatorClient(f"http://127.0.0.1:{port}") as sim:
            assert await sim.config() == {
                **(await sim.config()),
                "seed": 11,
                "journal_size": 50,
                "api_keys": ["sk_cli"],
            }
        assert await process.terminate() == 0


async def test_an_invalid_config_file_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"journal_size": 0}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "payments", "--config", str(config), env=clean_environment(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert b"journal_size" in stderr


async def test_a_provider_call_reaches_the_process(tmp_path: Path) -> None:
    port = free_port()
    notify = ServiceProcess(["notify", "--port", str(port)], clean_environment(), cwd=tmp_path, module="simulators")
    async with notify, aiohttp.ClientSession() as http:
        message = {"channel": "sms", "to": "+4915112345678", "body": "hi"}
        headers = {"Authorization": "Bearer sk_test_proving_ground"}
        async with http.post(f"http://127.0.0.1:{port}/v1/messages", json=message, headers=headers) as response:
            assert response.status == 202
