"""kubectl's habits on the agent: `serve` (the daemon) and the commands that talk to it over its
socket: apply, get, describe, logs, exec, delete, wait, create namespace, and `run -f`, which
starts a pod through the daemon when one runs, or else in an embedded agent in the foreground.

A command is a fresh process, so what it imports is most of what it costs: the plain commands
(apply, get, describe, logs, delete, wait, create) are blocking calls over
`kubelet_py.client.SyncClient` and never import asyncio (~22 ms of imports here); `exec`, `run`
and `serve` are one `asyncio.run` each."""

from __future__ import annotations

import json
import os
import re
import sys
import time

import click

from .cli import KpyError, cli
from .service.daemon import config_option

ALIASES = {"pod": "pods", "po": "pods", "pods": "pods", "namespace": "namespaces", "namespaces": "namespaces",
           "ns": "namespaces", "configmap": "configmaps", "configmaps": "configmaps", "cm": "configmaps",
           "secret": "secrets", "secrets": "secrets", "service": "services", "services": "services", "svc": "services",
           "endpoints": "endpoints", "ep": "endpoints", "endpointslice": "endpointslices",
           "endpointslices": "endpointslices"}
# namespaced kinds at /api/v1/namespaces/NS/<plural> (EndpointSlices: at discovery.k8s.io/v1's)
CONFIG_KINDS = {"configmaps": "ConfigMap", "secrets": "Secret", "services": "Service", "endpoints": "Endpoints",
                "endpointslices": "EndpointSlice"}


def _run(work):
    """Run a command's work (a function of no argument, or a coroutine) with the daemon's
    refusals as one line for the user."""
    from .client import ClientError
    from .errtext import server_message
    from .server.errors import ApiError
    try:
        if callable(work):
            return work()
        import asyncio
        return asyncio.run(work)
    except ClientError as e:
        raise KpyError(server_message(e)) from None
    except ApiError as e:  # the embedded agent's (run -f without a daemon)
        raise KpyError(f"{e.reason}: {e}") from None
    except KeyboardInterrupt:
        sys.exit(130)


def _client(ctx):
    """The blocking client of the daemon on --socket (`with _client(ctx) as c`)."""
    from .client import SyncClient
    return SyncClient(ctx.obj.socket)


def _async_client(ctx):
    from .client import Client
    return Client(ctx.obj.socket)


def _duration(value: str, what: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value or "")
    if value.isdigit():
        return float(value)
    if not value or not m or not any(m.groups()):
        raise click.BadParameter(f"{value!r}: a duration like 30s, 5m, 1h", param_hint=what)
    h, mi, s = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


# ---- files ------------------------------------------------------------------------------------

def _files(paths: tuple[str, ...], recursive: bool) -> list[tuple[str, str]]:
    """(name, text) of every manifest named (applycmd.read_files), a missing one a KpyError."""
    from .applycmd import MissingPath, read_files
    try:
        return read_files(paths, recursive)
    except MissingPath as e:
        raise KpyError(str(e)) from None


def load_manifests(paths: tuple[str, ...], recursive: bool = False, strict: bool = False) -> list[dict]:
    """Parse and validate every object (all errors of every file at once, nothing sent when any
    is wrong); warnings go to stderr."""
    from .api.errors import ApiError
    from .api.load import load
    objs, errors = [], []
    for name, text in _files(paths, recursive):
        try:
            docs = load(text, name, strict=strict)
        except ApiError as e:
            errors.append(str(e))
            continue
        for d in docs:
            for w in d.warnings:
                click.echo(f"Warning: {w}", err=True)
            objs.append(d.obj)
    if errors:
        raise KpyError("\n".join(errors))
    return objs


# ---- serve ------------------------------------------------------------------------------------

@cli.command()
@config_option
@click.option("--manifests", type=click.Path(file_okay=False), help="Static pods: a directory of pod manifests, watched.")
@click.option("--node-name", default="", help="The node's name (default: the hostname).")
@click.option("--pod-cidr", default="10.244.0.0/16", show_default=True, help="The pod network; the bridge takes its .1.")
@click.option("--cluster-cidr", default=None, help="Every node's pod CIDR (containing --pod-cidr): pod traffic to it "
              "keeps its source address (routes to the other nodes' pod CIDRs are the host's). Default: --pod-cidr.")
@click.option("--bridge", default="kpy0", show_default=True, help="The pods' bridge.")
@click.option("--chain-prefix", default="KPY", show_default=True, help="Prefix of the agent's iptables chains.")
@click.option("--max-pods", default=110, show_default=True, type=click.IntRange(1, 10000))
@click.option("--crashloop-max", type=click.FloatRange(1, 300), help="Cap of the CrashLoopBackOff delay, seconds "
              "(upstream's KubeletCrashLoopBackOffMax; default 300).")
@click.option("--seccomp-profile-root", default="/var/lib/kubelet-py/seccomp", show_default=True,
              type=click.Path(file_okay=False), help="Where seccompProfile type Localhost profiles are read from.")
@click.option("--allowed-unsafe-sysctls", default="", help="Comma-separated sysctls (or `prefix*` patterns) pods "
              "may set beyond the safe set, e.g. 'net.core.somaxconn,kernel.msg*'.")
@click.option("--service-cidr", default="10.96.0.0/12", show_default=True, help="Where Services' ClusterIPs come from.")
@click.option("--cluster-dns", default="10.96.0.10", show_default=True,
              help="The cluster DNS address the daemon serves (on the bridge) and pods use; '' for none.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--services-iptables", default="legacy", show_default=True, type=click.Choice(["legacy", "nft"]),
              help="Where the Services' rules go: the legacy tables (iptables-legacy-restore) or nf_tables through "
              "iptables-nft-restore (seen by the host's `iptables` where it is the nft variant; a change is applied "
              "alone, where the legacy API replaces the whole table). The pod network stays legacy.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--listen", default=None, help="Serve /healthz, /pods, /stats/summary, /metrics read-only over TCP on "
              "ADDR:PORT (PORT or :PORT: loopback). Off by default.")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="The bearer token --listen asks for (without it, TCP serves only /healthz).")
@click.pass_context
def serve(ctx, manifests, node_name, pod_cidr, cluster_cidr, bridge, chain_prefix, max_pods, crashloop_max,
          seccomp_profile_root, allowed_unsafe_sysctls, service_cidr, cluster_dns, cluster_domain, services_iptables,
          log_level, listen, token_file):
    """Run the node agent: static pods from --manifests, the API on --socket; pods keep running
    when it stops (SIGTERM)."""
    import asyncio
    import logging
    import signal
    from .node import NodeAgent, NodeOptions
    from .service.daemon import ServiceHooks
    from .server.listen import ListenError, check_flags
    try:
        check_flags(listen, token_file)
    except ListenError as e:
        raise click.BadParameter(e.why, param_hint=e.flag) from None
    if cluster_cidr:  # checked before anything starts, by the pod network's own rules
        from netns.errors import ConfigError as NetworkConfigError
        from netns.plan import NetworkConfig
        from .node import _gateway_of
        try:
            NetworkConfig(gateway=_gateway_of(pod_cidr), cluster_cidr=cluster_cidr)
        except (ValueError, NetworkConfigError) as e:
            raise click.BadParameter(str(e), param_hint="--cluster-cidr") from None
    hooks = ServiceHooks.begin(log_level)  # logfmt lines on stderr, $NOTIFY_SOCKET taken
    o = ctx.obj
    opts = NodeOptions(root=o.root, run_root=o.run_root, log_root=o.log_root, socket=o.socket, registries=o.registries,
                       cgroup_root=o.cgroup_root, node_name=node_name, manifests=manifests and os.path.abspath(manifests),
                       pod_cidr=pod_cidr, cluster_cidr=cluster_cidr or None, bridge=bridge, chain_prefix=chain_prefix,
                       max_pods=max_pods, crashloop_max=crashloop_max, image_limits=o.image_limits,
                       seccomp_profile_root=os.path.abspath(seccomp_profile_root),
                       allowed_unsafe_sysctls=tuple(x.strip() for x in allowed_unsafe_sysctls.split(",") if x.strip()),
                       service_cidr=service_cidr, cluster_dns=cluster_dns or None, cluster_domain=cluster_domain,
                       services_iptables=services_iptables,
                       listen=listen or None, token_file=token_file and os.path.abspath(token_file))

    async def main():
        agent = NodeAgent(opts)
        await agent.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, stop.set)
        logging.getLogger("kubelet_py").info("serving on %s (node %s)", opts.socket, agent.node_name)
        hooks.serving(ctx, agent)  # READY=1, watchdog pings, SIGHUP re-reads the config file
        await stop.wait()
        hooks.stopping()
        await agent.stop()
    asyncio.run(main())


# ---- apply / create / delete ------------------------------------------------------------------

@cli.command()
@click.option("-f", "--filename", "paths", multiple=True, required=True, help="File, directory or - (repeatable).")
@click.option("-R", "--recursive", is_flag=True, help="Enter subdirectories of -f directories.")
@click.option("--strict", is_flag=True, help="Unknown fields are errors, not warnings.")
@click.pass_context
def apply(ctx, paths, recursive, strict):
    """Create or update the objects of the files, as `kubectl apply -f`."""
    # The daemon reads and validates the files (errors still name file, document, object and
    # field): validating here would import the api package and yaml, ~75 ms of this command's
    # ~125 ms (python -X importtime), for work the daemon does again anyway.
    # kubelet_py/entry.py runs the plain form of this command without click (applycmd.quick)
    from .applycmd import apply_files
    files = _files(paths, recursive)
    _run(lambda: apply_files(ctx.obj.socket, files, strict, lambda text, err: click.echo(text, err=err)))


@cli.group()
def create():
    """Create an object from the command line."""


@create.command("namespace")
@click.argument("name")
@click.pass_context
def create_namespace(ctx, name):
    def go():
        with _client(ctx) as c:
            c.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": name}})
    _run(go)
    click.echo(f"namespace/{name} created")


def _pod_refs(ctx, kind, names, paths, namespace) -> list[tuple[str, str, str]]:
    refs = []
    if paths:
        for o in load_manifests(paths):
            refs.append((o["kind"], (o.get("metadata") or {}).get("namespace") or namespace, o["metadata"]["name"]))
    elif kind:
        k = ALIASES.get(kind.split("/")[0].lower())
        if k is None:
            raise KpyError(f'error: the server doesn\'t have a resource type "{kind}"')
        if "/" in kind:
            names = (kind.split("/", 1)[1],) + tuple(names)
        refs = [(CONFIG_KINDS.get(k) or ("Pod" if k == "pods" else "Namespace"), namespace, n) for n in names]
    if not refs:
        raise KpyError("error: resource(s) were provided, but no name was specified")
    return refs


def _obj_path(kind: str, ns: str, name: str) -> str:
    from .client import pod_path
    if kind in CONFIG_KINDS.values():
        return f"{_list_path(kind, ns)}/{name}"
    return pod_path(ns, name) if kind == "Pod" else f"/api/v1/namespaces/{name}"


def _list_path(kind: str, ns: str) -> str:
    """The list (and watch) of `kind` that holds an object of it in `ns`."""
    from .client import pod_path
    if kind == "EndpointSlice":
        return f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
    if kind in CONFIG_KINDS.values():
        return f"/api/v1/namespaces/{ns}/{_plural(kind)}"
    return pod_path(ns) if kind == "Pod" else "/api/v1/namespaces"


def _plural(kind: str) -> str:
    return next(p for p, k in CONFIG_KINDS.items() if k == kind)


@cli.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "paths", multiple=True)
@click.option("-n", "--namespace", default="default")
@click.option("--all", "all_", is_flag=True, help="Every pod of the namespace.")
@click.option("--grace-period", type=int, default=None, help="Seconds for the pod to stop (default: its own).")
@click.option("--now", is_flag=True, help="--grace-period=1.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Return once the objects are gone.")
@click.pass_context
def delete(ctx, kind, names, paths, namespace, all_, grace_period, now, wait):
    """Delete pods or namespaces (`delete pod NAME`, `delete -f FILE`, `delete pods --all`)."""
    if all_:
        if ALIASES.get((kind or "").lower()) != "pods":
            raise KpyError("error: --all works with pods")

        def names_of():
            from .client import pod_path
            with _client(ctx) as c:
                return [p["metadata"]["name"] for p in c.get(pod_path(namespace))["items"]]
        names = tuple(_run(names_of))
        if not names:
            click.echo(f"No resources found in {namespace} namespace.", err=True)
            return
    refs = _pod_refs(ctx, kind, names, paths, namespace)
    if now:
        grace_period = 1

    def go():
        with _client(ctx) as c:
            for k, ns, name in refs:
                params = {"gracePeriodSeconds": str(grace_period)} if grace_period is not None else None
                c.delete(_obj_path(k, ns, name), params)
                click.echo(f'{k.lower()} "{name}" deleted' + (f' from {ns} namespace' if k != "Namespace" else ""))
            if wait:
                for k, ns, name in refs:
                    wait_gone(c, k, ns, name)
    _run(go)


def wait_gone(c, kind: str, ns: str, name: str, deadline: float | None = None) -> bool:
    """Whether the object is gone (its DELETED event on a watch, or no object at all) before
    `deadline` (time.monotonic(); None: no limit). The watch is open before the object is looked
    at, so a removal in between is among its events."""
    from .client import ClientError
    try:
        with c.watch(_list_path(kind, ns), {"fieldSelector": f"metadata.name={name}"}, deadline) as w:
            try:
                c.get(_obj_path(kind, ns, name))
            except ClientError as e:
                if e.code == 404:
                    return True
                raise
            while (ev := w.next_event()) is not None:
                if ev.get("type") == "DELETED" and ev["object"]["metadata"]["name"] == name:
                    return True
    except TimeoutError:
        return False
    raise ClientError(f"the daemon at {c.socket_path} ended the watch of {kind.lower()}s/{name} before it was gone")


# ---- get / describe ---------------------------------------------------------------------------

def _print_objects(objs: list[dict], kind: str, output: str | None, all_ns: bool, single: bool) -> None:
    from .status import printers
    now = time.time()
    if output in ("json", "yaml"):
        doc = objs[0] if single else {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                                       "items": objs}
        if output == "json":
            click.echo(json.dumps(doc, indent=4))
        else:
            from .api.dump import to_yaml
            click.echo(to_yaml(doc), nl=False)
    elif output == "name":
        for o in objs:
            click.echo(printers.name_output(o))
    elif output and output.startswith("jsonpath="):
        from .status.jsonpath import jsonpath
        doc = objs[0] if single else {"kind": "List", "items": objs}
        click.echo(jsonpath(output.split("=", 1)[1], doc), nl=False)
    elif kind == "pods":
        click.echo(printers.pods_table(objs, now, wide=output == "wide", all_namespaces=all_ns), nl=False)
    elif kind == "services":
        click.echo(printers.services_table(objs, now, wide=output == "wide", all_namespaces=all_ns), nl=False)
    elif kind in CONFIG_KINDS:
        table = {"configmaps": printers.configmaps_table, "secrets": printers.secrets_table,
                 "endpoints": printers.endpoints_table, "endpointslices": printers.endpoint_slices_table}[kind]
        click.echo(table(objs, now, all_namespaces=all_ns), nl=False)
    else:
        click.echo(printers.namespaces_table(objs, now), nl=False)


@cli.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default")
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-l", "--selector", default="")
@click.option("-o", "--output", default=None, help="wide, yaml, json, name or jsonpath=TEMPLATE.")
@click.option("-w", "--watch", is_flag=True, help="After the list, print every change.")
@click.pass_context
def get(ctx, kind, name, namespace, all_namespaces, selector, output, watch):
    """List pods or namespaces as kubectl does (NAME READY STATUS RESTARTS AGE)."""
    from .client import pod_path
    k = ALIASES.get(kind.split("/")[0].lower())
    if k is None:
        raise KpyError(f'error: the server doesn\'t have a resource type "{kind}"')
    if "/" in kind:
        name = kind.split("/", 1)[1]
    if output and output not in ("wide", "yaml", "json", "name") and not output.startswith("jsonpath="):
        raise click.BadParameter(f"{output!r}: wide, yaml, json, name or jsonpath=...", param_hint="-o")

    def go():
        from .status import printers
        with _client(ctx) as c:
            if k == "namespaces":
                path = f"/api/v1/namespaces/{name}" if name else "/api/v1/namespaces"
            elif k in CONFIG_KINDS:
                path = _list_path(CONFIG_KINDS[k], "x").replace("/namespaces/x", "") if all_namespaces and not name else \
                    _obj_path(CONFIG_KINDS[k], namespace, name) if name else _list_path(CONFIG_KINDS[k], namespace)
            else:
                path = pod_path(namespace, name) if (name or not all_namespaces) else "/api/v1/pods"
            params = {"labelSelector": selector} if selector and not name else None
            body = c.get(path, params)
            objs = [body] if name else body["items"]
            if not objs and not watch and output not in ("json", "yaml"):
                click.echo(printers.no_resources_message(None if all_namespaces or k == "namespaces" else namespace),
                           err=True)
            elif objs or output in ("json", "yaml"):
                _print_objects(objs, k, output, all_namespaces, bool(name))
            if watch and k == "pods":
                wpath = pod_path(namespace) if not all_namespaces else "/api/v1/pods"
                wparams = {**({"labelSelector": selector} if selector else {}),
                           **({"fieldSelector": f"metadata.name={name}"} if name else {})}
                first = True
                for ev in c.watch(wpath, wparams):
                    if first and ev["type"] == "ADDED":
                        continue  # already printed above
                    first = False
                    obj = ev["object"]
                    if output in (None, "wide"):
                        click.echo(printers.pods_table([obj], time.time(), wide=output == "wide",
                                                       all_namespaces=all_namespaces, no_headers=True), nl=False)
                    else:
                        _print_objects([obj], k, output, all_namespaces, True)
    _run(go)


@cli.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default")
@click.pass_context
def describe(ctx, kind, name, namespace):
    """A pod as `kubectl describe pod` shows it, with its events."""
    from .client import pod_path
    k = ALIASES.get(kind.lower())
    if k not in ("pods", "configmaps", "secrets", "services"):
        raise KpyError(f'error: describe supports pods, configmaps, secrets and services, not "{kind}"')

    def go():
        from .status.describe import describe_configmap, describe_pod, describe_secret, describe_service
        with _client(ctx) as c:
            if k == "services":
                svc = c.get(_obj_path("Service", namespace, name))
                slices = c.get(_list_path("EndpointSlice", namespace),
                               {"labelSelector": f"kubernetes.io/service-name={name}"})["items"]
                click.echo(describe_service(svc, slices, [], time.time()), nl=False)
                return
            if k in CONFIG_KINDS:
                obj = c.get(_obj_path(CONFIG_KINDS[k], namespace, name))
                if k == "secrets":  # kubectl shows no events for a Secret
                    click.echo(describe_secret(obj), nl=False)
                    return
                events = c.get(f"/api/v1/namespaces/{namespace}/events",
                               {"fieldSelector": f"involvedObject.name={name}"})["items"]
                click.echo(describe_configmap(obj, [e for e in events if (e.get("involvedObject") or {}).get("kind")
                                                    == "ConfigMap"], time.time()), nl=False)
                return
            pod = c.get(pod_path(namespace, name))
            events = c.get(f"/api/v1/namespaces/{namespace}/events",
                           {"fieldSelector": f"involvedObject.name={name}"})["items"]
            click.echo(describe_pod(pod, events, time.time()), nl=False)
    _run(go)


@cli.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default")
@click.option("--port", type=click.IntRange(1, 65535), help="The Service's port (default: the pod's container port).")
@click.option("--target-port", help="The container port, by number or name (default: --port).")
@click.option("--type", "type_", type=click.Choice(["ClusterIP", "NodePort", "LoadBalancer"]), default=None)
@click.option("--name", "svc_name", help="The Service's name (default: the pod's).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"]), default=None)
@click.pass_context
def expose(ctx, kind, name, namespace, port, target_port, type_, svc_name, protocol):
    """A Service for a pod, as `kubectl expose pod NAME`: its labels as the selector."""
    from .client import pod_path
    from .services.expose import ExposeError, expose_pod
    if ALIASES.get(kind.lower()) != "pods":
        raise KpyError(f'error: cannot expose a {kind}: only pods can be exposed here')

    def go():
        with _client(ctx) as c:
            pod = c.get(pod_path(namespace, name))
            try:
                svc = expose_pod(pod, port=port, target_port=target_port, type_=type_, name=svc_name, protocol=protocol)
            except ExposeError as e:
                raise KpyError(f"error: {e}") from None
            return c.request("POST", _list_path("Service", namespace), svc)
    stored = _run(go)
    click.echo(f"service/{stored['metadata']['name']} exposed")


# ---- logs / exec ------------------------------------------------------------------------------

@cli.command()
@click.argument("pod")
@click.option("-c", "--container")
@click.option("-n", "--namespace", default="default")
@click.option("-f", "--follow", is_flag=True)
@click.option("-p", "--previous", is_flag=True)
@click.option("--tail", type=int, default=-1)
@click.option("--timestamps", is_flag=True)
@click.option("--since", default=None, help="Only newer lines: 10s, 5m, 1h.")
@click.pass_context
def logs(ctx, pod, container, namespace, follow, previous, tail, timestamps, since):
    """A container's log (`logs POD [-c C] [-f] [-p] [--tail N] [--timestamps] [--since 10s]`)."""
    from .client import pod_path
    pod = pod.split("/", 1)[1] if pod.startswith(("pod/", "pods/")) else pod
    params = {k: v for k, v in (("container", container), ("follow", "1" if follow else None),
                                 ("previous", "1" if previous else None), ("timestamps", "1" if timestamps else None),
                                 ("tailLines", str(tail) if tail >= 0 else None),
                                 ("sinceSeconds", str(_duration(since, "--since")) if since else None)) if v is not None}

    def go():
        with _client(ctx) as c:
            for chunk in c.stream(pod_path(namespace, pod, "log"), params):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
    _run(go)


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.option("-c", "--container")
@click.option("-n", "--namespace", default="default")
@click.option("-i", "--stdin", is_flag=True)
@click.option("-t", "--tty", is_flag=True)
@click.argument("cmd", nargs=-1, required=True)
@click.pass_context
def exec_(ctx, pod, container, namespace, stdin, tty, cmd):
    """Run CMD in a container of POD (`exec POD [-c C] [-i] [-t] -- CMD`); exits with CMD's code."""
    from .client import pod_path
    from .server.execstream import RESIZE, STATUS, STDERR, STDIN, STDOUT
    params = [("command", a) for a in cmd] + [(k, "1") for k, v in (("stdin", stdin), ("tty", tty)) if v]
    if container:
        params.append(("container", container))

    async def go() -> int:
        import asyncio
        import termios
        import tty as ttymod
        async with _async_client(ctx) as c:
            try:
                ws = await c.exec_ws(pod_path(namespace, pod, "exec"), params)
            except Exception as e:  # noqa: BLE001 - the server's refusal, as one line
                raise KpyError(f"error: {getattr(e, 'message', e)}") from None
            from aiohttp import WSMsgType  # loaded by exec_ws
            loop = asyncio.get_running_loop()
            old = None
            if tty and stdin and os.isatty(0):
                old = termios.tcgetattr(0)
                ttymod.setraw(0)
                size = os.get_terminal_size(0)
                await ws.send_bytes(bytes([RESIZE]) + json.dumps({"Width": size.columns, "Height": size.lines}).encode())
            if stdin:
                def readable():
                    data = os.read(0, 65536)
                    loop.create_task(ws.send_bytes(bytes([STDIN]) + data))
                    if not data:
                        loop.remove_reader(0)
                loop.add_reader(0, readable)
            code = 0
            try:
                async for msg in ws:
                    if msg.type != WSMsgType.BINARY or not msg.data:
                        continue
                    chan, data = msg.data[0], msg.data[1:]
                    if chan == STDOUT:
                        sys.stdout.buffer.write(data)
                        sys.stdout.buffer.flush()
                    elif chan == STDERR:
                        sys.stderr.buffer.write(data)
                        sys.stderr.buffer.flush()
                    elif chan == STATUS:
                        st = json.loads(data)
                        if st.get("status") != "Success":
                            causes = (st.get("details") or {}).get("causes") or []
                            code = int(next((x["message"] for x in causes if x.get("reason") == "ExitCode"), 1))
                            if not causes:
                                click.echo(f"error: {st.get('message')}", err=True)
                        break
            finally:
                if stdin:
                    loop.remove_reader(0)
                if old is not None:
                    termios.tcsetattr(0, termios.TCSADRAIN, old)
                await ws.close()
            return code
    sys.exit(_run(go()))


# ---- wait -------------------------------------------------------------------------------------

@cli.command()
@click.argument("target")
@click.option("--for", "condition", required=True,
              help="condition=Ready (or any condition, =false too), delete, or jsonpath={.path}=VALUE.")
@click.option("-n", "--namespace", default="default")
@click.option("--timeout", default="30s", show_default=True)
@click.pass_context
def wait(ctx, target, condition, namespace, timeout):
    """Wait for pod/NAME to meet a condition, as `kubectl wait`."""
    from .client import ClientError, pod_path
    kind, _, name = target.partition("/")
    if ALIASES.get(kind.lower()) != "pods" or not name:
        raise click.BadParameter(f"{target!r}: pod/NAME", param_hint="TARGET")
    limit = _duration(timeout, "--timeout")

    def met(pod: dict) -> bool:
        if condition.startswith("condition="):
            ctype, _, want = condition[len("condition="):].partition("=")
            want = want or "true"
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond["type"].lower() == ctype.lower():
                    return cond["status"].lower() == want.lower()
            return False
        if condition.startswith("jsonpath="):
            from .status.jsonpath import jsonpath
            expr, _, want = condition[len("jsonpath="):].rpartition("=")
            return jsonpath(expr, pod).strip() == want.strip("'\"")
        raise click.BadParameter(f"{condition!r}: condition=NAME[=VALUE], delete or jsonpath=EXPR=VALUE",
                                 param_hint="--for")

    def until_met(c, deadline: float) -> bool | None:
        """Watch the pod until the condition holds (True); None if the watch ends first (the
        daemon went away); TimeoutError at the deadline."""
        if condition == "delete":
            return wait_gone(c, "Pod", namespace, name, deadline)
        with c.watch(pod_path(namespace), {"fieldSelector": f"metadata.name={name}"}, deadline) as w:
            while (ev := w.next_event()) is not None:
                if ev.get("type") != "DELETED" and met(ev["object"]):
                    return True
        return None

    def go() -> bool:
        deadline = time.monotonic() + limit
        c = _client(ctx)
        while True:  # a daemon (or a `run -f`) that is still starting, or restarting, is waited for too
            try:
                if until_met(c, deadline):
                    return True
            except TimeoutError:
                return False
            except ClientError as e:
                if e.code or time.monotonic() >= deadline:
                    raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    if not _run(go):
        raise KpyError(f"timed out waiting for the condition on pods/{name}")
    click.echo(f"pod/{name} condition met")


# ---- run -f ------------------------------------------------------------------------------------

@cli.command()
@click.option("-f", "--filename", "path", required=True, help="A file holding one Pod (and the objects it needs).")
@click.option("--node-name", default="")
@click.option("--pod-cidr", default="10.244.0.0/16", show_default=True)
@click.option("--bridge", default="kpy0", show_default=True)
@click.pass_context
def run(ctx, path, node_name, pod_cidr, bridge):
    """Start the pod, stream its logs, tear it down on Ctrl-C; exit with the container's code
    when a Never/OnFailure pod completes. Through the daemon when one runs, else in an
    embedded agent in the foreground."""
    objs = load_manifests((path,))
    pods = [o for o in objs if o.get("kind") == "Pod"]
    if len(pods) != 1:
        raise KpyError(f"{path}: run -f takes a file with exactly one Pod ({len(pods)} found)")
    from .pullprogress import pull_for_pod  # its images pulled here, with progress, before it is applied
    pull_for_pod(ctx.obj, pods[0])
    from .runpod import run_pod
    sys.exit(_run(run_pod(ctx.obj, objs, pods[0], node_name=node_name, pod_cidr=pod_cidr, bridge=bridge)))
