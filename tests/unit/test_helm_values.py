"""The Helm chart's values schema (deploy/helm/proving-ground/values.schema.json) accepts the chart's own values
files and refuses what would deploy something unsafe or broken; `helm install` applies the same schema."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "proving-ground"
VALUES_FILES = [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]


def validator() -> Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def defaults() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name)
def test_the_charts_values_files_are_valid(values_file: Path) -> None:
    assert list(validator().iter_errors(yaml.safe_load(values_file.read_text()))) == []


def with_change(path: str, value: Any) -> dict[str, Any]:
    values = copy.deepcopy(defaults())
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node[key]
    node[last] = value
    return values


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("env.DB_URI", "postgresql://user:password@db/proving"),  # a secret in plain values
        ("env.TOKEN_KEYS", "k1:c2VjcmV0"),
        ("env.PROFILE", "dev"),  # dev's defaults: a key per process, an embedded database
        ("podSecurityContext.runAsNonRoot", False),
        ("api.terminationGracePeriodSeconds", 10),  # shorter than the server's drain
        ("secrets.tlsSecret", ""),
        ("api.resources.limits.memory", "lots"),
        ("worker.replicas", 0),
        ("api.podDisruptionBudget.minAvailable", "half"),
        ("image.pullPolicy", "Sometimes"),
        ("api.replicaCount", 3),  # a misspelt key is refused, not ignored
    ],
)
def test_the_schema_refuses(path: str, value: Any) -> None:
    assert list(validator().iter_errors(with_change(path, value))) != []


def test_the_chart_names_its_api_version_and_a_semantic_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert [part.isdigit() for part in chart["version"].split(".")] == [True, True, True]


@pytest.mark.parametrize("template", sorted((CHART / "templates").iterdir()), ids=lambda path: path.name)
def test_every_template_action_is_closed(template: Path) -> None:
    text = template.read_text()
    assert text.count("{{") == len(re.findall(r"\{\{.*?\}\}", text))  # each action opened closes on its line
    values_used = {part.split()[0].rstrip(")|") for part in text.split(".Values.")[1:]}
    for dotted in values_used:
        node: Any = defaults()
        for key in dotted.split("."):
            assert isinstance(node, dict)
            assert key in node, f"{template.name} reads .Values.{dotted}"
            node = node[key]
