"""The one base of the runtime's errors, with the kinds a kubelet maps to reasons.

Kinds are gRPC's canonical status codes, as CRI's RuntimeService returns them, so that a CRI
face on these functions maps each error to its code without a table. `netns.errors` uses the
same names (the two packages never import each other; the strings are the contract).
Kept import-free so that `kubelet-py image ...` does not load the runtime."""

NOT_FOUND = "NOT_FOUND"  # no such pod, container, exec or image
ALREADY_EXISTS = "ALREADY_EXISTS"  # an id or name that is taken
FAILED_PRECONDITION = "FAILED_PRECONDITION"  # the object is in the wrong state for the call
INVALID_ARGUMENT = "INVALID_ARGUMENT"  # a field of the request (or of config.json) is wrong
UNAVAILABLE = "UNAVAILABLE"  # the pod's supervisor is gone or does not answer
RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"  # a limit: addresses, ports, sizes, pids
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"  # a timeout (exec, stop, wait)
INTERNAL = "INTERNAL"  # the kernel refused, or a bug: nothing the caller can change

KINDS = (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT, UNAVAILABLE, RESOURCE_EXHAUSTED,
         DEADLINE_EXCEEDED, INTERNAL)


class RuntimeFailure(Exception):
    """`kind`: one of KINDS (a subclass sets its usual one; a raise may override it);
    `obj`: what it concerns (`pod <uid>`, `container <id>`); `field`: the request or spec field
    path when the kind is INVALID_ARGUMENT."""

    kind = INTERNAL

    def __init__(self, *args, kind: str | None = None, obj: str | None = None, field: str | None = None):
        super().__init__(*args)
        if kind is not None:
            if kind not in KINDS:
                raise ValueError(f"unknown error kind {kind!r}")
            self.kind = kind
        self.obj, self.field = obj, field

    def to_wire(self) -> dict:
        """What a supervisor sends back for this error (its client raises it again)."""
        return {"error": str(self), "kind": self.kind, "obj": self.obj, "field": self.field}


def from_wire(answer: dict, cls: type = RuntimeFailure) -> RuntimeFailure:
    kind = answer.get("kind")
    return cls(answer.get("error") or "unknown error", kind=kind if kind in KINDS else INTERNAL,
               obj=answer.get("obj"), field=answer.get("field"))
