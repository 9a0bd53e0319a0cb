"""Argon2id hashes off the event loop, and TOTP steps."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from app.src.encryption.opaque import digest, new_recovery_codes, new_refresh_token
from app.src.encryption.passwords import Argon2Parameters, PasswordHasher, hash_password, verify_password
from app.src.encryption.totp import STEP_SECONDS, code_at, matching_step, new_secret, provisioning_uri

FAST = Argon2Parameters(memory_kib=1024, iterations=1, lanes=1)  # the real cost is for production, not for tests


def test_hash_is_an_argon2id_phc_string_with_the_owasp_parameters() -> None:
    encoded = hash_password("correct horse battery staple", Argon2Parameters())
    assert re.fullmatch(r"\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}", encoded)
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapl", encoded)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same", FAST) != hash_password("same", FAST)


async def test_verifying_against_no_hash_does_the_work_and_says_no() -> None:
    hasher = PasswordHasher(max_concurrent=2, parameters=FAST)
    encoded = await hasher.hash("s3cret-enough")
    assert await hasher.verify("s3cret-enough", encoded)
    assert not await hasher.verify("s3cret-enough", None)
    assert not hasher.needs_rehash(encoded)
    assert PasswordHasher(max_concurrent=1).needs_rehash(encoded)


async def test_hashing_runs_off_the_event_loop() -> None:
    hasher = PasswordHasher(max_concurrent=2)  # the real parameters: tens of milliseconds each
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await asyncio.gather(*(hasher.hash(f"password-{n}") for n in range(6)))
    ticker.cancel()
    assert ticks >= 10  # the loop kept turning while six hashes were computed


def test_a_code_matches_within_one_step_either_side_and_reports_its_step() -> None:
    secret = new_secret()
    now = 1_800_000_000.0
    step = int(now // STEP_SECONDS)
    for offset in (-1, 0, 1):
        assert matching_step(secret, code_at(secret, step + offset), now) == step + offset


def test_a_code_two_steps_away_either_side_is_refused() -> None:
    secret = new_secret()
    now = 1_800_000_000.0
    step = int(now // STEP_SECONDS)
    assert matching_step(secret, code_at(secret, step - 2), now) is None
    assert matching_step(secret, code_at(secret, step + 2), now) is None


def test_a_right_code_in_another_scripts_digits_is_refused_not_an_error() -> None:
    secret = new_secret()
    now = 1_800_000_000.0
    code = code_at(secret, int(now // STEP_SECONDS))
    arabic_indic = code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert matching_step(secret, arabic_indic, now) is None


def test_the_provisioning_uri_names_the_account_and_the_issuer() -> None:
    uri = provisioning_uri("JBSWY3DPEHPK3PXPJBSWY3DP", "ada@example.org", "Proving Ground")
    assert (
        uri
        == "otpauth://totp/Proving%20Ground:ada%40example.org?secret=JBSWY3DPEHPK3PXPJBSWY3DP&issuer=Proving%20Ground"
    )


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_codes_that_are_not_six_digits_never_match(code: str) -> None:
    assert matching_step(new_secret(), code, 1_800_000_000.0) is None


def test_refresh_tokens_carry_256_bits_and_are_kept_only_as_digests() -> None:
    token = new_refresh_token()
    assert len(token) == 43
    assert digest(token) == digest(token)
    assert digest(token) != digest(new_refresh_token())
    assert len(digest(token)) == 32


def test_recovery_codes_are_ten_distinct_readable_codes() -> None:
    codes = new_recovery_codes()
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[2-9a-z]{4}-[2-9a-z]{4}-[2-9a-z]{4}", code) for code in codes)


def test_a_hash_made_with_other_parameters_verifies_with_its_own() -> None:
    four_lanes = Argon2Parameters(memory_kib=1024, iterations=1, lanes=4)
    encoded = hash_password("s3cret-enough", four_lanes)
    assert "$m=1024,t=1,p=4$" in encoded
    assert verify_password("s3cret-enough", encoded)  # read back with p=4, not the default of 1


@pytest.mark.parametrize(
    "change",
    [
        lambda encoded: encoded.replace("$argon2id$", "$argon2i$"),  # another Argon2, same version
        lambda encoded: encoded.replace("$v=19$", "$v=16$"),
        lambda encoded: encoded.replace(",p=1$", "$"),
        lambda encoded: encoded[:-3] + "!!!!" + encoded[-3:],  # characters outside base64: refused, not skipped over
    ],
)
def test_a_string_that_is_not_an_argon2id_phc_string_is_refused_with_words_that_say_so(change: Any) -> None:
    encoded = change(hash_password("s3cret-enough", FAST))
    with pytest.raises(ValueError, match=r"^not an Argon2id PHC string$"):
        verify_password("s3cret-enough", encoded)
