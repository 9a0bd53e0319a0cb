"""Each kind of domain error has one HTTP answer (app/http/problems.py), chosen by kind and never by chance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.http.problems import ANSWERS, answer_for, json_pointer
from app.src.api.common.errors import (
    DomainError,
    IdempotencyKeyInUseError,
    LockedError,
    NotReadyError,
    UnavailableError,
)


def kinds(of: type[DomainError] = DomainError) -> Iterator[type[DomainError]]:
    """Every kind the service defines (not the ones a test makes up)."""
    for kind in of.__subclasses__():
        if kind.__module__.startswith("app."):
            yield kind
        yield from kinds(kind)


def test_every_kind_of_domain_error_has_its_own_answer() -> None:
    assert set(kinds()) == set(ANSWERS)
    assert {kind: answer_for(kind).status for kind in kinds()} == {kind: ANSWERS[kind].status for kind in kinds()}


def test_a_kind_is_answered_as_its_nearest_mapped_base() -> None:
    class ProviderTimedOutError(UnavailableError):
        """A refinement a service might add: answered as the kind it refines until it gets a row of its own."""

    assert answer_for(ProviderTimedOutError) is ANSWERS[UnavailableError]
    assert answer_for(NotReadyError).title == "Not ready"


def test_only_answers_that_may_change_on_a_later_try_are_transient() -> None:
    transient = {LockedError, UnavailableError, NotReadyError, IdempotencyKeyInUseError}
    assert {kind for kind in kinds() if kind.transient} == transient


def test_field_locations_become_rfc_6901_pointers() -> None:
    assert json_pointer(("items", 3, "a/b~c")) == "/items/3/a~1b~0c"
    assert json_pointer(()) == ""
    assert json_pointer(("a\x00b", "\ud8a2x", "\x85")) == "/a\ufffdb/\ufffdx/\ufffd"


def test_a_kind_with_no_answer_is_a_programming_error_that_names_itself() -> None:
    class UnansweredError(Exception):
        """A kind nobody mapped."""

    with pytest.raises(LookupError, match="no HTTP answer for UnansweredError: add it to ANSWERS"):
        answer_for(UnansweredError)  # type: ignore[arg-type]
