"""Issue #5: introspection throughput of ``tokenstore serve --workers 2`` vs ``--workers 1``.

``python -m bench.workers [--workers 2] [--rounds 5] [--duration 10]``

Both against the same redis-server, the same wrk load (``bench.compare``), rounds
alternating the order. ``--workers 1`` is one serving process; ``--workers N`` a supervisor
and N spawned workers sharing the port (SO_REUSEPORT; the kernel spreads wrk's 50
connections over them). CPU is counted over the supervisor and its workers.

The machine's cores are shared by Redis, wrk and the workers (and whatever else runs): on
2 cores, 2 workers cannot get 2 cores, so the ratio is bounded well below N.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from bench import compare
from bench.harness import Credentials, service_process, tokenstore_command
from bench.introspect import Target


def main(argv: Sequence[str] | None = None) -> int:
    parser = compare.parser("python -m bench.workers", __doc__)
    parser.add_argument("--workers", type=int, default=2, help="workers of the second target")
    args = compare.check(parser, parser.parse_args(argv))
    if not 2 <= args.workers <= 64:
        parser.error("workers 2-64")

    def targets(
        redis_url: str, credentials: Credentials, stack: contextlib.ExitStack
    ) -> list[Target]:
        one = service_process(
            redis_url,
            credentials,
            name="workers-1",
            argv=[*tokenstore_command(), "--workers", "1"],
        )
        many = service_process(
            redis_url,
            credentials,
            name=f"workers-{args.workers}",
            argv=[*tokenstore_command(), "--workers", str(args.workers)],
        )
        return [
            Target("--workers 1", stack.enter_context(one)),
            Target(f"--workers {args.workers}", stack.enter_context(many)),
        ]

    title = f"bench.workers ({os.cpu_count()} cores shared by redis-server, wrk and the workers)"
    compare.run(title, targets, args, target_note="service (supervisor + workers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
