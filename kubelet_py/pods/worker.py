"""One worker per pod (an asyncio task): it compares the desired pod with what runs and acts,
as the kubelet's pod worker and kuberuntime's SyncPod do:

    sandbox (its network set up meanwhile, awaited before each start) -> init containers one by
    one (sidecars stay) -> app containers ->
    restarts per restartPolicy with back-off -> status
    deletion: preStop, the stop signal, the grace period, SIGKILL; sandbox and network removed

Every call into the runtime or the network blocks, so it runs in a thread (`to_thread`): the
runtime is safe for that. Container exits arrive as the supervisor's events (the PLEG's
part), probe results from the prober; each wakes the worker, which syncs again. No worker ever
waits on another. What the worker learns is kept in a `PodRecord` (kubelet_py.status.records),
the only input of the status computation."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from runtime.errors import DEADLINE_EXCEEDED, FAILED_PRECONDITION, NOT_FOUND, RuntimeFailure

from ..status.backoff import image_pull_key, stable_key
from ..status.reasons import crashloop_message, image_pull_backoff_message
from ..status.records import ContainerRecord, Instance, PodRecord
from . import translate
from .env import EnvError
from .images import ImagePullError

log = logging.getLogger("kubelet_py.pods")

MIN_KILL_GRACE = 2.0  # seconds the stop signal always gets after a preStop hook (upstream's floor)
ENV_RETRY = 10.0  # a missing ConfigMap/Secret is looked for again (upstream's resync), or when one changes


def _instance(st) -> Instance:
    """runtime.pod.ContainerStatus -> the status layer's Instance."""
    return Instance(state=st.state, container_id=st.id, image=st.image or "", image_id=st.image_id or "",
                    started_at=st.started_at, finished_at=st.finished_at, exit_code=st.exit_code,
                    signal=st.signal or 0, reason=st.reason or "", message=st.message or "")


class PodWorker:
    def __init__(self, agent, pod: dict):
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.record = PodRecord()
        self.cids: dict[str, str] = {}  # container name -> the current instance's id
        self.names: dict[str, str] = {}  # container id -> name (every instance we made)
        self.backoff = agent.backoff  # crash-loop back-off (kubelet_py.status.backoff), shared by the node
        self.pull_backoff = agent.pull_backoff
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.sandbox = None
        self.network: asyncio.Future | None = None  # the pod network being set up (make_sandbox)
        self.stream_task: asyncio.Task | None = None
        self.next_wake: float | None = None
        self.done = asyncio.Event()
        self.killing: set[str] = set()
        self.probes = None  # the prober's handle for this pod (started with the sandbox)
        self.volumes_ready = False  # the pod's volumes set up (kubelet_py.volumes), after the sandbox
        self.evicted: str | None = None  # the eviction manager's message, carried out by the next sync
        self.admitted = False  # passed the node's admission of its securityContext (sysctls)

    # ---- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"pod {self.uid}")
        self.wake.set()

    def update(self, pod: dict) -> None:
        self.pod = pod
        self.wake.set()

    async def run(self) -> None:
        try:
            while True:
                timeout = None if self.next_wake is None else max(0.0, self.next_wake - time.monotonic())
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
                self.wake.clear()
                self.next_wake = None
                try:
                    if await self.sync():
                        break
                except Exception as e:  # noqa: BLE001 - a failed sync is retried, never fatal
                    log.exception("pod %s: sync failed", self.uid)
                    self.agent.event(self.pod, "Warning", "FailedSync", f"error syncing pod: {e}")
                    self._wake_in(2.0)
        finally:
            if self.stream_task:
                self.stream_task.cancel()
            if self.probes:
                await self.probes.stop_all()
            self.done.set()

    def _wake_in(self, seconds: float) -> None:
        at = time.monotonic() + max(0.0, seconds)
        if self.next_wake is None or at < self.next_wake:
            self.next_wake = at

    def _set(self, name: str, **changes) -> None:
        rec = self.record.containers.get(name) or ContainerRecord()
        self.record = dataclasses.replace(self.record, containers={**self.record.containers,
                                                                   name: dataclasses.replace(rec, **changes)})

    def _rec(self, name: str) -> ContainerRecord:
        return self.record.containers.get(name) or ContainerRecord()

    # ---- the sync --------------------------------------------------------------------------
    async def sync(self) -> bool:
        """One pass; True when the worker is finished (the pod is gone)."""
        pod = self.pod
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            if self.probes:
                self.probes.pod_deleting()
            await self.kill_pod(self.agent.deletion_grace(pod), "Stopping container")
            self.agent.pod_removed(pod)
            return True
        if self.record.terminal:
            self.publish()
            return False
        now = time.time()
        if self.record.start_time is None:
            self.record = dataclasses.replace(self.record, start_time=self.agent.rfc3339(now))
            self.agent.event(pod, "Normal", "Scheduled", f"Successfully assigned {md.get('namespace', 'default')}/"
                             f"{md['name']} to {self.agent.node_name}")
        deadline = pod["spec"].get("activeDeadlineSeconds")
        if deadline:
            left = self.agent.parse_time(self.record.start_time) + int(deadline) - now
            if left <= 0:
                self.agent.event(pod, "Normal", "DeadlineExceeded",
                                 "Pod was active on the node longer than the specified deadline")
                await self.kill_pod(self.agent.deletion_grace(pod), "Stopping container")
                self.record = dataclasses.replace(self.record, terminal=True, reason="DeadlineExceeded",
                                                  message="Pod was active on the node longer than the specified deadline")
                self.publish()
                return False
            self._wake_in(left)
        if self.evicted is not None:
            self.agent.event(pod, "Warning", "Evicted", self.evicted)
            await self.kill_pod(0.0, "Stopping container")
            self.record = dataclasses.replace(self.record, terminal=True, reason="Evicted", message=self.evicted)
            self.publish()
            return False
        if not self.record.sandbox_ready and self.record.start_time is not None and not self.admitted:
            refused = self.agent.admit_security(pod)  # the kubelet's sysctl admission: (reason, message)
            if refused:
                self.agent.event(pod, "Warning", refused[0], refused[1])
                self.record = dataclasses.replace(self.record, terminal=True, reason=refused[0],
                                                  message=f"Pod was rejected: {refused[1]}")
                self.publish()
                return False
            self.admitted = True
        if not self.record.sandbox_ready:
            if not await self.ensure_sandbox():
                self.publish()
                return False
        if not self.volumes_ready:
            if not await self.ensure_volumes():
                self.publish()
                return False
        if self.network is not None and self.network.done() and not await self.network_ready():
            self.publish()
            return False
        await self.sync_containers()
        self.publish()
        return False

    async def ensure_sandbox(self) -> bool:
        try:
            sb, ip, net = await asyncio.to_thread(self.agent.make_sandbox, self.pod)
        except Exception as e:  # noqa: BLE001 - reported on the pod and retried
            self._sandbox_failed(e)
            return False
        self.sandbox = sb
        self.network = asyncio.wrap_future(net)
        self.network.add_done_callback(lambda _f: self.wake.set())  # a failure is seen even with no start waiting
        self.record = dataclasses.replace(self.record, sandbox_ready=True, pod_ips=(ip,),
                                          host_ips=(self.agent.node_ip,) if self.agent.node_ip else ())
        self.watch_events()
        self.probes = self.agent.prober_for(self)
        return True

    def _sandbox_failed(self, e: BaseException) -> None:
        log.warning("pod %s: sandbox: %s", self.uid, e)
        self.agent.event(self.pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
        self._wake_in(5.0)

    async def network_ready(self) -> bool:
        """Whether the pod network is set up (make_sandbox goes on with it while the containers
        are created): awaited before each start. A failure is the sandbox's: reported as
        FailedCreatePodSandBox, the sandbox and its containers removed, all tried again."""
        fut = self.network
        if fut is None:
            return self.record.sandbox_ready
        try:
            await asyncio.shield(fut)
        except Exception as e:  # noqa: BLE001 - reported on the pod and retried
            if self.network is fut:  # the first container to see it takes the pod down
                self.network = None
                self._sandbox_failed(e)
                # not ready from now on, even if the removal fails (the next sync makes it again)
                self.record = dataclasses.replace(self.record, sandbox_ready=False, pod_ips=())
                await self.kill_pod(0.0, "")
            return False
        if self.network is fut:
            self.network = None
        return True

    async def ensure_volumes(self) -> bool:
        """The pod's volumes, after its sandbox and before its first container (idempotent: an
        adopted pod's are found as they are). A failure is upstream's FailedMount, tried again."""
        from ..volumes.content import VolumeError
        md = self.pod["metadata"]  # the store's copy: its labels and annotations are the latest
        cur = self.agent.store.get("Pod", md.get("namespace") or "default", md["name"])
        pod = cur if cur is not None and cur["metadata"].get("uid") == self.uid else self.pod
        try:
            await asyncio.to_thread(self.agent.volumes.setup, pod, self.agent.volume_objects(pod))
        except VolumeError as e:
            log.info("pod %s: volume %s: %s", self.uid, e.volume, e)
            self.agent.event(self.pod, "Warning", "FailedMount",
                             f'MountVolume.SetUp failed for volume "{e.volume}" : {e}')
            self._wake_in(2.0 if e.retry else 10.0)
            return False
        self.volumes_ready = True
        return True

    def evict(self, message: str) -> None:
        """The eviction manager's verdict (a disk emptyDir over its sizeLimit): the next sync
        kills every container at once and the pod ends Failed, reason Evicted."""
        if self.evicted is None and not self.record.terminal:
            self.evicted = message
            self.wake.set()

    def watch_events(self) -> None:
        if self.stream_task is None or self.stream_task.done():
            self.stream_task = asyncio.get_running_loop().create_task(self.agent.follow_events(self),
                                                                      name=f"events {self.uid}")

    async def sync_containers(self) -> None:
        spec = self.pod["spec"]
        policy = spec.get("restartPolicy", "Always")
        # init containers: one at a time; a sidecar must be started before the next
        for i, c in enumerate(spec.get("initContainers") or []):
            name = c["name"]
            rec = self._rec(name)
            sidecar = c.get("restartPolicy") == "Always"
            st = rec.state
            if sidecar:
                if st in (None, "exited", "unknown"):
                    await self.maybe_start("initContainers", i, c, restart=st is not None, policy="Always")
                    return
                if st == "running" and (rec.started is False):
                    return  # its startup probe has not passed yet
                continue
            if st == "exited" and rec.current.exit_code == 0:
                continue
            if st in ("running", "created"):
                return
            if st in ("exited", "unknown"):
                if policy == "Never":
                    self.record = dataclasses.replace(self.record, terminal=True)
                    await self.stop_sidecars()
                    return
                await self.maybe_start("initContainers", i, c, restart=True, policy="Always")
                return
            await self.maybe_start("initContainers", i, c, restart=False, policy=policy)
            return
        # app containers
        will_run = False
        starts: list[tuple[int, dict, bool]] = []  # (index, container, restart): started below
        for i, c in enumerate(spec.get("containers") or []):
            name = c["name"]
            rec = self._rec(name)
            st = rec.state
            if st in ("running", "created") and rec.current.image and rec.current.image != c["image"]:
                # `apply` changed its image: the kubelet kills it and starts the new definition
                will_run = True
                self.agent.event(self.pod, "Normal", "Killing", f"Container {name} definition changed, will be restarted",
                                 field=f"spec.containers{{{name}}}")
                await self.kill_container(name, self.agent.deletion_grace(self.pod), None)
                await self.start_container("containers", i, c)
                continue
            if st in ("running", "created"):
                will_run = True
                continue
            if name in self.killing:
                will_run = True
                continue
            if st is None:
                will_run = True
                starts.append((i, c, False))
                continue
            code = rec.current.exit_code if rec.current.exit_code is not None else 255
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                will_run = True
                starts.append((i, c, True))
        await self.start_in_order(starts, policy)
        if not will_run:
            # nothing runs and nothing will: the pod is done (phase from the exit codes)
            await self.stop_sidecars()
            self.record = dataclasses.replace(self.record, terminal=True)

    async def stop_sidecars(self) -> None:
        for c in reversed(self.pod["spec"].get("initContainers") or []):
            if c.get("restartPolicy") == "Always" and self._rec(c["name"]).state == "running":
                await self.kill_container(c["name"], self.agent.deletion_grace(self.pod), "Stopping container")

    async def start_in_order(self, starts: list[tuple[int, dict, bool]], policy: str) -> None:
        """App containers, started in their order as the kubelet does; with none having a
        postStart hook (which must finish before the next container starts), each one's image
        check, environment and create (its rootfs and bundle) overlap the starts of those before
        it: only the starts themselves wait their turn."""
        if len(starts) < 2 or any((c.get("lifecycle") or {}).get("postStart") for _i, c, _r in starts):
            for i, c, restart in starts:
                await self.maybe_start("containers", i, c, restart=restart, policy=policy)
            return
        turns = [asyncio.Event() for _ in starts]

        async def in_turn(k: int, i: int, c: dict, restart: bool) -> None:
            try:
                await self.maybe_start("containers", i, c, restart=restart, policy=policy,
                                       turn=turns[k - 1].wait if k else None)
            finally:
                turns[k].set()  # the next one's start goes on, whatever became of this one
        results = await asyncio.gather(*(in_turn(k, i, c, r) for k, (i, c, r) in enumerate(starts)),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def maybe_start(self, lst: str, i: int, c: dict, restart: bool, policy: str, turn=None) -> None:
        """Start the container now, or once its back-off has passed (CrashLoopBackOff)."""
        name = c["name"]
        rec = self._rec(name)
        if restart and rec.current is not None:
            key, now = stable_key(self.pod, c), time.time()
            wait = self.backoff.should_wait(key, now, rec.current.finished_at)
            if wait > 0:
                self._set(name, waiting_reason="CrashLoopBackOff",
                          waiting_message=crashloop_message(self.backoff.get(key), name, self.pod))
                self.agent.event(self.pod, "Warning", "BackOff",
                                 f"Back-off restarting failed container {name} in pod "
                                 f"{self.pod['metadata']['name']}_{self.pod['metadata'].get('namespace', 'default')}"
                                 f"({self.uid})", field=f"spec.{lst}{{{name}}}")
                self._wake_in(wait)
                return
            self.backoff.next(key, now, rec.current.finished_at)
        await self.start_container(lst, i, c, turn)

    async def start_container(self, lst: str, i: int, c: dict, turn=None) -> None:
        """Image, environment, create, then start (`turn`: awaited just before the start)."""
        name = c["name"]
        rec = self._rec(name)
        fieldpath = f"spec.{lst}{{{name}}}"
        image = c["image"]
        # image, with its own back-off after a failed pull
        pkey = image_pull_key(self.pod, image)
        wait = self.pull_backoff.pull_wait(pkey, time.time())
        if wait > 0:
            self._set(name, waiting_reason="ImagePullBackOff", waiting_message=image_pull_backoff_message(image))
            self._wake_in(wait)
            return
        try:
            await self.agent.ensure_image(self.pod, c, fieldpath)
        except ImagePullError as e:
            delay = self.pull_backoff.next(pkey, time.time())
            self._set(name, waiting_reason=e.reason, waiting_message=str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e.reason}", field=fieldpath)
            self._wake_in(min(delay, 1.0))  # ErrImagePull, then ImagePullBackOff until the delay is over
            return
        self.pull_backoff.reset(pkey)
        try:  # the environment (ConfigMaps, Secrets, the downward API), read from the store here
            env = self.agent.container_env(self, c)
        except EnvError as e:  # retried on the next sync, or at once when a ConfigMap/Secret changes
            self._set(name, waiting_reason=e.reason, waiting_message=str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e}", field=fieldpath)
            self._wake_in(ENV_RETRY)
            return
        restart_count = rec.restart_count + (1 if rec.current is not None else 0)
        previous = rec.current.terminated() if rec.current is not None and rec.current.state == "exited" else rec.previous
        old_cid = self.cids.get(name)
        try:
            cid = await asyncio.to_thread(self.agent.create_container, self, lst, i, restart_count, env)
        except (RuntimeFailure, translate.TranslateError) as e:
            reason = getattr(e, "reason", None) or ("CreateContainerConfigError" if getattr(e, "kind", "") in (
                "INVALID_ARGUMENT", FAILED_PRECONDITION) and "runAsNonRoot" in str(e) else "CreateContainerError")
            self._set(name, waiting_reason=reason, waiting_message=str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e}", field=fieldpath)
            self._wake_in(10.0)
            return
        if old_cid:  # the dead instance goes; its end stays in the record as lastState
            await asyncio.to_thread(self.agent.remove_container, self.uid, old_cid)
        self.cids[name] = cid
        self.names[cid] = name
        self.agent.event(self.pod, "Normal", "Created", f"Created container: {name}", field=fieldpath)
        if not await self.network_ready():
            return  # the pod's sandbox goes (its containers with it) and is made again
        if turn is not None:
            await turn()
        try:
            await asyncio.to_thread(self.agent.runtime_start, self.uid, cid)
        except RuntimeFailure as e:
            st = await asyncio.to_thread(self.agent.container_status, self.uid, cid)
            self._set(name, current=_instance(st), previous=previous, restart_count=restart_count,
                      waiting_reason="RunContainerError", waiting_message=str(e))
            self.agent.event(self.pod, "Warning", "Failed", f"Error: {e}", field=fieldpath)
            return
        st = await asyncio.to_thread(self.agent.container_status, self.uid, cid)
        has_startup = bool(c.get("startupProbe"))
        now = self._rec(name).current
        # a command that ends at once may have had its exit learned meanwhile (container_exited):
        # that is newer than the status read above
        inst = now if now is not None and now.container_id == cid and now.state == "exited" else _instance(st)
        self._set(name, current=inst, previous=previous, restart_count=restart_count, waiting_reason="",
                  waiting_message="", started=False if has_startup else None, ready=False)
        self.agent.event(self.pod, "Normal", "Started", f"Started container {name}", field=fieldpath)
        self.wake.set()  # the next step (the next init container, the status) follows at once
        if self.probes and inst.state == "running":
            self.probes.container_started(name, cid, c)
        hook = (c.get("lifecycle") or {}).get("postStart")
        if hook:
            ok, why = await self.agent.run_hook(self, name, cid, c, hook, timeout=None)
            if not ok:
                self.agent.event(self.pod, "Warning", "FailedPostStartHook", why, field=fieldpath)
                await self.kill_container(name, self.agent.deletion_grace(self.pod), "FailedPostStartHook")
                self._set(name, waiting_reason="PostStartHookError", waiting_message=why)

    # ---- what the runtime tells --------------------------------------------------------------
    async def container_exited(self, cid: str) -> None:
        name = self.names.get(cid)
        if name is None or self.cids.get(name) != cid:
            return
        try:
            st = await asyncio.to_thread(self.agent.container_status, self.uid, cid)
        except RuntimeFailure as e:
            if e.kind != NOT_FOUND:
                raise
            return
        self._set(name, current=_instance(st), ready=False)
        if self.probes:
            self.probes.container_stopped(name)
        self.wake.set()

    def probe_changed(self, name: str, started: bool | None = None, ready: bool | None = None) -> None:
        changes = {}
        if started is not None:
            changes["started"] = started
        if ready is not None:
            changes["ready"] = ready
        self._set(name, **changes)
        self.wake.set()

    async def probe_failed(self, name: str, probe: str, message: str, grace: float | None) -> None:
        """A liveness or startup probe reached its failure threshold: kill; restartPolicy applies."""
        c, _ = self._spec_of(name)
        lst = "initContainers" if c in (self.pod["spec"].get("initContainers") or []) else "containers"
        self.agent.event(self.pod, "Normal", "Killing", f"Container {name} failed {probe} probe, will be restarted",
                         field=f"spec.{lst}{{{name}}}")
        try:
            await self.kill_container(name, grace if grace is not None else self.agent.deletion_grace(self.pod), None)
        finally:  # a sync that ran while the kill was in flight (the exit event's) left the container
            self.wake.set()  # alone (`killing`): look again now, or nothing restarts it

    def _spec_of(self, name: str):
        for lst in ("initContainers", "containers"):
            for i, c in enumerate(self.pod["spec"].get(lst) or []):
                if c["name"] == name:
                    return c, i
        return None, None

    # ---- stopping ----------------------------------------------------------------------------
    async def kill_container(self, name: str, grace: float, event: str | None) -> None:
        """preStop (its time counts against the grace), the stop signal, the rest of the grace,
        SIGKILL."""
        cid = self.cids.get(name)
        if cid is None or name in self.killing:
            return
        self.killing.add(name)
        try:
            c, _ = self._spec_of(name)
            if event:
                self.agent.event(self.pod, "Normal", "Killing", f"Stopping container {name}")
            t0 = time.monotonic()
            hook = ((c or {}).get("lifecycle") or {}).get("preStop")
            if hook and self._rec(name).state == "running":
                ok, why = await self.agent.run_hook(self, name, cid, c, hook, timeout=grace)
                if not ok:
                    self.agent.event(self.pod, "Warning", "FailedPreStopHook", why)
            left = max(MIN_KILL_GRACE if hook else 0.0, grace - (time.monotonic() - t0))
            try:
                st = await asyncio.to_thread(self.agent.stop_container, self.uid, cid, left,
                                             translate.stop_signal(c or {}))
                self._set(name, current=_instance(st), ready=False)
            except RuntimeFailure as e:
                if e.kind not in (NOT_FOUND, DEADLINE_EXCEEDED):
                    raise
                log.warning("pod %s container %s: stop: %s", self.uid, name, e)
            if self.probes:
                self.probes.container_stopped(name)
        finally:
            self.killing.discard(name)

    async def kill_pod(self, grace: float, reason: str) -> None:
        """Every container at once (each with the grace), sidecars after the app containers,
        then the sandbox and the network."""
        spec = self.pod["spec"]
        apps = [c["name"] for c in spec.get("containers") or []]
        inits = [c["name"] for c in reversed(spec.get("initContainers") or [])]
        await asyncio.gather(*(self.kill_container(n, grace, reason) for n in apps if self._rec(n).state == "running"))
        await asyncio.gather(*(self.kill_container(n, grace, reason) for n in inits if self._rec(n).state == "running"))
        if self.probes:
            await self.probes.stop_all()
        if self.stream_task:
            self.stream_task.cancel()
            self.stream_task = None
        net, self.network = self.network, None
        if net is not None:  # a network still being set up is finished, then taken down with the rest
            await asyncio.wait([net])
            if not net.cancelled():
                net.exception()  # a failed one undid itself
        await asyncio.to_thread(self.agent.remove_sandbox, self.pod)
        self.cids.clear()
        self.record = dataclasses.replace(self.record, sandbox_ready=False, pod_ips=())
        # the volumes once no container holds them: unmounted, then removed (never a hostPath)
        await asyncio.to_thread(self.agent.volumes.teardown, self.uid)
        self.volumes_ready = False

    # ---- status ------------------------------------------------------------------------------
    def publish(self) -> None:
        self.agent.publish_status(self)
