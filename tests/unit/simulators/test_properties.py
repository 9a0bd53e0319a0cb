"""The simulators' rate limiter and idempotency store, over sequences hypothesis chooses: a bucket never lets more
through than its burst plus its rate over the time passed and its headers agree with it; the store answers each
key as Stripe does (the first request acts, a replay returns the first answer marked replayed, other parameters
400, a key in flight 409, a failed request forgets its key), keys of other scopes never meet."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from quart import Response

from simulators.engine.idempotency import REPLAYED_HEADER, IdempotencyStore
from simulators.engine.ratelimit import TokenBucket


@given(
    rate=st.floats(min_value=0.1, max_value=500),
    burst=st.integers(min_value=1, max_value=200),
    moves=st.lists(st.floats(min_value=-1, max_value=5, allow_nan=False), max_size=200),
)
def test_the_simulators_bucket_never_passes_its_burst_plus_its_rate_and_its_headers_agree(
    rate: float, burst: int, moves: list[float]
) -> None:
    bucket = TokenBucket(rate, burst, now=0.0)
    now = latest = 0.0
    passed = 0
    for move in moves:
        now += move  # the simulator's clock can be set back by its control API: a bucket never refills backwards
        latest = max(latest, now)
        passed += bucket.take(now)
        assert passed <= burst + rate * latest + 1e-6
        remaining = bucket.remaining(now)
        assert 0 <= remaining <= burst
        headers = bucket.headers(now)
        limit = re.fullmatch(r'"sim";r=(\d+);t=(\d+)', headers["RateLimit"])
        assert limit is not None
        assert int(limit.group(1)) == remaining
        assert (int(limit.group(2)) > 0) == (remaining == 0)  # a reset time only when nothing is left
        assert headers["RateLimit-Policy"].startswith(f'"sim";q={burst};w=')


@dataclass
class Key:
    fingerprint: str
    answer: tuple[int, bytes] | None = None  # the first answer, once made
    in_flight: asyncio.Future[bool] | None = None  # resolved True to succeed, False to fail
    task: asyncio.Task[Response] | None = None
    made: list[str] = field(default_factory=list)


class StoreMachine(RuleBasedStateMachine):
    """The store against a model of each key; requests in flight are real tasks held until a rule ends them."""

    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.store = IdempotencyStore()
        self.keys: dict[tuple[str, str, str], Key] = {}
        self.made = 0  # what `produce` acted: charges a real simulator would have made

    def teardown(self) -> None:
        for key in self.keys.values():
            if key.in_flight is not None and key.task is not None:
                key.in_flight.set_result(False)
                self.loop.run_until_complete(asyncio.gather(key.task, return_exceptions=True))
        self.loop.close()

    def _request(
        self, identity: tuple[str, str, str], fingerprint: str, gate: asyncio.Future[bool] | None
    ) -> asyncio.Task[Response]:
        async def produce() -> tuple[Response, str | None]:
            if gate is not None and not await gate:
                raise RuntimeError("the provider failed")
            self.made += 1
            status = 402 if self.made % 2 else 200  # a declined charge is replayed as declined
            return Response(f"charge {self.made}", status=status), f"ch_{self.made}"

        task = self.loop.create_task(self.store.run(identity, fingerprint, produce))
        self.loop.run_until_complete(asyncio.sleep(0))  # it runs until it waits on its gate (or ends)
        return task

    @rule(
        scope=st.sampled_from(["a", "b"]),
        key=st.sampled_from(["k1", "k2", "k3"]),
        fingerprint=st.sampled_from(["f1", "f2"]),
        hold=st.booleans(),
    )
    def send(self, scope: str, key: str, fingerprint: str, hold: bool) -> None:
        identity = (scope, "sk_test", key)
        known = self.keys.get(identity)
        gate = self.loop.create_future() if hold else None
        made_before = self.made
        task = self._request(identity, fingerprint, gate)
        if known is None:
            self.keys[identity] = Key(fingerprint)
            if hold:
                assert not task.done()
                assert self.made == made_before
                self.keys[identity].in_flight, self.keys[identity].task = gate, task
            else:
                response = self.loop.run_until_complete(task)
                self.keys[identity].answer = (response.status_code, self._body(response))
                assert self.made == made_before + 1
                assert REPLAYED_HEADER not in response.headers
            return
        if gate is not None:
            gate.cancel()
        response = self.loop.run_until_complete(task)
        assert self.made == made_before  # a known key never acts again
        if known.fingerprint != fingerprint:
            assert response.status_code == 400
        elif known.answer is None:
            assert response.status_code == 409
        else:
            assert (response.status_code, self._body(response)) == known.answer
            assert response.headers[REPLAYED_HEADER] == "true"

    @rule(data=st.data(), succeed=st.booleans())
    def finish(self, data: st.DataObject, succeed: bool) -> None:
        waiting = sorted(identity for identity, key in self.keys.items() if key.in_flight is not None)
        if not waiting:
            return
        identity = data.draw(st.sampled_from(waiting))
        key = self.keys[identity]
        assert key.in_flight is not None
        assert key.task is not None
        key.in_flight.set_result(succeed)
        if succeed:
            response = self.loop.run_until_complete(key.task)
            key.answer, key.in_flight = (response.status_code, self._body(response)), None
            assert self.store.result_id(identity) == f"ch_{self.made}"
        else:
            with pytest.raises(RuntimeError):
                self.loop.run_until_complete(key.task)
            del self.keys[identity]  # forgotten: the next request with the key acts
            assert self.store.result_id(identity) is None

    @rule(scope=st.sampled_from(["a", "b", None]))
    def forget(self, scope: str | None) -> None:
        if any(key.in_flight is not None for identity, key in self.keys.items() if scope in (None, identity[0])):
            return  # a scope is reset between tests, never under a request in flight
        self.store.forget_scope(scope)
        self.keys = {identity: key for identity, key in self.keys.items() if scope not in (None, identity[0])}

    @invariant()
    def one_action_per_answered_key(self) -> None:
        if hasattr(self, "keys"):
            answered = sum(1 for key in self.keys.values() if key.answer is not None)
            assert answered <= self.made

    def _body(self, response: Response) -> bytes:
        return self.loop.run_until_complete(response.get_data(as_text=False))


TestIdempotencyStore = StoreMachine.TestCase
TestIdempotencyStore.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
