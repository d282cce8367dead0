"""`kubelet-py inspect pod NAME [-n NS] [-o text|json]`: asks the daemon for the report
(`GET .../pods/NAME/inspect`, gathered live in the daemon) and prints it as a tree, one line per
kernel object with its upstream owner, or as JSON. Registered on `cli` when kubelet_py.cli
imports this module."""

from __future__ import annotations

import json

import click

from ..cli import cli


@cli.group("inspect")
def inspect_group():
    """The Linux behind an object, read live from the kernel."""


@inspect_group.command("pod")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def inspect_pod(ctx, name, namespace, output):
    """The kernel objects behind a pod, each tagged with the upstream component that would own it
    (runc, containerd, CNI bridge, host-local, portmap, kube-proxy, kubelet): namespaces, pids,
    cgroups, the overlay's layers, mounts, veth ends, routes, iptables rules, log files. A line
    marked `!!` is where the kernel disagrees with the agent's records."""
    from ..client import pod_path
    from ..kubectl import _client, _run
    report = _run(lambda: _client(ctx).get(pod_path(namespace, name, "inspect")))
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    from .report import render_text
    click.echo(render_text(report), nl=False)
