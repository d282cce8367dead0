"""grpc probes: grpc.health.v1.Health/Check over plaintext HTTP/2, through grpcio's asyncio client
(edge: sockets). Messages are upstream's (`pkg/probe/grpc`): a channel not ready within the timeout
is "timeout: failed to connect service ...", SERVING passes, any other status fails with
`service unhealthy (responded with "NOT_SERVING")`, and an RPC error fails with its code.

grpcio is imported with this module; the prober imports it only when a grpc probe runs."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .spec import PROBE_USER_AGENT, Outcome, Result, bounded, join_host_port


def _go_code(code: grpc.StatusCode) -> str:
    """grpc-go's name of a status code: NOT_FOUND -> NotFound, OK -> OK."""
    name = code.name
    return name if name == "OK" else "".join(w.capitalize() for w in name.split("_"))


def _secs(t: float) -> str:
    return f"{t:g}s"


async def grpc_probe(host: str, port: int, service: str, timeout: float) -> Outcome:
    """One Check of `service` ("" = the server as a whole) at host:port within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    addr = join_host_port(host, port)
    channel = grpc.aio.insecure_channel(addr, options=[("grpc.primary_user_agent", PROBE_USER_AGENT),
                                                       ("grpc.enable_retries", 0)])
    try:
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            return Outcome(Result.FAILURE, f'timeout: failed to connect service "{addr}" within '
                                           f"{_secs(timeout)}: context deadline exceeded")
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service),
                                    timeout=max(deadline - loop.time(), 0.001))
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return Outcome(Result.FAILURE, bounded("this server does not implement the grpc health protocol "
                                                       f"(grpc.health.v1.Health): {e.details() or ''}"))
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return Outcome(Result.FAILURE, f"timeout: health rpc did not complete within {_secs(timeout)}")
            return Outcome(Result.FAILURE, bounded("error: health rpc probe failed: rpc error: "
                                                   f"code = {_go_code(e.code())} desc = {e.details() or ''}"))
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
        if resp.status != health_pb2.HealthCheckResponse.SERVING:
            return Outcome(Result.FAILURE, f'service unhealthy (responded with "{status}")')
        return Outcome(Result.SUCCESS, "service is serving")
    finally:
        await channel.close()
