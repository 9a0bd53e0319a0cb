"""The part of Stripe's search query language a reconciler needs: exact matches on a charge's fields and
metadata, joined by AND (`metadata['payment_id']:'pay_42' AND status:'succeeded'`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from simulators.payments.models import Charge

_CLAUSE = re.compile(r"""^(?:metadata\[['"]([^'"]+)['"]\]|(\w+)):(?:'([^']*)'|"([^"]*)"|(\w+))$""")
FIELDS = ("status", "customer", "currency", "amount", "description")


class QueryError(ValueError):
    """A query this simulator does not understand (Stripe's 400 `invalid_request_error` on `query`)."""


def matcher(query: str) -> Callable[[Charge], bool]:
    """A predicate for the charges `query` selects."""
    tests: list[Callable[[Charge], bool]] = []
    for clause in re.split(r"\s+AND\s+", query.strip()):
        match = _CLAUSE.match(clause)
        if match is None:
            raise QueryError(f"Unsupported search clause: {clause!r}. Use field:'value', joined by AND.")
        key, field, *values = match.groups()
        wanted = next(value for value in values if value is not None)
        if key is not None:
            tests.append(_metadata_is(key, wanted))
        elif field in FIELDS:
            tests.append(_field_is(field, wanted))
        else:
            raise QueryError(f"Charges cannot be searched by {field!r}; searchable: metadata, {', '.join(FIELDS)}.")
    return lambda charge: all(test(charge) for test in tests)


def _metadata_is(key: str, wanted: str) -> Callable[[Charge], bool]:
    return lambda charge: charge.metadata.get(key) == wanted


def _field_is(field: str, wanted: str) -> Callable[[Charge], bool]:
    return lambda charge: str(getattr(charge, field)) == wanted
