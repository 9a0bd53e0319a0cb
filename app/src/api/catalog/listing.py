"""A listing of the catalog: its filters and order, and the opaque cursor that carries it from page to page.

A cursor holds the catalog version the listing started on, a fingerprint of its filters and order, and the sort
key of the last item given; the next page starts after that key in that version, so a listing never skips or
repeats an item however the catalog changes while it is paged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Literal

import orjson

from app.src.api.common.errors import FieldProblem, InvalidParametersError

Sort = Literal["name", "-name", "price", "-price"]
SortKey = tuple[str, str] | tuple[int, str]  # (folded name, id) or (price, id)


@dataclass(frozen=True, slots=True)
class Listing:
    sort: Sort = "name"
    q: str | None = None  # in the name, whatever the case
    min_price: int | None = None
    max_price: int | None = None

    @property
    def by_price(self) -> bool:
        return self.sort.endswith("price")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")

    @property
    def folded_q(self) -> str | None:
        return None if self.q is None else self.q.casefold()

    def fingerprint(self) -> str:
        canonical = orjson.dumps([self.sort, self.folded_q, self.min_price, self.max_price])
        return hashlib.blake2b(canonical, digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class Cursor:
    version: int
    fingerprint: str
    after: SortKey


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps([cursor.version, cursor.fingerprint, list(cursor.after)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, listing: Listing) -> Cursor:
    """The cursor, for this listing; InvalidParametersError naming `cursor` when it is not one we gave, or was given
    for other filters or another order."""
    try:
        version, fingerprint, key = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key_type = int if listing.by_price else str
        first, item_id = key
        if not (
            type(version) is int and version >= 0 and type(fingerprint) is str
            and type(first) is key_type and type(item_id) is str
        ):  # fmt: skip
            raise ValueError
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise _cursor_problem("The cursor is not one this API gave.") from None
    if fingerprint != listing.fingerprint():
        raise _cursor_problem("The cursor belongs to a listing with other filters or another order.")
    after: SortKey = (first, item_id) if isinstance(first, int) else (str(first), item_id)
    return Cursor(version, fingerprint, after)


def _cursor_problem(detail: str) -> InvalidParametersError:
    return InvalidParametersError(detail, [FieldProblem(("cursor",), detail, "invalid-cursor")])
