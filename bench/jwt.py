"""Issue 13: ``GET /v1/authz`` with a JWT vs with one of our own tokens, same run; and the
deny-list's memory per revoked jti.

``python -m bench.jwt [--rounds 3] [--duration 8]``

One redis-server, one ``tokenstore serve`` with a JWKS of three keys (RS256, ES256, EdDSA);
1,000 of our tokens issued through the API and 1,000 JWTs of each algorithm signed here;
then the same wrk load (``-t1 -c50``, ``bench/wrk/authz.lua``) on each kind in turn, the order
rotating each round. Target: a JWT >= 0.8x our own token. Then N jtis are denied through
``POST /v1/jwt/revoke`` and ``MEMORY USAGE`` of a deny key and the ``used_memory`` growth
per jti are reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from bench.harness import (
    Credentials,
    HttpProcess,
    admin_client,
    banner,
    info,
    machine,
    median,
    redis_server,
    say,
    service_process,
    spread,
    write_clients_file,
)
from service.jwt_verify import JwtClaims, JwtVerifier
from service.settings import Settings

ISSUER = "https://bench-issuer.test"
WRK_SCRIPT = Path(__file__).with_name("wrk") / "authz.lua"
TARGET = 0.8


def signing_keys() -> dict[str, Any]:
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


def jwks_of(keys: dict[str, Any]) -> dict[str, Any]:
    exporters: dict[str, Any] = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
    return {
        "keys": [
            {**exporters[alg].to_jwk(key.public_key(), as_dict=True), "kid": alg, "alg": alg}
            for alg, key in keys.items()
        ]
    }


def _jwts(alg: str, key: Any, count: int) -> list[str]:
    now = int(time.time())
    return [
        jwt.encode(claims(f"user-{i}", now), key, algorithm=alg, headers={"kid": alg})
        for i in range(count)
    ]


def claims(user_id: str, now: int) -> dict[str, Any]:
    return {
        "iss": ISSUER, "sub": user_id, "azp": "bench", "scope": "read",
        "jti": uuid.uuid4().hex, "iat": now, "exp": now + 3600,
    }  # fmt: skip


def _post(url: str, path: str, body: dict[str, Any], credentials: Credentials) -> Any:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": credentials.authorization},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _issue(url: str, user_id: str, credentials: Credentials) -> str:
    body = {"user_id": user_id, "app_id": "bench", "scopes": ["read"]}
    token: str = _post(url, "/v1/tokens", body, credentials)["token"]
    return token


def _authz_status(url: str, token: str) -> int:
    request = urllib.request.Request(
        url + "/v1/authz", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _wrk(url: str, tokens_file: Path, seconds: int, connections: int) -> float:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
    argv += ["-s", str(WRK_SCRIPT), url + "/v1/authz", "--", str(tokens_file)]
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if result["status"]:
        raise RuntimeError(f"{result['status']} non-2xx answers: a token was not live")
    rate: float = result["requests"] / (result["duration_us"] / 1e6)
    return rate


def _throughput(
    service: HttpProcess, files: dict[str, Path], args: argparse.Namespace
) -> dict[str, list[float]]:
    banner(f"GET /v1/authz: wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds")
    names = list(files)
    for name in names:
        _wrk(service.url, files[name], args.warmup, args.connections)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for number in range(args.rounds):
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            rates[name].append(_wrk(service.url, files[name], args.duration, args.connections))
        say(f"round {number + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names))
    return rates


def deny_list_memory(
    service: HttpProcess, credentials: Credentials, redis_url: str, count: int
) -> tuple[int, float]:
    """Denies ``count`` new jtis (by jti and exp) one by one; prints and returns ``MEMORY
    USAGE`` of a deny key and the ``used_memory`` growth per jti (bytes)."""
    banner(f"deny-list memory: {count} jtis denied through POST /v1/jwt/revoke")
    client = admin_client(redis_url)
    before = int(info(client, "memory")["used_memory"])
    exp = int(time.time()) + 3600
    for _ in range(count):
        _post(service.url, "/v1/jwt/revoke", {"jti": uuid.uuid4().hex, "exp": exp}, credentials)
    after = int(info(client, "memory")["used_memory"])
    key = next(iter(client.scan_iter(match="ts:jd:*", count=1000)))
    key_bytes, growth = int(client.memory_usage(key) or 0), (after - before) / count
    say(f"MEMORY USAGE of one deny key ({key!r}): {key_bytes} bytes")
    say(f"used_memory growth per denied jti: {growth:.0f} bytes")
    return key_bytes, growth


def _first_verification(keys: dict[str, Any], jwks: Path, count: int) -> None:
    """CPU of verifying a JWT not seen before (signature, claims), in this process."""
    banner(f"first verification of a JWT (no cache), {count} each, in-process")
    settings = Settings(jwt_jwks_file=str(jwks), jwt_issuers=(ISSUER,))
    for alg, key in keys.items():
        verifier = JwtVerifier.of(settings)
        assert verifier is not None
        tokens = _jwts(alg, key, count)
        started = time.process_time()
        for token in tokens:
            if not isinstance(verifier.verify(token), JwtClaims):
                raise RuntimeError(f"{alg}: a JWT did not verify")
        say(f"{alg}: {(time.process_time() - started) / count * 1e6:.0f} us per JWT")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jwt", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--denied", type=int, default=2000, help="jtis denied for memory")
    args = parser.parse_args(argv)
    say(f"bench.jwt (target: a JWT >= {TARGET}x our token): {machine()}, loopback only")
    keys = signing_keys()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, redis_server() as server:
        workdir = Path(tmp)
        credentials = write_clients_file(workdir)
        jwks = workdir / "jwks.json"
        jwks.write_text(json.dumps(jwks_of(keys)))
        env = {"TOKENSTORE_JWT_JWKS_FILE": str(jwks), "TOKENSTORE_JWT_ISSUERS": ISSUER}
        with service_process(server.url, credentials, extra_env=env) as service:
            ours = [_issue(service.url, f"user-{i}", credentials) for i in range(args.tokens)]
            files = {"our token": workdir / "ours.txt"}
            files["our token"].write_text("\n".join(ours) + "\n")
            for alg, key in keys.items():
                files[f"JWT {alg}"] = workdir / f"{alg}.txt"
                files[f"JWT {alg}"].write_text("\n".join(_jwts(alg, key, args.tokens)) + "\n")
            for path in files.values():
                sample = path.read_text().split("\n", 1)[0]
                if _authz_status(service.url, sample) != 200:
                    raise RuntimeError(f"{path.name}: a sample token is not live")
            rates = _throughput(service, files, args)
            reference = median(rates["our token"])
            banner("medians (min-max)")
            for name, values in rates.items():
                ratio = median(values) / reference
                say(f"{name:10} {spread(values)} req/s  {ratio:.2f}x")
            deny_list_memory(service, credentials, server.url, args.denied)
        _first_verification(keys, jwks, 500)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
