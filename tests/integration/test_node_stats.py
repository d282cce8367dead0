"""The Summary API's numbers from a real cgroup (on the host's hierarchy, and again in the cgroup v2
VM): a process spinning with 16 MiB of its own in a cgroup of ours reads as about one core of
usageNanoCores over two samples, its memory as usage, working set and rss, one pid."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import pytest

from kubelet_py import stats
from runtime.cgroups import Cgroup
from tests.integration.leaks import remove_cgroup_tree

pytestmark = [pytest.mark.root, pytest.mark.cgroups]
SPIN = "import sys\nsys.stdin.readline()\nx = b'a' * (16 << 20)\nprint('go', flush=True)\nwhile True:\n    pass\n"


def test_stats_of_a_spinning_cgroup():
    root = f"kpystats-{secrets.token_hex(3)}"
    cg = Cgroup(f"{root}/spin")
    cg.create()
    p = subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        cg.add(p.pid)  # before it allocates: its pages are charged here
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline() == "go\n"
        rates = stats.RateTracker()
        first = stats.read_cgroup(cg.path)
        assert rates.observe(("c",), first.t_ns, first.cpu_ns) is None
        time.sleep(1.0)
        second = stats.read_cgroup(cg.path)
        rate = rates.observe(("c",), second.t_ns, second.cpu_ns)
        assert 300_000_000 < rate < 1_100_000_000, rate  # one core, give or take a busy 2-core host
        assert second.cpu_ns > first.cpu_ns
        assert second.pids == 1
        assert second.rss >= 16 << 20 and second.working_set >= 16 << 20, second
        assert second.usage >= second.working_set
        doc = stats.build_summary("n", 0.0, None, {}, [(stats.PodTarget("p", "ns", "u", None, cg.path, (
            stats.ContainerTarget("c", "cid", cg.path, None),)), second, [(stats.ContainerTarget(
                "c", "cid", cg.path, None), second)])], {("container", "u", "cid"): rate})
        c = doc["pods"][0]["containers"][0]
        assert c["cpu"]["usageNanoCores"] == rate and c["memory"]["rssBytes"] == second.rss
    finally:
        p.kill()
        p.wait()
        cg.destroy()
        remove_cgroup_tree(root)
    assert stats.read_cgroup(cg.path) is None  # gone: no reading
