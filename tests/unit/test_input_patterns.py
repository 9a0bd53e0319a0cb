"""A pattern must mean to the validator what it says in the OpenAPI document. JSON Schema reads a pattern as an
ECMA-262 regex, where \\d is [0-9]; pydantic-core reads \\d as any script's digit. Clients and fuzzers follow the
document, so a code in fullwidth digits got past the validator that no generated case would ever try (and crashed
the comparison behind it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.src.api.auth.models import TotpCode, TotpLoginRequest
from app.src.api.common.models.base import StrictModel
from app.src.api.common.models.service import Problem
from app.src.encryption.totp import matching_step, new_secret

SHORTHANDS_THAT_DIFFER = re.compile(r"\\[dDwW]")


def models(of: type[StrictModel] = StrictModel) -> Iterator[type[StrictModel]]:
    for model in of.__subclasses__():
        if model.__module__.startswith("app."):
            yield model
        yield from models(model)


def patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from patterns(item)


@pytest.mark.requirement("NFR-5")
def test_no_pattern_uses_a_class_that_json_schema_and_the_validator_read_differently() -> None:
    checked = {model.__name__: list(patterns(model.model_json_schema())) for model in models()}
    assert {TotpCode.__name__, Problem.__name__} <= checked.keys()  # the model modules are all imported here
    assert {name: found for name, found in checked.items() if any(map(SHORTHANDS_THAT_DIFFER.search, found))} == {}


@given(code=st.text(st.characters(categories=["Nd"]), min_size=6, max_size=6).filter(lambda code: not code.isascii()))
def test_six_digits_of_any_other_script_are_refused_where_a_code_is_read(code: str) -> None:
    with pytest.raises(ValidationError):
        TotpCode(code=code, password="a password")
    with pytest.raises(ValidationError):
        TotpLoginRequest(challenge="c", code=code)
    assert matching_step(SECRET, code, 1_700_000_000) is None


SECRET = new_secret()
