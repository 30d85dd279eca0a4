"""Issue #3: introspection throughput with authentication on vs off, in one run.

``python -m bench.auth_overhead [--rounds 5] [--duration 10]``

Three targets, the same wrk load (``bench.compare``), rounds alternating the order:

- ``auth off``: ``bench.noauth``, the service with the ``v1.introspect`` rule open (the
  access middleware takes its open-route exit; a fixed admin principal). The reference.
- ``auth Basic``: the normal ``tokenstore serve``, ``Authorization: Basic base64(id:secret)``.
- ``auth Bearer``: the same process, ``Authorization: Bearer <secret>``.

All three requests carry an ``Authorization`` header (the same Basic one to ``auth off``), so
request sizes match. Before loading, it checks that ``auth off`` answers 200 without
credentials and the normal service 401. Target: auth on >= 0.90x auth off.
"""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from bench import compare
from bench.harness import Credentials, say, service_process
from bench.introspect import Target


def _status_without_credentials(url: str) -> int:
    request = urllib.request.Request(
        url + "/v1/introspect",
        data=json.dumps({"token": "ts_not_a_token"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _targets(redis_url: str, credentials: Credentials, stack: contextlib.ExitStack) -> list[Target]:
    off = stack.enter_context(
        service_process(
            redis_url, credentials, name="noauth", argv=[sys.executable, "-m", "bench.noauth"]
        )
    )
    on = stack.enter_context(service_process(redis_url, credentials, name="service"))
    statuses = (_status_without_credentials(off.url), _status_without_credentials(on.url))
    say(f"no credentials: auth off answers {statuses[0]}, the normal service {statuses[1]}")
    if statuses != (200, 401):
        raise RuntimeError(f"expected (200, 401) without credentials, got {statuses}")
    return [
        Target("auth off", off),
        Target("auth Basic", on),
        Target("auth Bearer", on, authorization=f"Bearer {credentials.secret}"),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = compare.parser("python -m bench.auth_overhead", __doc__)
    args = compare.check(parser, parser.parse_args(argv))
    compare.run("bench.auth_overhead (target: auth on >= 0.90x auth off)", _targets, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
