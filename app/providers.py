"""A resilient client for every provider the settings name, started and closed with the app."""

from __future__ import annotations

from .metrics import Metrics
from .settings import Settings
from .src.resilience.client import ProviderClient

PROVIDERS = ("payments", "catalog", "notify")


def build_providers(settings: Settings, metrics: Metrics) -> dict[str, ProviderClient]:
    clients = {}
    for name in PROVIDERS:
        url = getattr(settings, f"{name}_url")
        if url is None:
            continue
        api_key = getattr(settings, f"{name}_api_key")
        clients[name] = ProviderClient(
            name,
            url,
            getattr(settings, f"{name}_policy"),
            metrics.providers,
            api_key=None if api_key is None else api_key.get_secret_value(),
        )
    return clients
