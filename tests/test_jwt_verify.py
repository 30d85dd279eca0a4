"""JWT verification (no Redis): algorithms, claims, and the JWKS file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt_keys import AUDIENCE, ISSUER, SigningKey, standard_claims, write_jwks

from service.jwt_verify import (
    INVALID,
    JwksError,
    JwtClaims,
    JwtPolicy,
    JwtVerifier,
    load_jwks,
)
from service.settings import Settings, SettingsError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _verifier(tmp_path: Path, *keys: SigningKey, **settings: object) -> JwtVerifier:
    jwks = write_jwks(tmp_path / "jwks.json", *keys)
    values = {"jwt_jwks_file": str(jwks), "jwt_issuers": (ISSUER,), "jwt_audience": AUDIENCE}
    verifier = JwtVerifier.of(Settings(**{**values, **settings}))  # type: ignore[arg-type]
    assert verifier is not None
    return verifier


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_asymmetric_algorithm_verifies_and_maps_claims(tmp_path: Path, alg: str) -> None:
    key = SigningKey.new(alg)
    claims = standard_claims()
    verdict = _verifier(tmp_path, key).verify(key.sign(claims))
    assert verdict == JwtClaims(
        ISSUER, claims["jti"], "alice", "web", ("read", "write"),
        claims["iat"] * 1_000_000, claims["exp"] * 1000, claims["iat"],
    )  # fmt: skip


def test_alg_none_and_hmac_with_the_public_key_are_refused(tmp_path: Path) -> None:
    key = SigningKey.new("RS256")
    verifier = _verifier(tmp_path, key)
    header = {"alg": "none", "kid": key.kid, "typ": "JWT"}
    unsigned = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(standard_claims()).encode())}."
    )
    assert verifier.verify(unsigned) is None  # an empty signature: not even JWT-shaped
    assert verifier.verify(unsigned + "AAAA") is INVALID
    # The classic confusion: HS256 keyed with the RSA public key's PEM.
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = json.dumps(standard_claims()).encode()
    # PyJWT refuses PEM as an HMAC secret: signed by hand, as an attacker would.
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'kid': key.kid}).encode())}.{_b64(payload)}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert verifier.verify(f"{signing_input}.{_b64(mac)}") is INVALID
    assert verifier.verify(key.sign()) is not INVALID


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://other.test"},
        {"aud": "https://other-api.test"},
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 600},
        {"iat": int(time.time()), "exp": int(time.time()) + 86_401},  # longer than JWT_MAX_TTL
        {"jti": None},
        {"sub": None},
        {"azp": None, "aud": None, "client_id": None},
        {"scope": 'a"b'},
    ],
)
def test_claims_that_make_a_jwt_invalid(tmp_path: Path, overrides: dict[str, object]) -> None:
    key = SigningKey.new("ES256")
    claims = {k: v for k, v in {**standard_claims(), **overrides}.items() if v is not None}
    token = jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid})
    assert _verifier(tmp_path, key).verify(token) is INVALID


def test_a_bad_signature_is_invalid_and_an_unknown_key_is_not_ours(tmp_path: Path) -> None:
    key, stranger = SigningKey.new("ES256", "k1"), SigningKey.new("ES256", "k2")
    verifier = _verifier(tmp_path, key)
    assert verifier.verify(stranger.sign()) is None  # unknown kid: maybe a registered token
    impostor = SigningKey("k1", "ES256", stranger.private)
    assert verifier.verify(impostor.sign()) is INVALID
    assert verifier.verify("tks_not.a.jwt!") is None


def test_claim_mapping_settings(tmp_path: Path) -> None:
    key = SigningKey.new("EdDSA")
    verifier = _verifier(
        tmp_path, key, jwt_user_claim="uid", jwt_app_claims=("client_id", "aud"),
        jwt_audience=None,
    )  # fmt: skip
    token = key.sign(
        {"uid": "bob", "aud": ["api-1", "api-2"], "scp": ["x", "y"]}, azp=None, scope=None
    )
    verdict = verifier.verify(token)
    assert isinstance(verdict, JwtClaims)
    assert (verdict.user_id, verdict.app_id, verdict.scopes) == ("bob", "api-1", ("x", "y"))


def test_jwks_files_that_stop_start_up(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    with pytest.raises(JwksError, match=r"TOKENSTORE_JWT_JWKS_FILE=.*cannot read"):
        load_jwks(str(path))
    path.write_text('{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}')
    with pytest.raises(JwksError, match="no symmetric keys"):
        load_jwks(str(path))
    path.write_text('{"keys": []}')
    with pytest.raises(JwksError, match="no signing key"):
        load_jwks(str(path))
    assert issubclass(JwksError, SettingsError)  # the CLI reports it as a configuration error


def test_jwt_settings_that_do_not_go_together() -> None:
    with pytest.raises(SettingsError, match="TOKENSTORE_JWT_ISSUERS"):
        Settings.from_env({"TOKENSTORE_JWT_JWKS_FILE": "/jwks.json"})
    with pytest.raises(SettingsError, match="TOKENSTORE_JWT_MAX_TTL"):
        Settings.from_env({
            "TOKENSTORE_JWT_JWKS_FILE": "/jwks.json", "TOKENSTORE_JWT_ISSUERS": ISSUER,
            "TOKENSTORE_JWT_MAX_TTL": "7200", "TOKENSTORE_MAX_TTL": "3600",
        })  # fmt: skip
    settings = Settings.from_env({"TOKENSTORE_JWT_ISSUERS": f"{ISSUER}, https://b.test"})
    assert settings.jwt_issuers == (ISSUER, "https://b.test")


def test_a_verified_jwt_is_kept_but_its_validity_window_still_applies(tmp_path: Path) -> None:
    key = SigningKey.new("ES256")
    now = time.time()
    clock = [now]
    verifier = JwtVerifier(
        JwtPolicy.of(Settings(jwt_jwks_file="/unused", jwt_issuers=(ISSUER,))),
        load_jwks(str(write_jwks(tmp_path / "jwks.json", key))),
        clock=lambda: clock[0],
    )
    token = key.sign(iat=int(now), exp=int(now) + 60, aud=None)
    first = verifier.verify(token)
    assert isinstance(first, JwtClaims)
    assert verifier.verify(token) is first  # kept: no second signature check
    clock[0] = now + 61
    assert verifier.verify(token) is INVALID  # expired since
    clock[0] = now - 5
    assert verifier.verify(token) is INVALID  # not yet issued (a clock set back)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert verifier.verify(forged) is INVALID  # another string: verified on its own


def test_leeway_admits_a_jwt_just_expired_or_not_yet_valid_by_that_much(tmp_path: Path) -> None:
    key = SigningKey.new("ES256")
    now = int(time.time())
    strict = _verifier(tmp_path, key)
    lenient = _verifier(tmp_path, key, jwt_leeway=30)
    expired = key.sign(iat=now - 120, exp=now - 10)
    early = key.sign(iat=now, nbf=now + 10, exp=now + 60)
    too_late = key.sign(iat=now - 120, exp=now - 40)
    assert strict.verify(expired) is INVALID and strict.verify(early) is INVALID
    assert isinstance(lenient.verify(expired), JwtClaims)
    assert isinstance(lenient.verify(early), JwtClaims)
    assert lenient.verify(expired) is not INVALID  # the kept verdict honours the leeway too
    assert lenient.verify(too_late) is INVALID


def test_the_policy_survives_its_public_form() -> None:
    settings = Settings(
        jwt_jwks_file="/unused", jwt_issuers=(ISSUER,), jwt_audience="api", jwt_leeway=5
    )
    policy = JwtPolicy.of(settings)
    assert JwtPolicy.from_public(policy.public()) == policy
    for broken in ({}, {**policy.public(), "issuers": [1]}, {**policy.public(), "app_claims": []}):
        with pytest.raises(ValueError):
            JwtPolicy.from_public(broken)


def test_past_its_bound_the_cache_drops_its_oldest_entry_only(tmp_path: Path) -> None:
    key = SigningKey.new("ES256")
    policy = JwtPolicy.of(Settings(jwt_jwks_file="/unused", jwt_issuers=(ISSUER,)))
    keys = load_jwks(str(write_jwks(tmp_path / "jwks.json", key)))
    verifier = JwtVerifier(policy, keys, cache_entries=2)
    first, second, third = (key.sign(aud=None) for _ in range(3))
    kept = {token: verifier.verify(token) for token in (first, second, third)}
    assert verifier.verify(third) is kept[third] and verifier.verify(second) is kept[second]
    again = verifier.verify(first)  # dropped: verified anew, a new object
    assert isinstance(again, JwtClaims) and again is not kept[first] and again == kept[first]


def test_a_header_that_is_not_a_json_object_names_no_key(tmp_path: Path) -> None:
    key = SigningKey.new("ES256")
    verifier = _verifier(tmp_path, key)
    body = key.sign().split(".", 1)[1]
    for header in (b"[1]", b"not json", b'"kid"'):
        assert verifier.verify(f"{_b64(header)}.{body}") is None
    assert verifier.verify(f"%%%.{body}") is None
