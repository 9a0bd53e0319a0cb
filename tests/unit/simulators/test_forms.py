"""Stripe's form bodies decoded as the JSON they stand for."""

from __future__ import annotations

import pytest

from simulators.engine.forms import MAX_FIELDS, FormError, decode_form


def test_brackets_make_maps_and_indices_make_lists_in_index_order() -> None:
    body = "amount=1250&metadata[order]=o%201%262&metadata[n]=&items[1][id]=b&items[0][id]=a&tags[]=x&tags[]=y"
    assert decode_form(body) == {
        "amount": "1250",
        "metadata": {"order": "o 1&2", "n": ""},
        "items": [{"id": "a"}, {"id": "b"}],
        "tags": ["x", "y"],
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ("a=1&a=2", "a"),  # given twice
        ("m=1&m[k]=2", "m[k]"),  # a value and fields
        ("m[k]=1&m=2", "m"),
        ("a[b][c][d][e][f]=1", "a[b][c][d][e][f]"),  # too deep
        ("a]=1", "a]"),
    ],
)
def test_inconsistent_forms_are_refused_naming_the_field(body: str, param: str) -> None:
    with pytest.raises(FormError) as refused:
        decode_form(body)
    assert refused.value.param == param


def test_a_form_of_too_many_fields_is_refused() -> None:
    with pytest.raises(FormError):
        decode_form("&".join(f"f{number}=1" for number in range(MAX_FIELDS + 1)))
