"""Pull progress for people: what `kubelet-py image pull` and `run -f` (when it pulls) show while
layers download and unpack. The runtime only calls a hook, `progress(digest, phase, done, total)`
(runtime/image/ingest.py; phases `download`, `downloaded`, `unpack`, `done`), from its download
threads and its unpacking thread; it never imports a UI library. This module is the CLI's hook:

- on a terminal, one live bar per layer through rich (its Progress is thread-safe and redraws
  from its own thread): the layer's short digest and phase, a bar, the percentage, bytes done
  of the total, the speed and the time left;
- otherwise (a pipe, a log file, CI), plain lines: `<12 hex>: downloaded N bytes` when a
  layer's blob is stored and `<12 hex>: unpacked N bytes` when its snapshot is made, and, for a
  download that runs long, `<12 hex>: downloading D/N bytes (P%, S/s, ETA T)` every
  `PLAIN_EVERY` seconds.

Progress goes to stderr: stdout keeps the command's result (`NAME DIGEST`) for scripts."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger("kubelet_py.pull")
PLAIN_EVERY = 10.0  # seconds between two "downloading" lines of one layer when not on a terminal
Progress = Callable[[str, str, int, int], None]


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}GB"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class PlainProgress:
    """Plain lines (see the module doc); `clock` is time.monotonic (a test passes its own)."""

    def __init__(self, stream, every: float = PLAIN_EVERY, clock: Callable[[], float] = time.monotonic):
        self.stream, self.every, self.clock = stream, every, clock
        self._lock = threading.Lock()
        self._start: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def __call__(self, digest: str, phase: str, done: int, total: int) -> None:
        with self._lock:
            line = self._line(digest, phase, done, total)
            if line:
                self.stream.write(line + "\n")
                self.stream.flush()

    def _line(self, digest: str, phase: str, done: int, total: int) -> str | None:
        if phase == "downloaded":
            return f"{short(digest)}: downloaded {total} bytes"
        if phase == "done":
            return f"{short(digest)}: unpacked {total} bytes"
        if phase != "download":
            return None
        now = self.clock()
        start = self._start.setdefault(digest, now)
        if now - self._last.get(digest, start) < self.every:
            return None
        self._last[digest] = now
        speed = done / (now - start) if now > start else 0.0
        eta = (total - done) / speed if speed > 0 and total >= done else None
        pct = int(100 * done / total) if total else 100
        return (f"{short(digest)}: downloading {done}/{total} bytes ({pct}%, {human_bytes(speed)}/s, "
                f"ETA {eta_text(eta)})")


class RichProgress:
    """One rich task per layer, made at its first call: the hook for a terminal."""

    PHASES = {"download": "downloading", "downloaded": "downloaded", "unpack": "unpacking", "done": "unpacked"}

    def __init__(self, stream):
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)
        self.bars = Progress(TextColumn("{task.fields[layer]} {task.description:<11}"), BarColumn(),
                             TaskProgressColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                             console=Console(file=stream), refresh_per_second=8)
        self.tasks: dict[str, int] = {}
        self._lock = threading.Lock()

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc):
        self.bars.stop()

    def __call__(self, digest: str, phase: str, done: int, total: int) -> None:
        with self._lock:
            task = self.tasks.get(digest)
            if task is None:
                task = self.tasks[digest] = self.bars.add_task(self.PHASES.get(phase, phase), total=total,
                                                               layer=short(digest))
        if phase in ("download", "downloaded"):
            self.bars.update(task, completed=done, total=total, description=self.PHASES[phase])
        elif phase in ("unpack", "done"):
            self.bars.update(task, description=self.PHASES[phase])


@contextlib.contextmanager
def pull_progress(stream=None) -> Iterator[Progress]:
    """The hook for one command: bars when `stream` (stderr by default) is a terminal, else
    plain lines. The bars are drawn for good when the block ends."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield PlainProgress(stream)
        return
    with RichProgress(stream) as bars:
        yield bars


def pull_for_pod(gopts, pod: dict, stream=None) -> list[str]:
    """`run -f`: pull, here with progress, each image of the pod that its pull policy says to pull
    now (Always; IfNotPresent when absent), into --root's store, before the pod is applied: the
    agent then finds it present (or, for Always, finds every layer already stored), so its
    own pull downloads nothing. The store is the daemon's when the daemon shares --root (the
    default), and the embedded agent's. A failed pull is left to the agent, which reports it as
    the kubelet does (ErrImagePull, back-off): one warning line here. Returns the refs pulled."""
    from runtime.image.errors import ImageError
    from runtime.image.registries import load_registries
    from runtime.image.registry import pull
    from .api.defaults import pull_policy_for
    from .cli import open_image_store
    from .pods.images import ImagePullError, image_present
    stream = stream if stream is not None else sys.stderr
    spec = pod.get("spec") or {}
    wanted: list[str] = []
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        ref = c.get("image") or ""
        if not ref or ref in wanted:
            continue
        policy = c.get("imagePullPolicy") or pull_policy_for(ref)
        if policy == "Never":
            continue
        store = open_image_store(gopts)
        try:
            if policy == "IfNotPresent" and image_present(store, ref):
                continue
        except (ImagePullError, ImageError) as e:
            log.info("run -f: %s: %s", ref, e)
            continue  # an invalid name: the agent reports it (InvalidImageName)
        wanted.append(ref)
    if not wanted:
        return []
    regs = load_registries(gopts.registries if os.path.exists(gopts.registries) else None)
    pulled = []
    for ref in wanted:
        stream.write(f"pulling {ref}\n")
        stream.flush()
        try:
            with pull_progress(stream) as progress:
                pull(open_image_store(gopts), ref, regs, progress=progress)
            pulled.append(ref)
        except ImageError as e:
            stream.write(f"kubelet-py: warning: pulling {ref}: {e} (the pod will report it)\n")
            stream.flush()
    return pulled
