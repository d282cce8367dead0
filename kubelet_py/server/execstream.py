"""`exec` over a WebSocket, framed as Kubernetes' `v4.channel.k8s.io`: each binary message
starts with its channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the final status (JSON, as the
API server's: `{"status": "Success"}` or `Failure` with the exit code as an `ExitCode` cause),
4 a terminal resize (`{"Width": w, "Height": h}`). An empty stdin message is the end of stdin.
The process runs in the container through its pod's supervisor (a fork, no interpreter)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import struct
import termios

from aiohttp import WSMsgType

from runtime.supervisor.client import SupervisorClient

log = logging.getLogger("kubelet_py.server")
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4


def exit_status(code: int) -> dict:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


class ExecSession:
    def __init__(self, paths, uid: str, cid: str, cmd: list[str], tty: bool, stdin: bool):
        self.pod_dir = os.path.join(paths.run_root, "pods", uid)
        self.cid, self.cmd, self.tty, self.stdin = cid, cmd, tty, stdin

    async def bridge(self, ws) -> None:
        loop = asyncio.get_running_loop()
        client = SupervisorClient(self.pod_dir)
        outs: dict[int, int] = {}  # our read end -> channel
        write_fd = None
        try:
            if self.tty:
                pid, master = await asyncio.to_thread(client.exec_tty, self.cid, self.cmd)
                outs[master] = STDOUT
                write_fd = master
            else:
                in_r, in_w = os.pipe2(os.O_CLOEXEC) if self.stdin else (os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), None)
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                err_r, err_w = os.pipe2(os.O_CLOEXEC)
                try:
                    pid, _ = await asyncio.to_thread(client.exec_start, self.cid, self.cmd, None, (in_r, out_w, err_w))
                finally:
                    for fd in (in_r, out_w, err_w):
                        os.close(fd)
                outs[out_r], outs[err_r] = STDOUT, STDERR
                write_fd = in_w
            done = asyncio.Event()
            open_fds = set(outs)

            def readable(fd: int) -> None:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # a pty master reads EIO once the process is gone
                    data = b""
                if data:
                    loop.create_task(ws.send_bytes(bytes([outs[fd]]) + data))
                    return
                loop.remove_reader(fd)
                open_fds.discard(fd)
                if not open_fds:
                    done.set()
            for fd in outs:
                os.set_blocking(fd, False)
                loop.add_reader(fd, readable, fd)
            self.stdin_fd = write_fd if write_fd not in outs else None  # a pty master is closed with outs
            pump = loop.create_task(self._stdin(ws, write_fd))
            code = await asyncio.to_thread(client.exec_wait, pid)
            try:
                await asyncio.wait_for(done.wait(), 0.5)  # what it wrote last
            except asyncio.TimeoutError:
                pass
            pump.cancel()
            await ws.send_bytes(bytes([STATUS]) + json.dumps(exit_status(code)).encode())
        except Exception as e:  # noqa: BLE001 - reported on the status channel
            log.warning("exec in %s: %s", self.cid, e)
            if not ws.closed:
                await ws.send_bytes(bytes([STATUS]) + json.dumps(
                    {"metadata": {}, "status": "Failure", "message": str(e), "reason": "InternalError"}).encode())
        finally:
            for fd in outs:
                try:
                    loop.remove_reader(fd)
                except (ValueError, OSError):
                    pass
                os.close(fd)
            if getattr(self, "stdin_fd", None) is not None:
                os.close(self.stdin_fd)
                self.stdin_fd = None
            client.close()
            await ws.close()

    async def _stdin(self, ws, fd: int | None) -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            chan, data = msg.data[0], msg.data[1:]
            if chan == RESIZE and self.tty and fd is not None:
                size = json.loads(data)
                fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0))
            elif chan == STDIN and fd is not None:
                if not data:
                    if not self.tty and self.stdin_fd is not None:
                        os.close(self.stdin_fd)
                        self.stdin_fd = fd = None
                    continue
                await asyncio.to_thread(_write_all, fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
