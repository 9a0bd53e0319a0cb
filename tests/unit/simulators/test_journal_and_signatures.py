from __future__ import annotations

import hashlib
import hmac

from simulators.engine.journal import Journal, JournalFilter
from simulators.payments.webhooks import sign


def record(journal: Journal, path: str, scope: str | None, time: float = 0, key: str = "k") -> None:
    headers = {"idempotency-key": key}
    journal.record(time=time, method="POST", path=path, query="", headers=headers, body=b"{}", scope=scope)


def test_journal_filters_by_path_glob_scope_header_and_time() -> None:
    journal = Journal(100)
    record(journal, "/v1/charges", "a", time=1, key="k1")
    record(journal, "/v1/charges/ch_1", "a", time=2, key="k2")
    record(journal, "/v1/refunds", "b", time=3, key="k1")
    assert journal.count(JournalFilter(path="/v1/charges*")) == 2
    assert journal.count(JournalFilter(scope="a", header=("idempotency-key", "k1"))) == 1
    assert [entry.path for entry in journal.query(JournalFilter(since=2))] == ["/v1/charges/ch_1", "/v1/refunds"]


def test_journal_is_a_bounded_ring_that_keeps_the_newest() -> None:
    journal = Journal(3)
    for index in range(5):
        record(journal, f"/v1/{index}", None)
    assert [entry.path for entry in journal.query(JournalFilter())] == ["/v1/2", "/v1/3", "/v1/4"]
    assert [entry.seq for entry in journal.query(JournalFilter(), limit=1)] == [5]


def test_clearing_one_scope_keeps_the_others() -> None:
    journal = Journal(10)
    record(journal, "/a", "a")
    record(journal, "/b", "b")
    journal.clear("a")
    assert [entry.scope for entry in journal.query(JournalFilter())] == ["b"]


def test_signature_carries_one_v1_per_secret_each_verifiable() -> None:
    header = sign(b'{"id":"evt_1"}', 1_800_000_000, ["whsec_new", "whsec_old"])
    parts = [part.split("=", 1) for part in header.split(",")]
    assert parts[0] == ["t", "1800000000"]
    for (label, digest), secret in zip(parts[1:], ["whsec_new", "whsec_old"], strict=True):
        expected = hmac.new(secret.encode(), b'1800000000.{"id":"evt_1"}', hashlib.sha256).hexdigest()
        assert (label, digest) == ("v1", expected)


def test_journal_keeps_the_query_filters_by_status_and_replaces_undecodable_bytes() -> None:
    journal = Journal(10)
    for status, body in ((200, b"{}"), (503, b"\xff\xfe")):
        entry = journal.record(time=0, method="GET", path="/v1/charges", query="limit=3", headers={}, body=body,
                               scope=None)  # fmt: skip
        entry.status = status
    failed = journal.query(JournalFilter(status=503))
    assert [(entry.status, entry.query, entry.body) for entry in failed] == [(503, "limit=3", "\ufffd\ufffd")]


def test_clearing_one_scope_keeps_the_ring_bounded() -> None:
    journal = Journal(2)
    record(journal, "/a", "a")
    journal.clear("a")
    for index in range(3):
        record(journal, f"/b/{index}", "b")
    assert [entry.path for entry in journal.query(JournalFilter())] == ["/b/1", "/b/2"]
