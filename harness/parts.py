"""What `make mutation` mutates, in parts that each finish in minutes, and the tests that may kill each part's
mutants (mutmut then narrows them per mutant to those that ran the mutated function)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    name: str
    modules: tuple[str, ...]  # globs of the files mutated
    tests: tuple[str, ...]  # pytest selection: the tests that run in mutmut's own process
    not_measurable: tuple[str, ...] = ()  # tests of these modules that mutmut cannot see, and why


SPAWNED = "runs `python -m app serve` in a process of its own: a mutant in mutmut's process is not the code it runs"

PARTS = (
    Part(
        "policy",
        tuple(
            f"app/src/resilience/{name}.py"
            for name in (
                "backoff",
                "breaker",
                "budget",
                "bulkhead",
                "token_bucket",
                "lifo_slots",
                "busy_limit",
                "policy",
            )
        ),
        ("tests/unit/resilience", "tests/chaos/test_inbound_backpressure.py"),
        (f"tests/chaos/test_edge_shedding.py: {SPAWNED}",),
    ),
    Part(
        "provider-client",
        ("app/src/resilience/client.py", "app/src/resilience/metrics.py"),
        (
            "tests/unit/resilience",
            "tests/chaos/test_provider_calls.py",
            "tests/chaos/test_provider_response_size.py",
        ),
    ),
    Part(
        "inbound",
        ("app/src/resilience/inbound.py", "app/src/resilience/request_bodies.py"),
        (
            "tests/unit/resilience/test_request_bodies.py",
            "tests/unit/resilience/test_client_rate_limiter.py",
            "tests/unit/resilience/test_load_shedder.py",
            "tests/chaos/test_inbound_backpressure.py",
            "tests/integration/test_errors.py",
        ),
        (f"tests/chaos/test_edge.py (slow and oversized bodies, over real sockets): {SPAWNED}",),
    ),
    Part(
        "simulators",
        (
            "simulators/engine/idempotency.py",
            "simulators/engine/ratelimit.py",
            "simulators/engine/decisions.py",
            "simulators/engine/clock.py",
            "simulators/engine/journal.py",
            "simulators/engine/rules.py",
            "simulators/engine/engine.py",
        ),
        ("tests/unit/simulators", "tests/integration/simulators"),
        ("tests/integration/simulators/test_cli.py: runs `python -m simulators` in a process of its own",),
    ),
    Part(
        "encryption",
        ("app/src/encryption/*",),
        ("tests/unit/encryption", "tests/integration/test_auth_factors.py", "tests/integration/test_auth_service.py"),
    ),
    Part(
        "auth",
        ("app/src/api/auth/service.py", "app/src/api/auth/attempts.py", "app/src/database/auth_repository.py"),
        (
            "tests/integration/test_auth.py",
            "tests/integration/test_auth_service.py",
            "tests/integration/test_auth_factors.py",
            "tests/integration/test_auth_floods.py",
            "tests/integration/test_auth_hardening.py",
            "tests/integration/test_auth_sessions.py",
            "tests/integration/test_auth_refusals.py",
        ),
        (f"tests/integration/test_operator_accounts.py: {SPAWNED}",),
    ),
    Part(
        "validation",
        ("app/http/validation.py", "app/http/problems.py", "app/src/utils/problems.py"),
        (
            "tests/unit/test_problem_answers.py",
            "tests/unit/test_json_response.py",
            "tests/integration/test_errors.py",
            "tests/integration/test_problem_details.py",
            "tests/integration/test_app_surface.py",
        ),
    ),
    Part(
        "billing",
        (
            "app/src/api/idempotency/*",
            "app/src/database/idempotency.py",
            "app/src/api/messaging/outbox.py",
            "app/src/database/outbox.py",
        ),
        (
            "tests/unit/test_idempotency_fingerprint.py",
            "tests/unit/test_outbox_admission.py",
            "tests/integration/test_idempotency_keys.py",
            "tests/integration/test_billing.py",
            "tests/integration/test_billing_invariants.py",
            "tests/integration/test_outbox_bound.py",
            "tests/integration/test_outbox_table.py",
            "tests/chaos/test_billing_faults.py",
            "tests/chaos/test_outbox_dispatch.py",
            "tests/integration/test_auth_service.py",  # the outbox's count of recent messages is the auth's limit
        ),
        (f"tests/chaos/test_billing_crashes.py: {SPAWNED}",),
    ),
)

BY_NAME = {part.name: part for part in PARTS}
