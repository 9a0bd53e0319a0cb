"""The sync control client (for Locust and scripts) against a real simulator."""

from __future__ import annotations

import requests

from simulators.client import SyncSimulatorClient
from tests.support.simulator_fixtures import API_KEY


def test_sync_client_adds_a_fault_for_a_block_counts_the_journal_and_resets(
    simulator_urls: dict[str, str], scope: str
) -> None:
    url = simulator_urls["notify"]
    sim = SyncSimulatorClient(url, scope=scope)
    message = {"channel": "sms", "to": "+4915112345678", "body": "hi"}
    headers = {"Authorization": f"Bearer {API_KEY}", **sim.scope_headers}
    try:
        with sim.fault(route="/v1/messages", status=503, times=1) as rule:
            assert rule["scope"] == scope
            assert requests.post(f"{url}/v1/messages", json=message, headers=headers, timeout=10).status_code == 503
        assert requests.post(f"{url}/v1/messages", json=message, headers=headers, timeout=10).status_code == 202
        assert sim.journal_count(method="POST") == 2
        sim.add_fault(route="/v1/messages", status=500)
        sim.clear_faults()
        assert requests.post(f"{url}/v1/messages", json=message, headers=headers, timeout=10).status_code == 202
        sim.reset()
        assert sim.journal_count() == 0
    finally:
        sim.reset()
        sim.close()
