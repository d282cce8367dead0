"""The probes of one pod, between its worker and the prober: a ContainerProbes per container
that has probes, one ResultsManager whose changes become the worker's `started`/`ready`, and
liveness/startup failures that make the worker kill the container (restartPolicy applies)."""

from __future__ import annotations

import asyncio
import logging

from runtime import pod as rt

from ..prober.metrics import ProbeTarget
from ..prober.results import ResultsManager
from ..prober.spec import ProbeType
from ..prober.worker import ContainerProbes

log = logging.getLogger("kubelet_py.pods")


class PodProbes:
    def __init__(self, worker, agent):
        self.worker, self.agent = worker, agent
        self.results = ResultsManager(self._changed)
        self.by_name: dict[str, ContainerProbes] = {}

    def _pod_ip(self) -> str | None:
        ips = self.worker.record.pod_ips
        return ips[0] if ips else None

    def _exec(self, cid: str, args: list[str], timeout: float | None):
        return rt.exec_sync(self.agent.paths, self.worker.uid, cid, args, timeout)

    def container_started(self, name: str, cid: str, c: dict) -> None:
        if not any(c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe")):
            return
        probes = self.by_name.get(name)
        if probes is None:
            pod = self.worker.pod
            probes = ContainerProbes(
                c, results=self.results, on_failure=lambda kind, out, cid, n=name: self._failed(n, kind, out, cid),
                pod_ip=self._pod_ip(), exec_sync=self._exec, pod=self.worker.uid,
                on_event=lambda t, r, m, n=name: self.agent.event(
                    pod, t, r, m, f"spec.{'initContainers' if n in _init_names(pod) else 'containers'}{{{n}}}"),
                metrics=self.agent.prober_metrics.for_container(ProbeTarget(  # upstream's labels on /metrics
                    name, pod["metadata"]["name"], pod["metadata"].get("namespace") or "default", self.worker.uid)))
            self.by_name[name] = probes
            probes.start()
        probes.pod_ip = self._pod_ip()
        probes.container_started(cid)

    def container_stopped(self, name: str) -> None:
        probes = self.by_name.get(name)
        if probes is not None and probes.container_id:
            probes.container_exited(probes.container_id)

    async def stop_all(self) -> None:
        """Every probe task of the pod ends (an exec in flight within its timeout)."""
        probes, self.by_name = list(self.by_name.values()), {}
        await asyncio.gather(*(p.stop() for p in probes))

    def pod_deleting(self) -> None:
        for probes in self.by_name.values():
            probes.pod_deleting()

    def _changed(self, update) -> None:
        name = update.container or next((n for n, p in self.by_name.items() if p.container_id == update.container_id), None)
        probes = self.by_name.get(name)
        if probes is None or probes.container_id != update.container_id:
            return
        st = probes.status()
        self.worker.probe_changed(name, started=st.started if ProbeType.STARTUP in probes.specs else None,
                                  ready=st.ready)

    def _failed(self, name: str, kind: ProbeType, output: str, cid: str) -> None:
        if self.worker.cids.get(name) != cid:
            return
        spec = self.by_name[name].specs.get(kind)
        grace = getattr(spec, "termination_grace_period_seconds", None)
        asyncio.get_running_loop().create_task(self.worker.probe_failed(name, kind.value, output, grace))


def _init_names(pod: dict) -> set[str]:
    return {c["name"] for c in pod["spec"].get("initContainers") or []}
