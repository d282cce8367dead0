"""The per-pod supervisor (what containerd's shim is to containerd; here one name for it):
a fresh, detached, single-threaded process per pod that forks the pod's containers and execs,
reaps them as their subreaper, writes their output in the CRI log format, records every
container's state in atomic files and streams events to subscribers. It outlives the daemon.

    launch    the daemon's side: start a pod's supervisor (sealed interpreter), stop one
    client    the daemon's side: requests (thread-safe), dedicated waits, exec_sync, EventStream
    server    the supervisor process: loop, op table, container state machine, events, timers
    records   container records: the state files, read back when a supervisor is gone
    crilog    CRI log records and size-based rotation (pure, but for the clock)
    wire      what both sides share: socket path, framing, errors on the wire

    <run-root>/pods/<uid>/supervisor.sock           one JSON object per line each way
    <run-root>/pods/<uid>/supervisor.pid, supervisor.log
    <run-root>/pods/<uid>/containers/<id>.json      a container's record (atomic writes)

Nothing here is imported by the package itself: the supervisor process loads only `server`
and what it needs (its RSS is a target)."""
