"""`kubelet-py top pods [-n NS | -A]` and `kubelet-py top node`: CPU and memory as `kubectl top`
prints them (kubectl's metricsutil printer), from the daemon's /stats/summary.

As metrics-server feeds kubectl: a pod's CPU is the sum of its containers' usageNanoCores and its
memory the sum of their workingSetBytes; CPU is printed in millicores rounded up (a Quantity's
MilliValue), memory in Mi rounded down; the node's percentages divide by its allocatable cpu and
memory (truncated, as kubectl's int64). A pod without container figures (nothing running) is
left out, as metrics-server leaves it out. Registered on `cli` when kubelet_py.cli imports this
module."""

from __future__ import annotations

from typing import Mapping, Sequence

import click

from .cli import cli

POD_COLUMNS = ("NAME", "CPU(cores)", "MEMORY(bytes)")
NODE_COLUMNS = ("NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)")


# ---- pure -------------------------------------------------------------------------------------

def millicores(nanocores: int) -> int:
    """A Quantity's MilliValue: rounded up."""
    return -(-int(nanocores) // 1_000_000)


def mebibytes(n: int) -> int:
    return int(n) // (1024 * 1024)


def parse_cpu(q: str) -> int:
    """A cpu quantity ("2", "500m", "1.5") in millicores."""
    q = str(q)
    if q.endswith("m"):
        return int(q[:-1])
    return int(float(q) * 1000)


def _table(rows: Sequence[Sequence[str]]) -> str:
    """kubectl's top printer: every cell (the last too) ends in a tab, through the tabwriter
    kubectl uses (minwidth 6, padding 3)."""
    from .status.tabwriter import TabWriter
    w = TabWriter(minwidth=6, tabwidth=4, padding=3)
    for row in rows:
        w.write("".join(f"{c}\t" for c in row) + "\n")
    return w.getvalue()


def pod_usage(pod: Mapping) -> tuple[int, int] | None:
    """(nanocores, working set bytes) summed over the pod's containers; None without figures."""
    cs = [c for c in pod.get("containers") or [] if "usageNanoCores" in (c.get("cpu") or {})]
    if not cs:
        return None
    return (sum(c["cpu"]["usageNanoCores"] for c in cs),
            sum((c.get("memory") or {}).get("workingSetBytes", 0) for c in cs))


def pods_table(summary: Mapping, namespace: str | None) -> str:
    """The table of `top pods` (namespace None: every namespace, with a NAMESPACE column);
    "" when no pod has figures."""
    rows = []
    for p in summary.get("pods") or []:
        ref = p.get("podRef") or {}
        if namespace is not None and ref.get("namespace") != namespace:
            continue
        u = pod_usage(p)
        if u is None:
            continue
        rows.append((ref.get("namespace", ""), ref.get("name", ""), f"{millicores(u[0])}m", f"{mebibytes(u[1])}Mi"))
    if not rows:
        return ""
    rows.sort(key=lambda r: (r[0], r[1]) if namespace is None else r[1])
    if namespace is None:
        return _table([("NAMESPACE",) + POD_COLUMNS] + rows)
    return _table([POD_COLUMNS] + [r[1:] for r in rows])


def node_table(summary: Mapping) -> str:
    n = summary.get("node") or {}
    name = n.get("nodeName", "")
    cpu, mem = (n.get("cpu") or {}).get("usageNanoCores"), (n.get("memory") or {}).get("workingSetBytes")
    if cpu is None or mem is None:
        return _table([NODE_COLUMNS, (name,) + ("<unknown>",) * 4])
    alloc = n.get("allocatable") or {}
    cpu_m, row = millicores(cpu), [name]
    row.append(f"{cpu_m}m")
    row.append(f"{int(cpu_m / parse_cpu(alloc['cpu']) * 100)}%" if alloc.get("cpu") else "<unknown>")
    row.append(f"{mebibytes(mem)}Mi")
    row.append(f"{int(mem / int(alloc['memory']) * 100)}%" if alloc.get("memory") else "<unknown>")
    return _table([NODE_COLUMNS, row])


# ---- the commands -----------------------------------------------------------------------------

def _summary(ctx) -> dict:
    from .kubectl import _client, _run
    return _run(lambda: _client(ctx).get("/stats/summary"))


@cli.group("top")
def top_group():
    """CPU and memory of the pods or the node, as `kubectl top`."""


@top_group.command("pods")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.pass_context
def top_pods(ctx, namespace, all_namespaces):
    """CPU (millicores) and memory (working set, Mi) of each pod."""
    out = pods_table(_summary(ctx), None if all_namespaces else namespace)
    if not out:  # kubectl's words, on stderr, and no error
        click.echo("No resources found" if all_namespaces else f"No resources found in {namespace} namespace.",
                   err=True)
        return
    click.echo(out, nl=False)


@top_group.command("node")
@click.pass_context
def top_node(ctx):
    """CPU and memory of the node, with the share of its allocatable."""
    click.echo(node_table(_summary(ctx)), nl=False)


top_group.add_command(top_pods, "pod")  # kubectl takes both
top_group.add_command(top_node, "nodes")
