"""The test tree's own rule: pytest collects tests/unit, tests/integration and tests/e2e in one run
with rootdir-relative basenames (no __init__.py below tests/), so two test files with the same
name in different directories break collection of the whole suite (it happened three times)."""

from __future__ import annotations

import collections
import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_two_test_files_share_a_name():
    seen = collections.defaultdict(list)
    for sub in ("unit", "integration", "e2e"):
        for name in os.listdir(os.path.join(TESTS, sub)):
            if name.startswith("test_") and name.endswith(".py"):
                seen[name].append(sub)
    assert {n: dirs for n, dirs in seen.items() if len(dirs) > 1} == {}
