"""Stripe's request bodies: `application/x-www-form-urlencoded` with bracket notation for nested values
(`metadata[order]=42`, `expand[0]=customer`), decoded to the dict a JSON body would have given, every leaf a string.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_FIELDS = 1000
MAX_DEPTH = 5


class FormError(ValueError):
    """A form body that does not decode to one consistent structure; `param` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def decode_form(body: str) -> dict[str, Any]:
    """`a=1&m[k]=v&l[0]=x&l[1]=y` as {"a": "1", "m": {"k": "v"}, "l": ["x", "y"]}. A map whose keys are all
    indices (`[0]`, `[1]`, or empty `[]`) becomes a list in index order."""
    root: dict[str, Any] = {}
    try:
        fields = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise FormError(f"more than {MAX_FIELDS} fields", "body") from None
    for position, (name, value) in enumerate(fields):
        match = _KEY.match(name)
        if match is None:
            raise FormError(f"{name!r} is not a parameter name", name)
        path = [match.group(1), *_PART.findall(match.group(2))]
        if len(path) > MAX_DEPTH:
            raise FormError(f"{name!r} is nested too deeply", name)
        node = root
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part or f"\0{position}", {})
            if not isinstance(child, dict):
                raise FormError(f"{name!r} gives {'.'.join(path[: depth + 1])} both a value and fields", name)
            node = child
        last = path[-1] or f"\0{position}"
        if last in node:
            raise FormError(f"{name!r} is given twice", name)
        node[last] = value
    return {name: _lists(value) for name, value in root.items()}


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    values = {key: _lists(value) for key, value in node.items()}
    if values and all(key.isdigit() or key.startswith("\0") for key in values):
        return [values[key] for key in sorted(values, key=_index)]
    return values


def _index(key: str) -> int:
    return int(key[1:]) if key.startswith("\0") else int(key)
