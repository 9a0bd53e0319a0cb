"""Sealed tokens: each way a token can be wrong is refused."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.src.encryption.tokens import InvalidTokenError, TokenKeyRing

NEW, OLD = ("k2", bytes(range(32))), ("k1", bytes(range(1, 33)))
PAYLOAD = {"sid": "s-1", "uid": 7, "iat": 1_800_000_000, "exp": 1_800_000_900}


def test_a_sealed_token_opens_to_its_payload_with_the_version_and_key_id_in_front() -> None:
    ring = TokenKeyRing([NEW, OLD])
    token = ring.seal("access", PAYLOAD)
    assert token.startswith("v1.k2.")
    assert ring.open("access", token) == PAYLOAD


def test_two_seals_of_the_same_payload_differ() -> None:
    ring = TokenKeyRing([NEW])
    assert ring.seal("access", PAYLOAD) != ring.seal("access", PAYLOAD)


def test_a_tampered_token_is_refused() -> None:
    ring = TokenKeyRing([NEW])
    token = ring.seal("access", PAYLOAD)
    body = bytearray(base64.urlsafe_b64decode(token.split(".")[2] + "=="))
    body[-1] ^= 1
    tampered = "v1.k2." + base64.urlsafe_b64encode(bytes(body)).decode().rstrip("=")
    with pytest.raises(InvalidTokenError):
        ring.open("access", tampered)


def test_a_token_for_another_purpose_is_refused() -> None:
    ring = TokenKeyRing([NEW])
    with pytest.raises(InvalidTokenError):
        ring.open("access", ring.seal("totp-secret", PAYLOAD))


def test_a_token_whose_key_id_is_swapped_is_refused() -> None:
    ring = TokenKeyRing([NEW, OLD])
    token = ring.seal("access", PAYLOAD)
    with pytest.raises(InvalidTokenError):
        ring.open("access", token.replace("v1.k2.", "v1.k1.", 1))


def test_a_token_from_an_older_key_still_listed_opens() -> None:
    before_rotation = TokenKeyRing([OLD])
    after_rotation = TokenKeyRing([NEW, OLD])
    assert after_rotation.open("access", before_rotation.seal("access", PAYLOAD)) == PAYLOAD
    assert after_rotation.seal("access", PAYLOAD).startswith("v1.k2.")


def test_a_token_from_a_removed_key_is_refused() -> None:
    token = TokenKeyRing([OLD]).seal("access", PAYLOAD)
    with pytest.raises(InvalidTokenError):
        TokenKeyRing([NEW]).open("access", token)


@pytest.mark.parametrize("garbage", ["", "v1", "v1.k2.", "v2.k2.AAAA", "v1.k2.%%%", "v1.k2.AAAA", "v1.k2." + "A" * 64])
def test_garbage_is_refused_as_an_invalid_token(garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        TokenKeyRing([NEW]).open("access", garbage)


def test_a_ring_without_keys_is_refused_with_words_that_say_so() -> None:
    with pytest.raises(ValueError, match=r"^a key ring needs at least one key$"):
        TokenKeyRing([])


@pytest.mark.parametrize("size", range(0, 6))
def test_a_token_carries_no_base64_padding_whatever_its_length(size: int) -> None:
    ring = TokenKeyRing([NEW])
    token = ring.seal("access", {"p": "x" * size})  # each length mod 3 of the sealed bytes, padded or not
    assert "=" not in token
    assert ring.open("access", token) == {"p": "x" * size}


@pytest.mark.parametrize(
    "change",
    [
        lambda token: "v2" + token[2:],  # another version
        lambda token: token.replace(".k2.", ".k9.", 1),  # a key this ring does not hold
        lambda token: token.rsplit(".", 1)[0] + ".",  # nothing sealed
    ],
)
def test_a_token_not_of_this_service_says_so(change: Any) -> None:
    ring = TokenKeyRing([NEW])
    with pytest.raises(InvalidTokenError, match=r"^not a token of this service$"):
        ring.open("access", change(ring.seal("access", PAYLOAD)))


@pytest.mark.parametrize(
    "change",
    [
        lambda token: token[:-3] + "!!!!" + token[-3:],  # characters outside base64url: refused, not skipped over
        lambda token: token + ".more",  # a dot in the sealed part
        lambda token: token[:-2],  # cut short
    ],
)
def test_a_token_of_this_service_that_does_not_open_says_so(change: Any) -> None:
    ring = TokenKeyRing([NEW])
    with pytest.raises(InvalidTokenError, match=r"^the token does not open$"):
        ring.open("access", change(ring.seal("access", PAYLOAD)))


def test_a_sealed_payload_that_is_not_an_object_does_not_open() -> None:
    ring = TokenKeyRing([NEW])
    with pytest.raises(InvalidTokenError, match=r"^the token does not open$"):
        ring.open("access", ring.seal("access", [1, 2]))  # type: ignore[arg-type]
