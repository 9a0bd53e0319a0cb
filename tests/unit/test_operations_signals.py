"""The alert rules and the dashboard (deploy/) query only series the service exports: a metric renamed in the code
fails here, not silently on an operator's dashboard. And every alert has a `promtool test rules` case."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from app.http.metrics import HttpMetrics
from app.scheduler import JobMetrics
from app.src.api.messaging.dispatcher import OutboxMetrics
from app.src.resilience.inbound import InboundMetrics
from app.src.resilience.metrics import ProviderMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OURS = re.compile(r"(?<![:\w])((?:http|provider|outbox|job)_[a-z0-9_]+)(?![:\w])")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_series() -> set[str]:
    """Every series name the API's and the worker's registries can export."""
    registry = CollectorRegistry()
    HttpMetrics(registry)
    InboundMetrics(registry)
    ProviderMetrics(registry)
    OutboxMetrics(registry)
    JobMetrics(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def alert_expressions() -> dict[str, str]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())["groups"]
    return {rule.get("alert") or rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())
    return {
        f"{panel['title']} #{target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


@pytest.mark.requirement("NFR-6")
@pytest.mark.parametrize(
    ("where", "expressions"), [("alerts", alert_expressions()), ("dashboard", dashboard_expressions())]
)
def test_every_queried_series_is_exported(where: str, expressions: dict[str, str]) -> None:
    exported = exported_series()
    unknown = {name: sorted(set(OURS.findall(expr)) - exported) for name, expr in expressions.items()}
    assert {name: missing for name, missing in unknown.items() if missing} == {}, where


@pytest.mark.requirement("NFR-6")
def test_every_alert_has_a_rule_test_that_expects_it_to_fire() -> None:
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yaml").read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    alerts = {name for name, _ in alert_expressions().items() if not name.startswith("route:")}
    assert alerts - firing == set()


@pytest.mark.requirement("NFR-6")
def test_the_dashboard_shows_every_alerted_signal() -> None:
    on_dashboard = set().union(*(OURS.findall(expr) for expr in dashboard_expressions().values()))
    in_alerts = set().union(*(OURS.findall(expr) for expr in alert_expressions().values()))
    assert in_alerts - on_dashboard == set()
