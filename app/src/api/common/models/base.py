from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def _storable(value: Any) -> Any:
    """Text must survive PostgreSQL: no NUL characters, and valid UTF-8 (no lone surrogates from JSON escapes)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    return value


NUL_FREE = "^[^\\x00]*$"


def _document_nul_free(schema: Any) -> None:
    """Say in the JSON Schema what `_storable` enforces, wherever a string has no pattern of its own."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
        schema["pattern"] = NUL_FREE
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            _document_nul_free(option)
    for key in ("items", "additionalProperties"):
        _document_nul_free(schema.get(key))
    for value in schema.get("properties", {}).values():
        _document_nul_free(value)


def _json_schema_extra(schema: dict[str, Any]) -> None:
    _document_nul_free(schema)


class StrictModel(BaseModel):
    """Inputs and outputs: no silent coercion of wrong types, no unknown fields, immutable, storable text."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, json_schema_extra=_json_schema_extra)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: Any) -> Any:
        return _storable(value)
