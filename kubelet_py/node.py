"""The node agent: desired state (the store and its sources), one worker per pod, the runtime
and the network below them, the API above. What the kubelet binary puts together.

    NodeAgent(options).start()   read the checkpoint, remove what no desired pod owns, adopt
                                 what runs, start a worker per pod, the static-pod source and
                                 the API on the unix socket
    apply / delete               what the API and the sources call (validated first)
    make_sandbox, create_container, ...   what the pod workers call, each blocking (a thread)
"""

from __future__ import annotations

import asyncio
import calendar
import dataclasses
import logging
import os
import socket
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from runtime import pod as rt
from runtime.container import Paths
from runtime.errors import RuntimeFailure
from runtime.sandbox import Sandbox
from runtime.supervisor.wire import SupervisorError

from .config.store import ObjectStore
from .pods import translate
from .pods.images import ensure_image as _ensure_image
from .pods.worker import PodWorker
from .status.backoff import Backoff, crashloop_policy

log = logging.getLogger("kubelet_py.node")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class NodeOptions:
    root: str = "/var/lib/kubelet-py"
    run_root: str = "/run/kubelet-py"
    log_root: str = "/var/log/pods"
    socket: str = "/run/kubelet-py/kubelet-py.sock"
    registries: str = "/etc/kubelet-py/registries.yaml"
    cgroup_root: str = "kubelet-py"
    node_name: str = ""
    manifests: str | None = None
    pod_cidr: str = "10.244.0.0/16"
    cluster_cidr: str | None = None  # serve --cluster-cidr: every node's pods, reached unNATed (None: pod_cidr)
    bridge: str = "kpy0"
    chain_prefix: str = "KPY"
    max_pods: int = 110
    crashloop_max: float | None = None
    image_limits: object = None
    seccomp_profile_root: str = "/var/lib/kubelet-py/seccomp"  # serve --seccomp-profile-root
    allowed_unsafe_sysctls: tuple[str, ...] = ()  # serve --allowed-unsafe-sysctls
    service_cidr: str = "10.96.0.0/12"  # serve --service-cidr: where ClusterIPs come from
    cluster_dns: str | None = "10.96.0.10"  # serve --cluster-dns ("": no DNS server)
    cluster_domain: str = "cluster.local"
    services_iptables: str = "legacy"  # serve --services-iptables: legacy or nft (kubelet_py/services/controller.py)
    listen: str | None = None  # serve --listen: the read-only node endpoints over TCP (kubelet_py/server/listen.py)
    token_file: str | None = None  # serve --token-file: their bearer token


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_time(s: str) -> float:
    base = s.rstrip("Z").split(".")[0]
    frac = s.rstrip("Z").split(".")[1] if "." in s else ""
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)


class _NodeRuntime:
    """The node's state and what the pod workers call (runtime, network, images, hooks, events)."""
    def __init__(self, opts: NodeOptions):
        from runtime.image.store import ImageStore
        import netns
        from netns.plan import NetworkConfig
        self.opts = opts
        self.node_name = (opts.node_name or socket.gethostname()).lower()
        self.paths = Paths(opts.root, opts.run_root, opts.cgroup_root)
        self.images = ImageStore(opts.root, opts.image_limits) if opts.image_limits else ImageStore(opts.root)
        gw = _gateway_of(opts.pod_cidr)
        self.net = NetworkConfig(state_root=opts.root, bridge=opts.bridge, gateway=gw, chain_prefix=opts.chain_prefix,
                                 veth_prefix=opts.bridge[:7] if opts.bridge != "kpy0" else "kpy",
                                 cluster_dns=(opts.cluster_dns,) if opts.cluster_dns else (),
                                 cluster_domain=opts.cluster_domain, cluster_cidr=opts.cluster_cidr)
        from .services.controller import ServiceNetwork
        self.service_network = ServiceNetwork(opts.service_cidr, opts.cluster_dns or None, opts.cluster_domain,
                                              iptables=opts.services_iptables)
        self.services = None
        self.netns = netns
        # pod networks, set up beside their sandbox and containers (make_sandbox)
        self._net_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kpy-net")
        self.store = ObjectStore(opts.root)
        from .volumes.manager import VolumeManager
        self.volumes = VolumeManager(opts.root, self.allocatable)
        self.workers: dict[str, PodWorker] = {}
        self.backoff = Backoff(crashloop_policy(opts.crashloop_max))
        self.pull_backoff = Backoff()
        self.node_ip: str | None = None
        self._events: list[dict] = []
        self.runner = None
        self.loop_alive = time.monotonic()
        self._registries = None
        self.static = None
        from .status.events import EventRecorder
        self.recorder = EventRecorder(host=self.node_name)
        from .metrics import NodeMetrics  # /metrics: a registry of this agent's own
        self.metrics = NodeMetrics(lambda: [w.record for w in self.workers.values()])
        from .prober.metrics import ProberMetrics
        self.prober_metrics = ProberMetrics(sink=self.metrics.observe_probe)

    # ---- helpers the workers use -------------------------------------------------------------
    rfc3339 = staticmethod(rfc3339)
    parse_time = staticmethod(parse_time)

    def registries(self):
        if self._registries is None:
            from runtime.image.registries import load_registries
            self._registries = load_registries(self.opts.registries if os.path.exists(self.opts.registries) else None)
        return self._registries

    def deletion_grace(self, pod: dict) -> float:
        md = pod["metadata"]
        if md.get("deletionGracePeriodSeconds") is not None:
            return float(md["deletionGracePeriodSeconds"])
        return float(pod["spec"].get("terminationGracePeriodSeconds", 30))

    def event(self, pod: dict, type_: str, reason: str, message: str, field: str | None = None) -> None:
        from .status.events import EventSpec
        self.recorder.record(pod, EventSpec(type_, reason, message, field or ""), time.time())
        self.metrics.event(type_, reason)  # kubelet_py_errors_total by reason

    def events(self, namespace: str, name: str | None) -> list[dict]:
        now = time.time()
        out = []
        for pod in self.store.list("Pod", namespace):
            if name is None or pod["metadata"]["name"] == name:
                out += [e.as_dict() for e in self.recorder.events(pod, now)]
        return sorted(out, key=lambda e: e["lastTimestamp"])

    def unhealthy(self) -> str | None:
        stuck = time.monotonic() - self.loop_alive
        return f"the sync loop has not run for {stuck:.0f}s" if stuck > 30 else None

    # ---- runtime and network, blocking (workers call them in threads) -----------------------
    def make_sandbox(self, pod: dict) -> tuple[Sandbox, str, Future]:
        """The pod's sandbox, its supervisor up, its IP allocated and its /etc files written:
        (sandbox, IP, the future of its PodNetwork). The rest of the network (veth, addresses,
        rules: ~10 ms) is set up in a thread of its own, begun as soon as the namespaces exist
        (while the supervisor comes up) and going on while the containers are created; they
        start once it is done. Until this returns, a failure of either leaves nothing of both;
        after, a failed future leaves nothing of the network, and the caller removes the
        sandbox (remove_sandbox)."""
        cfg = translate.sandbox_config(pod)
        uid = cfg.uid
        try:
            sb = rt.load_sandbox(self.paths.run_root, uid)  # an earlier attempt made it
        except RuntimeFailure:
            sb = None
        files: Future = Future()  # the IP, once the files are written
        net: Future = Future()

        def setup(sb) -> None:
            from netns.dnsfiles import pod_dns_from_spec
            md = pod["metadata"]
            try:
                dns = pod_dns_from_spec(uid, md["name"], md.get("namespace", "default"), pod["spec"])
                net.set_result(self.netns.setup_pod_network(
                    uid, sb.namespaces.get("network"), translate.port_mappings(pod), config=self.net, pod=dns,
                    files_dir=sb.files_dir, host_network=cfg.host_network, on_files=files.set_result))
            except BaseException as e:
                if not files.done():
                    files.set_exception(e)
                net.set_exception(e)
        if sb is not None:  # the network too, here
            setup(sb)
            try:
                return sb, files.result(), net
            except BaseException:
                rt.remove_pod_sandbox(self.images, self.paths, uid)
                raise
        made = []
        try:
            sb = rt.run_pod_sandbox(self.paths, cfg,
                                    meanwhile=lambda sb: made.append(self._net_pool.submit(setup, sb)))
            ip = files.result()
        except BaseException:
            if made:  # the network's own failure undid it; a whole one is taken down
                wait([made[0]])
                if net.exception() is None:
                    self.netns.teardown_pod_network(uid, config=self.net)
            if sb is not None:
                rt.remove_pod_sandbox(self.images, self.paths, uid)
            raise
        return sb, ip, net

    def create_container(self, worker: PodWorker, lst: str, i: int, restart_count: int,
                         env: dict[str, str] | None = None) -> str:
        """The container, its init prepared (all but its execve: runtime.pod.create_container):
        created while the pod network comes up, a start then costs a write."""
        pod = worker.pod
        c = pod["spec"][lst][i]
        cfg = translate.sandbox_config(pod)
        req = translate.container_request(pod, lst, i, env, node_security=self.node_security())
        req = dataclasses.replace(req, extra_mounts=list(req.extra_mounts) + self.container_mounts(pod, lst, i, req))
        return rt.create_container(
            self.images, self.paths, worker.uid, c["image"], req,
            log_path=rt.pod_log_path(self.opts.log_root, cfg, c["name"], restart_count), attempt=restart_count,
            labels={translate.CONTAINER_NAME_LABEL: c["name"], translate.POD_UID_LABEL: worker.uid,
                    translate.RESTART_COUNT_LABEL: str(restart_count)},
            stop_signal=translate.stop_signal(c), prepare=True)

    # ---- volumes and the security context (kubelet_py.volumes, kubelet_py.pods.security) ------------
    def node_security(self):
        from .pods.security import NodeSecurity
        return NodeSecurity(self.opts.seccomp_profile_root, tuple(self.opts.allowed_unsafe_sysctls))

    def admit_security(self, pod: dict) -> tuple[str, str] | None:
        """The kubelet's sysctl admission: (reason, message) of a refused pod (it ends Failed
        before anything is made for it), None when admitted."""
        from .pods.security import SecurityError, sysctls
        spec = pod["spec"]
        try:
            sysctls(spec.get("securityContext"), "spec.securityContext", self.node_security(),
                    bool(spec.get("hostNetwork")), bool(spec.get("hostIPC")))
        except SecurityError as e:
            return "SysctlForbidden", e.why
        return None

    def container_mounts(self, pod: dict, lst: str, i: int, req) -> list[dict]:
        """Blocking: the runAsNonRoot check against the image's user (upstream's messages), then
        the container's volume mounts (subPaths resolved and staged now). Either failure is a
        TranslateError with reason CreateContainerConfigError."""
        from .pods.security import SecurityError, verify_run_as_non_root
        from .volumes.content import VolumeError
        try:
            if req.run_as_non_root and req.uid is None:
                verify_run_as_non_root(pod, lst, i, self.images.image(pod["spec"][lst][i]["image"]).config.user or "")
            else:
                verify_run_as_non_root(pod, lst, i, "")
            return self.volumes.mounts(pod, lst, i, req.env)
        except (SecurityError, VolumeError) as e:
            err = translate.TranslateError(e.field, e.why)
            err.args = (str(e),)  # the kubelet's message as it is (no field for the runAsNonRoot ones)
            err.reason = "CreateContainerConfigError"
            raise err from None

    def volume_objects(self, pod: dict) -> dict:
        """On the event loop: the ConfigMaps and Secrets the pod's volumes name, as they are now."""
        from .volumes.content import referenced
        ns = pod["metadata"].get("namespace") or "default"
        return {(k, n): self.store.get(k, ns, n) for k, n in referenced(pod)}

    async def _refresh_volumes_on(self, kind: str) -> None:
        """A ConfigMap or Secret changed, or a pod's labels or annotations (downwardAPI): the
        API-data volumes of the running pods that use it are rewritten (the atomic writer) at once;
        _volume_period does it again every sync period in case an event was missed."""
        from .volumes.content import referenced
        watch = self.store.watch(kind)
        seen_meta: dict[str, tuple] = {}
        try:
            while True:
                _event, obj = await watch.queue.get()
                md = obj["metadata"]
                ns = md.get("namespace") or "default"
                if kind == "Pod":
                    meta = (md.get("labels"), md.get("annotations"))
                    if seen_meta.get(md.get("uid")) == meta:
                        continue
                    first = md.get("uid") not in seen_meta
                    seen_meta[md.get("uid")] = meta
                    w = self.workers.get(md.get("uid"))
                    if w is not None and not first and w.volumes_ready:
                        self._refresh_pod(w)
                    continue
                for w in list(self.workers.values()):
                    if (w.pod["metadata"].get("namespace") or "default") == ns \
                            and (kind, md["name"]) in referenced(w.pod):
                        if w.volumes_ready:
                            self._refresh_pod(w)
                        elif w.record.sandbox_ready:
                            w.wake.set()  # waiting on FailedMount for it: set up at once
        finally:
            watch.close()

    def _refresh_pod(self, w: PodWorker) -> None:
        """Rewrite the pod's API-data volumes in a thread, from the store's pod and objects as
        they are when the rewrite starts; one rewrite at a time per pod, and one more after it
        when something changed meanwhile (so the last state always wins)."""
        running = getattr(self, "_volume_refresh", None)
        if running is None:
            running = self._volume_refresh = {}
        if w.uid in running:
            running[w.uid] = True  # again, once the current one is done
            return
        running[w.uid] = False

        async def run():
            try:
                while True:
                    running[w.uid] = False
                    md = w.pod["metadata"]
                    cur = self.store.get("Pod", md.get("namespace") or "default", md["name"])
                    if cur is None or cur["metadata"].get("uid") != w.uid:
                        return
                    try:
                        names = await asyncio.to_thread(self.volumes.refresh, cur, self.volume_objects(cur))
                        if names:
                            log.info("pod %s: volumes %s updated", w.uid, ", ".join(names))
                    except Exception as e:  # noqa: BLE001 - logged; the next change or period tries again
                        log.warning("pod %s: updating volumes: %s", w.uid, e)
                    if not running.get(w.uid):
                        return
            finally:
                running.pop(w.uid, None)
        asyncio.get_running_loop().create_task(run(), name=f"volumes {w.uid}")

    async def _volume_period(self, period: float = 10.0) -> None:
        """Every sync period: API-data volumes refreshed; disk emptyDirs measured (du) and a pod
        whose emptyDir exceeds its sizeLimit evicted, as the eviction manager does."""
        while True:
            await asyncio.sleep(period)
            for w in list(self.workers.values()):
                if not w.volumes_ready or w.record.terminal or w.pod["metadata"].get("deletionTimestamp"):
                    continue
                self._refresh_pod(w)
                try:
                    over = await asyncio.to_thread(self.volumes.over_limit, w.pod)
                except OSError as e:
                    log.warning("pod %s: measuring emptyDir volumes: %s", w.uid, e)
                    continue
                if over:
                    name, _used, limit = over[0]
                    size = next((v.get("emptyDir", {}).get("sizeLimit") for v in w.pod["spec"].get("volumes") or []
                                 if v.get("name") == name), limit)
                    w.evict(f'Usage of EmptyDir volume "{name}" exceeds the limit "{size}". ')

    # ---- the container's environment (on the event loop: it reads the store) -------------------
    def container_env(self, worker: PodWorker, c: dict) -> dict[str, str]:
        """The container's environment (kubelet_py.pods.env) from the store's ConfigMaps and
        Secrets of the pod's namespace; envFrom keys that are not variable names are skipped with
        upstream's event. EnvError when a reference is missing (CreateContainerConfigError)."""
        from .pods.env import INVALID_ENV_NAMES, PodFacts, make_environment
        pod = worker.pod
        ns = pod["metadata"].get("namespace") or "default"
        facts = PodFacts(pod_ips=worker.record.pod_ips, host_ips=worker.record.host_ips,
                         allocatable=self.allocatable(), service_env=self.service_env(pod))
        made = make_environment(pod, c, lambda kind, name: self.store.get(kind, ns, name), facts)
        for s in made.skipped:
            self.event(pod, "Warning", INVALID_ENV_NAMES, s.message())
        return made.env

    def service_env(self, pod: dict) -> dict[str, str]:
        """The service variables of the pod's namespace (semantics 6.4), from the Services that
        exist now (a container created before a Service does not get it, as upstream)."""
        from .services.envvars import service_env
        return service_env(pod["metadata"].get("namespace") or "default",
                           pod["spec"].get("enableServiceLinks", True) is not False, self.store.list("Service"))

    def allocatable(self) -> dict[str, str]:
        """The node's allocatable cpu, memory and ephemeral-storage (quantity strings): what an
        unset limit is in a resourceFieldRef. Capacity less upstream's default hard eviction
        thresholds (memory.available<100Mi, nodefs.available<10%); no reservations. Read once."""
        if getattr(self, "_allocatable", None) is None:
            out = {"cpu": str(os.cpu_count() or 1)}
            try:
                with open("/proc/meminfo") as f:
                    kib = next(int(ln.split()[1]) for ln in f if ln.startswith("MemTotal:"))
                out["memory"] = str(max(0, kib * 1024 - (100 << 20)))
            except (OSError, StopIteration, ValueError) as e:
                log.warning("node allocatable memory unknown: %s", e)
            try:
                st = os.statvfs(self.opts.root if os.path.exists(self.opts.root) else "/")
                out["ephemeral-storage"] = str(st.f_blocks * st.f_frsize * 9 // 10)
            except OSError as e:
                log.warning("node allocatable ephemeral-storage unknown: %s", e)
            self._allocatable = out
        return self._allocatable

    async def _wake_on_config(self, kind: str) -> None:
        """A ConfigMap or Secret added, changed or removed: the pods of its namespace with a
        container waiting on CreateContainerConfigError try again at once."""
        watch = self.store.watch(kind)
        try:
            while True:
                _event, obj = await watch.queue.get()
                ns = obj["metadata"].get("namespace") or "default"
                for w in list(self.workers.values()):
                    if (w.pod["metadata"].get("namespace") or "default") == ns and any(
                            r.waiting_reason == "CreateContainerConfigError" for r in w.record.containers.values()):
                        w.wake.set()
        finally:
            watch.close()

    def runtime_start(self, uid: str, cid: str) -> int:
        return rt.start_container(self.paths, uid, cid)

    def container_status(self, uid: str, cid: str):
        return rt.container_status(self.paths, uid, cid)

    def stop_container(self, uid: str, cid: str, grace: float, sig: str | None):
        return rt.stop_container(self.paths, uid, cid, grace, sig)

    def remove_container(self, uid: str, cid: str) -> None:
        try:
            rt.remove_container(self.images, self.paths, uid, cid)
        except RuntimeFailure as e:
            log.warning("pod %s: removing container %s: %s", uid, cid, e)

    def remove_sandbox(self, pod: dict) -> None:
        uid = pod["metadata"]["uid"]
        rt.remove_pod_sandbox(self.images, self.paths, uid)
        self.netns.teardown_pod_network(uid, config=self.net)

    async def ensure_image(self, pod: dict, c: dict, fieldpath: str) -> None:
        image, policy = c["image"], c.get("imagePullPolicy", "IfNotPresent")
        from .pods.images import image_present
        present = await asyncio.to_thread(image_present, self.images, image)
        if present and policy != "Always":
            self.event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', fieldpath)
            return
        if policy != "Never":
            self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"', fieldpath)
        pulled, secs, size = await asyncio.to_thread(_ensure_image, self.images, self.registries(), image, policy)
        if pulled:
            self.metrics.image_pulled(secs, size)
            self.event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {secs:.3f}s '
                       f'({secs:.3f}s including waiting). Image size: {size} bytes.', fieldpath)

    async def run_hook(self, worker: PodWorker, name: str, cid: str, c: dict, hook: dict,
                       timeout: float | None) -> tuple[bool, str]:
        """A postStart/preStop handler: exec in the container, httpGet to the pod IP, or sleep;
        (ok, the failure's event message)."""
        from .prober.handlers import HookError, run_hook
        md = worker.pod["metadata"]
        try:
            await run_hook(hook, container=c, pod_ip=(worker.record.pod_ips or ("127.0.0.1",))[0],
                           exec_fn=lambda args, t: rt.exec_sync(self.paths, worker.uid, cid, args, t),
                           timeout=timeout, pod=f"{md['name']}_{md.get('namespace', 'default')}({worker.uid})")
        except HookError as e:
            return False, str(e)
        return True, ""

    def prober_for(self, worker: PodWorker):
        from .pods.probes import PodProbes
        return PodProbes(worker, self)

    async def follow_events(self, worker: PodWorker) -> None:
        """The pod's supervisor events, as long as the worker lives: an exit wakes the worker."""
        since, epoch = 0, None
        loop = asyncio.get_running_loop()
        while True:
            try:
                stream = await asyncio.to_thread(rt.events, self.paths, worker.uid, since, epoch)
            except SupervisorError as e:
                log.warning("pod %s: no events (%s); retrying", worker.uid, e)
                await asyncio.sleep(1.0)
                continue
            ready = asyncio.Event()
            loop.add_reader(stream.fileno(), ready.set)
            try:
                # anything that happened before we listened: compare with what the worker holds
                for ev in stream.poll(0):
                    await self._on_event(worker, ev)
                while True:
                    await ready.wait()
                    ready.clear()
                    for ev in stream.poll(0):
                        await self._on_event(worker, ev)
            except SupervisorError as e:
                log.warning("pod %s: event stream ended (%s)", worker.uid, e)
            finally:
                loop.remove_reader(stream.fileno())
                since, epoch = stream.seq, stream.epoch
                stream.close()
            await asyncio.sleep(0.5)

    async def _on_event(self, worker: PodWorker, ev: dict) -> None:
        if ev["type"] == "exited":
            await worker.container_exited(ev["id"])
        elif ev["type"] == "resync":
            for name, cid in list(worker.cids.items()):
                await worker.container_exited(cid)

    def publish_status(self, worker: PodWorker) -> None:
        from .status.podstatus import pod_status
        pod = self.store.get("Pod", worker.pod["metadata"].get("namespace", "default"), worker.pod["metadata"]["name"])
        if pod is None or pod["metadata"].get("uid") != worker.uid:
            return
        status = pod_status(pod, worker.record, time.time(), pod.get("status"))
        status.setdefault("hostIP", self.node_ip) if self.node_ip else None
        self.metrics.pod_status(pod, status)  # pod start duration, restarts
        if status != pod.get("status"):
            self.store.put({**pod, "status": status}, durable=False)

    def pod_removed(self, pod: dict) -> None:
        """The pod's worker is done after a deletion: the object goes, with its logs."""
        import shutil
        md = pod["metadata"]
        shutil.rmtree(os.path.join(self.opts.log_root, f"{md.get('namespace', 'default')}_{md['name']}_{md['uid']}"),
                      ignore_errors=True)
        cur = self.store.get("Pod", md.get("namespace", "default"), md["name"])
        if cur is not None and cur["metadata"].get("uid") == md["uid"]:
            self.store.remove("Pod", md.get("namespace", "default"), md["name"])
        self.workers.pop(md["uid"], None)
        self.recorder.forget(pod)
        self.metrics.pod_gone(md["uid"])
        if self.static:
            self.static.poke()


def _gateway_of(cidr: str) -> str:
    import ipaddress
    net = ipaddress.IPv4Network(cidr, strict=False)
    return f"{net.network_address + 1}/{net.prefixlen}"


class _NodeControl:
    """Start-up and what the API, the sources and the CLI's embedded mode call."""

    # ---- start-up ------------------------------------------------------------------------------
    async def start(self, serve_socket: bool = True) -> None:
        from concurrent.futures import ThreadPoolExecutor
        # every runtime, network and exec-probe call is blocking and runs in a thread: asyncio's
        # default pool (cpus + 4) would let a few slow calls hold up every pod
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64,
                                                                           thread_name_prefix="kpy-call"))
        bad = self.store.load()
        for path in bad:
            log.error("checkpoint %s skipped", path)
        for ns in DEFAULT_NAMESPACES:
            if self.store.get("Namespace", "", ns) is None:
                self.store.put(self.admit_new({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        self.node_ip = await asyncio.to_thread(_node_ip)
        await asyncio.to_thread(rt.prepare)  # the supervisors' zygote, warm before the first pod
        wanted = {p["metadata"]["uid"] for p in self.store.list("Pod")}
        removed = await asyncio.to_thread(rt.gc, self.images, self.paths, wanted)
        removed += await asyncio.to_thread(self.volumes.gc, wanted)  # after the containers that mounted them
        for what in removed:
            log.info("removed %s: it belongs to no desired pod", what)
        await asyncio.to_thread(self.netns.gc, wanted, config=self.net)
        for pod in self.store.list("Pod"):
            await self.adopt(pod)
        self._watch_task = asyncio.get_running_loop().create_task(self._follow_store(), name="store")
        self._tick_task = asyncio.get_running_loop().create_task(self._tick(), name="tick")
        self._config_tasks = [asyncio.get_running_loop().create_task(self._wake_on_config(k), name=f"wake on {k}")
                              for k in ("ConfigMap", "Secret")]
        self._config_tasks += [asyncio.get_running_loop().create_task(self._refresh_volumes_on(k), name=f"volumes {k}")
                               for k in ("ConfigMap", "Secret", "Pod")]
        self._config_tasks.append(asyncio.get_running_loop().create_task(self._volume_period(), name="volume period"))
        if self.opts.manifests:
            from .config.static import StaticPods
            self.static = StaticPods(self, self.opts.manifests)
            self.static.start()
        from .services.controller import ServicesController
        self.services = ServicesController(self, self.service_network)
        await self.services.start()
        if serve_socket:
            from .server.api import Api
            self.runner = await Api(self).start(self.opts.socket)
            from .server.listen import start_listener  # --listen: the read-only node endpoints over TCP
            self.listener = await start_listener(self)

    async def stop(self) -> None:
        """Stop serving and watching; pods and supervisors run on (as the kubelet leaves them)."""
        if self.static:
            self.static.stop()
        if self.services:
            await self.services.stop()
        for t in (getattr(self, "_watch_task", None), getattr(self, "_tick_task", None),
                  *getattr(self, "_config_tasks", ())):
            if t:
                t.cancel()
        for w in list(self.workers.values()):
            if w.task:
                w.task.cancel()
        if self.runner:
            await self.runner.cleanup()
        if getattr(self, "listener", None):
            await self.listener.cleanup()
        self._net_pool.shutdown(wait=False)

    async def _tick(self) -> None:
        while True:
            self.loop_alive = time.monotonic()
            await asyncio.sleep(1.0)

    async def adopt(self, pod: dict) -> None:
        """A pod the checkpoint holds: what of it runs is taken over as it is (same containers,
        same pids, restart counts from the attempts), exits recorded while we were away learned."""
        from .pods.worker import _instance
        from .status.records import ContainerRecord, PodRecord
        w = PodWorker(self, pod)
        uid = w.uid
        try:
            st = await asyncio.to_thread(rt.pod_status, self.paths, uid)
        except RuntimeFailure:
            st = None
        if st is not None:
            if st.sandbox.state != "ready":
                await asyncio.to_thread(rt.recover_supervisor, self.paths, uid)
                st = await asyncio.to_thread(rt.pod_status, self.paths, uid)
            by_name: dict[str, list] = {}
            for c in st.containers:
                if c.state == "created":  # made, never started (we died before its start): made again
                    await asyncio.to_thread(self.remove_container, uid, c.id)
                    continue
                by_name.setdefault(c.name, []).append(c)
            recs = {}
            for name, insts in by_name.items():
                insts.sort(key=lambda c: c.attempt)
                cur = insts[-1]
                prev = insts[-2] if len(insts) > 1 else None
                for c in insts:
                    w.names[c.id] = name
                w.cids[name] = cur.id
                recs[name] = ContainerRecord(current=_instance(cur), restart_count=cur.attempt,
                                             previous=_instance(prev).terminated() if prev and prev.state == "exited" else None)
            try:
                net = await asyncio.to_thread(self.netns.pod_network, uid, config=self.net)
                ips = (net.ip,)
            except Exception as e:  # noqa: BLE001 - a partial network is repaired by the sync
                log.warning("pod %s: network: %s", uid, e)
                net, ips = None, ()
            status = pod.get("status") or {}
            w.record = PodRecord(containers=recs, sandbox_ready=net is not None, pod_ips=ips,
                                 host_ips=(self.node_ip,) if self.node_ip else (), start_time=status.get("startTime"))
            if net is not None:
                w.sandbox = await asyncio.to_thread(rt.load_sandbox, self.paths.run_root, uid)
                w.watch_events()
                w.probes = self.prober_for(w)
                for name, cid in w.cids.items():
                    c, _ = w._spec_of(name)
                    if c is not None and recs[name].state == "running" and w.probes:
                        w.probes.container_started(name, cid, c)
        self.workers[uid] = w
        w.start()

    async def _follow_store(self) -> None:
        """Pods added, changed or removed in the store reach their workers."""
        watch = self.store.watch("Pod")
        while True:
            event, pod = await watch.queue.get()
            uid = pod["metadata"]["uid"]
            if event == "DELETED":
                continue
            w = self.workers.get(uid)
            if w is None:
                if event == "ADDED":
                    self.metrics.pod_seen(uid)  # kubelet_pod_start_duration_seconds counts from here
                    w = PodWorker(self, pod)
                    self.workers[uid] = w
                    w.start()
            elif pod.get("spec") != w.pod.get("spec") or pod["metadata"].get("deletionTimestamp") != \
                    w.pod["metadata"].get("deletionTimestamp") or pod["metadata"].get("labels") != w.pod["metadata"].get("labels"):
                w.update(pod)

    # ---- desired state -------------------------------------------------------------------------
    def admit_new(self, obj: dict) -> dict:
        """An object the agent makes itself (its namespaces): defaulted, with create metadata."""
        from .api.load import admit
        from .api.update import create
        return create(admit(obj).obj, time.time(), lambda: str(uuid.uuid4()))

    def admit_static(self, pod: dict) -> dict:
        """A static pod as stored: create's metadata, with the uid its content gave it."""
        from .api.update import create
        uid = pod["metadata"]["uid"]
        return create(pod, time.time(), lambda: uid)

    async def apply(self, items: list[dict], strict: bool = False, create_only: bool = False,
                    dry_run: bool = False) -> list[dict]:
        """Create or update each object as the API server would (admitted first: every error at
        once, nothing of an invalid object stored). Per object: action, object, warnings."""
        from .api.errors import ApiError as FieldErrors
        from .api.load import admit
        from .api.update import create, update
        from .api.validation import check_namespaces
        from .server.errors import ApiError
        admitted = []
        namespaces = {n["metadata"]["name"] for n in self.store.list("Namespace")}
        errors = []
        for obj in items:
            try:
                doc = admit(obj, strict=strict)
            except FieldErrors as e:
                errors.append(str(e))
                continue
            errs = check_namespaces(doc.obj, namespaces | {o["metadata"]["name"] for o, _ in admitted
                                                          if o.get("kind") == "Namespace"})
            if errs:  # the API server's answer for a missing namespace
                ns = doc.obj["metadata"].get("namespace", "default")
                raise ApiError(404, f'namespaces "{ns}" not found', "NotFound",
                               details={"name": ns, "kind": "namespaces"})
            admitted.append((doc.obj, [str(w) for w in doc.warnings]))
        if errors:
            raise ApiError(422, "\n".join(errors), "Invalid")
        out = []
        for obj, warnings in admitted:
            kind, md = obj["kind"], obj["metadata"]
            ns = md.get("namespace") or "default"
            old = self.store.get(kind, ns, md["name"])
            if old is not None and create_only:
                raise ApiError(409, f'{kind.lower()}s "{md["name"]}" already exists')
            ns_obj = self.store.get("Namespace", "", ns)
            if kind != "Namespace" and ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(403, f"unable to create new content in namespace {ns} because it is being "
                               "terminated", "Forbidden")
            if old is not None and old["metadata"].get("deletionTimestamp"):
                raise ApiError(409, f'{kind.lower()} "{md["name"]}" is being deleted: apply again once it is gone')
            if old is None:
                if kind == "Pod" and len(self.store.list("Pod")) >= self.opts.max_pods:
                    raise ApiError(422, f"the node runs its maximum of {self.opts.max_pods} pods (--max-pods)")
                if kind == "Pod" and not obj["spec"].get("nodeName"):  # bound here, as a scheduler would
                    obj = {**obj, "spec": {**obj["spec"], "nodeName": self.node_name}}
                stored, action = create(obj, time.time(), lambda: str(uuid.uuid4())), "created"
            else:
                if kind == "Pod" and not obj["spec"].get("nodeName"):  # bound at create: kept
                    obj = {**obj, "spec": {**obj["spec"], "nodeName": old["spec"].get("nodeName")}}
                try:
                    stored = update(old, obj)
                except FieldErrors as e:
                    raise ApiError(422, str(e), "Invalid") from None
                action = "unchanged" if stored is old or stored == old else "configured"
            if kind == "Service" and action != "unchanged":
                stored = self._allocate_service(stored)
            if not dry_run and action != "unchanged":
                stored = self.store.put(stored)
            out.append({"action": action, "object": stored, "warnings": warnings})
        return out

    def _allocate_service(self, svc: dict) -> dict:
        """ClusterIP and nodePorts as the API server's allocators hand them out, on a created
        Service or an updated one (which holds what the stored one held: api.update)."""
        from .api.errors import ApiError as FieldErrors
        from .server.errors import ApiError
        from .services.alloc import allocate
        try:
            return allocate(svc, self.store.list("Service"), self.service_network.alloc_config())
        except FieldErrors as e:
            raise ApiError(422, str(e), "Invalid") from None

    async def delete(self, kind: str, namespace: str, name: str, grace: int | None = None) -> dict:
        from .server.errors import ApiError
        obj = self.store.get(kind, namespace, name)
        if obj is None:
            raise ApiError(404, f'{kind.lower()}s "{name}" not found', details={"name": name, "kind": f"{kind.lower()}s"})
        if kind == "Pod":
            md = obj["metadata"]
            g = grace if grace is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
            if md.get("deletionTimestamp") and (md.get("deletionGracePeriodSeconds") or 0) <= g:
                return obj
            md["deletionTimestamp"] = rfc3339(time.time() + g)
            md["deletionGracePeriodSeconds"] = g
            if obj["metadata"]["uid"] not in self.workers:  # nothing runs it: gone at once
                return self.store.remove(kind, namespace, name)
            return self.store.put(obj)
        if kind == "Namespace":
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, f'namespace "{name}" may not be deleted', "Forbidden")
            # Terminating until its pods are gone, as the namespace controller does
            obj["metadata"].setdefault("deletionTimestamp", rfc3339(time.time()))
            obj["status"] = {**(obj.get("status") or {}), "phase": "Terminating"}
            obj = self.store.put(obj)
            for pod in self.store.list("Pod", name):
                await self.delete("Pod", name, pod["metadata"]["name"])
            asyncio.get_running_loop().create_task(self._finish_namespace(name))
            return obj
        return self.store.remove(kind, namespace, name)

    async def _finish_namespace(self, name: str) -> None:
        while self.store.list("Pod", name):
            await asyncio.sleep(0.2)
        self.store.remove("Namespace", "", name)

    # ---- logs and exec -------------------------------------------------------------------------
    def _pod_container(self, namespace: str, name: str, container: str | None):
        from .server.errors import ApiError
        pod = self.store.get("Pod", namespace, name)
        if pod is None:
            raise ApiError(404, f'pods "{name}" not found')
        names = [c["name"] for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]]
        if container is None:
            if len(pod["spec"]["containers"]) > 1:
                default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
                container = default or pod["spec"]["containers"][0]["name"]
            else:
                container = pod["spec"]["containers"][0]["name"]
        if container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        return pod, container

    def log_reader(self, namespace: str, name: str, container: str | None, previous: bool, tail: int | None,
                   since: float | None, timestamps: bool, follow: bool):
        from .logs import read_log
        from .server.errors import ApiError
        pod, container = self._pod_container(namespace, name, container)
        statuses = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses", []) +
                    (pod.get("status") or {}).get("initContainerStatuses", [])}
        st = statuses.get(container) or {}
        restarts = int(st.get("restartCount", 0))
        if previous:
            if not st.get("lastState", {}).get("terminated"):
                raise ApiError(400, f'previous terminated container "{container}" in pod "{name}" not found')
            restarts -= 1
        if not st.get("state") or "waiting" in st.get("state", {}) and not previous and not st.get("lastState"):
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: '
                           f'{st.get("state", {}).get("waiting", {}).get("reason", "ContainerCreating")}')
        cfg = translate.sandbox_config(pod)
        path = rt.pod_log_path(self.opts.log_root, cfg, container, max(restarts, 0))
        uid = pod["metadata"]["uid"]

        def running() -> bool:
            w = self.workers.get(uid)
            return bool(w and not previous and w._rec(container).state == "running" and w.cids.get(container))
        return read_log(path, tail=tail, since=since, timestamps=timestamps, follow=follow, still_running=running)

    async def exec_session(self, namespace: str, name: str, container: str | None, cmd: list[str], tty: bool,
                           stdin: bool):
        from .server.errors import ApiError
        from .server.execstream import ExecSession
        pod, container = self._pod_container(namespace, name, container)
        w = self.workers.get(pod["metadata"]["uid"])
        cid = w.cids.get(container) if w else None
        if cid is None or w._rec(container).state != "running":
            raise ApiError(400, f"container {container} is not running")
        return ExecSession(self.paths, w.uid, cid, cmd, tty=tty, stdin=stdin)


def _node_ip() -> str | None:
    try:
        import netns.netlink as nl
        return nl.node_ip()
    except Exception:  # noqa: BLE001 - no default route: no node IP to report
        return None


class NodeAgent(_NodeControl, _NodeRuntime):
    """The agent: _NodeRuntime (what workers use) and _NodeControl (start-up, desired state,
    logs and exec)."""
    pass
