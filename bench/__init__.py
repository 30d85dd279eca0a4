"""Benchmarks of issue #2: run from the repository root, e.g. ``python -m bench.introspect``.

Importing the package makes ``tests/redis_servers.py`` importable: the benchmarks start their
own throw-away ``redis-server`` processes with it, exactly as the test suite does.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TESTS = str(ROOT / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)
