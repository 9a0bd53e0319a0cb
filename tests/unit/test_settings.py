"""Settings: profiles, the refusal of deployed profiles without secrets, secrets kept out of repr and logs."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.__main__ import readable_in_a_terminal
from app.settings import Settings, load_settings, parse_token_keys

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")


def deployed(tmp_path: Path, **overrides: object) -> dict[str, object]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_text("cert")
    key.write_text("key")
    values: dict[str, object] = {
        "profile": "prod",
        "db_uri": SecretStr("postgresql://app:pw@db/app"),
        "token_keys": SecretStr(f"k1:{KEY}"),
        "tls_cert_file": cert,
        "tls_key_file": key,
    }
    values.update(overrides)
    return values


def test_dev_is_the_default_profile_and_needs_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROFILE", raising=False)
    settings = Settings()
    assert settings.profile == "dev"
    assert settings.db_uri is None


@pytest.mark.parametrize("profile", ["stage", "prod"])
@pytest.mark.parametrize("missing", ["db_uri", "token_keys", "tls_cert_file", "tls_key_file"])
def test_deployed_profiles_refuse_to_start_without_a_secret(profile: str, missing: str, tmp_path: Path) -> None:
    values = deployed(tmp_path, profile=profile)
    values[missing] = None
    with pytest.raises(ValidationError, match=f"the {profile} profile needs {missing.upper()}"):
        Settings(**values)  # type: ignore[arg-type]


def test_deployed_profile_refuses_tls_files_that_do_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="TLS files not found"):
        Settings(**deployed(tmp_path, tls_key_file=tmp_path / "absent.key"))  # type: ignore[arg-type]


def test_deployed_profile_starts_with_everything_given(tmp_path: Path) -> None:
    assert Settings(**deployed(tmp_path)).uses_tls  # type: ignore[arg-type]


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    settings = Settings(**deployed(tmp_path))  # type: ignore[arg-type]
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "pw@" not in text
        assert KEY not in text


def test_secrets_are_kept_out_of_validation_errors() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(token_keys=SecretStr("k1:not-a-valid-key-hunter2"))
    assert "hunter2" not in str(raised.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.setenv("LISTEN_PORT", "9443")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings()
    assert (settings.profile, settings.listen_port) == ("test", 9443)
    assert settings.cors_origins == ("https://a.example", "https://b.example")


def test_a_provider_policy_comes_from_json_and_never_retries_a_post_without_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAYMENTS_POLICY", '{"retry_methods": ["GET"], "retry_failures": ["connect"], "deadline": 4}')
    policy = load_settings(profile="test").payments_policy
    assert policy.retry_methods == frozenset({"GET"})
    assert policy.retry_failures == frozenset({"connect"})
    assert policy.deadline == 4
    monkeypatch.setenv("PAYMENTS_POLICY", '{"retry_methods": ["GET", "POST"]}')
    with pytest.raises(ValidationError, match="retry_methods cannot hold POST"):
        load_settings(profile="test")
    monkeypatch.setenv("PAYMENTS_POLICY", '{"retry_failures": ["connect", "eventually"]}')
    with pytest.raises(ValidationError, match="retry_failures"):
        load_settings(profile="test")


def test_dot_env_is_read_in_dev_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("LISTEN_PORT=7777\n")
    monkeypatch.delenv("LISTEN_PORT", raising=False)
    monkeypatch.setenv("PROFILE", "dev")
    assert load_settings().listen_port == 7777
    monkeypatch.setenv("PROFILE", "test")
    assert load_settings().listen_port == 8443


def test_secrets_can_come_from_mounted_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "db_uri").write_text("postgresql://app:from-file@db/app")
    monkeypatch.setenv("SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.delenv("DB_URI", raising=False)
    settings = load_settings()
    assert settings.db_uri is not None
    assert settings.db_uri.get_secret_value() == "postgresql://app:from-file@db/app"


@pytest.mark.parametrize("origins", ["*", r"re:https://.*\.example\.org"])
def test_cors_allow_list_must_be_explicit_and_anchored(origins: str) -> None:
    with pytest.raises(ValidationError, match=r"CORS_ORIGINS|must end in"):
        Settings(cors_origins=origins)  # type: ignore[arg-type]


def test_token_key_ring_keeps_order_and_decodes_keys() -> None:
    other = base64.urlsafe_b64encode(bytes(32)).decode()
    assert parse_token_keys(f"new:{KEY},old:{other}") == [("new", bytes(range(32))), ("old", bytes(32))]


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("", "lists no key"),
        (f"bad kid:{KEY}", "each entry is"),
        ("k1:%%%", "not base64url"),
        ("k1:" + base64.urlsafe_b64encode(bytes(16)).decode(), "must be 32 bytes"),
        (f"k1:{KEY},k1:{KEY}", "listed twice"),
    ],
)
def test_malformed_token_key_ring_is_refused(raw: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_token_keys(raw)


@pytest.mark.parametrize("off", ["off", "none", "null", ""])
def test_the_per_client_rate_limit_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, off: str) -> None:
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.setenv("CLIENT_RATE", off)
    assert load_settings().client_rate is None
    monkeypatch.setenv("CLIENT_RATE", "12.5")
    assert load_settings().client_rate == 12.5


def test_password_hashing_defaults_to_the_cpus_the_process_may_use_not_the_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PASSWORD_HASH_CONCURRENCY", raising=False)
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})  # this thread only, as taskset or a cpuset would pin the process
    try:
        assert Settings(profile="test").password_hash_concurrency == 1
    finally:
        os.sched_setaffinity(0, allowed)


@pytest.mark.parametrize(
    ("command", "terminal", "log_format_set", "expected"),
    [
        ("dev", True, False, "console"),
        ("dev", False, False, "json"),
        ("dev", True, True, "json"),
        ("serve", True, False, "json"),
    ],
    ids=["make run in a terminal", "make run piped", "LOG_FORMAT=json", "serve"],
)
def test_make_run_in_a_terminal_logs_for_people(
    monkeypatch: pytest.MonkeyPatch, command: str, terminal: bool, log_format_set: bool, expected: str
) -> None:
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    if log_format_set:
        monkeypatch.setenv("LOG_FORMAT", "json")
    primary, secondary = os.openpty()
    try:
        with os.fdopen(os.dup(secondary), "w") if terminal else io.StringIO() as stdout:
            settings = readable_in_a_terminal(load_settings(profile="dev"), command, stdout)
    finally:
        os.close(primary)
        os.close(secondary)
    assert settings.log_format == expected


def test_the_concurrency_limit_shrinks_to_an_eighth_of_its_ceiling_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.setenv("INBOUND_CONCURRENCY", "16")
    assert load_settings().inbound_concurrency_floor == 2
    monkeypatch.setenv("INBOUND_CONCURRENCY", "7")
    assert load_settings().inbound_concurrency_floor == 1
    monkeypatch.setenv("INBOUND_MIN_CONCURRENCY", "3")
    assert load_settings().inbound_concurrency_floor == 3


def test_a_concurrency_floor_over_its_ceiling_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.setenv("INBOUND_CONCURRENCY", "8")
    monkeypatch.setenv("INBOUND_MIN_CONCURRENCY", "9")
    with pytest.raises(ValidationError, match=r"INBOUND_MIN_CONCURRENCY \(9\) must not exceed INBOUND_CONCURRENCY"):
        load_settings()


@pytest.mark.parametrize("off", ["off", ""])
def test_the_limit_stays_fixed_when_the_busy_target_is_off(monkeypatch: pytest.MonkeyPatch, off: str) -> None:
    monkeypatch.setenv("PROFILE", "test")
    monkeypatch.setenv("INBOUND_BUSY_TARGET", off)
    assert load_settings().inbound_busy_target is None
    monkeypatch.delenv("INBOUND_BUSY_TARGET")
    assert load_settings().inbound_busy_target == 0.95
