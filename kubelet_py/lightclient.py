"""One request to the daemon with the interpreter's C modules only: `_socket` for its unix socket,
HTTP/1.1 written and read here (one request, `Connection: close`, a Content-Length answer: what
the daemon's aiohttp server sends), and `_json`, the json package's own string encoder and
scanner, for the bodies. The path of `kubelet-py apply -f` (kubelet_py/applycmd.py): importing
`socket` (its enums) and `json` (re) took ~9 ms of that command's ~20 ms here (timed runs of
`python -c 'import json, socket'` against `python -c pass`: 20.2 vs 10.8 ms).

Errors are kubelet_py.client's, with its messages (that module is imported only then)."""

from __future__ import annotations

import _json
import _socket

CONNECT_TIMEOUT = 5.0
encode_str = _json.encode_basestring_ascii  # a str as a JSON string literal, as json.dumps writes it


class _Decoding:
    """What json.JSONDecoder hands its C scanner: json.loads' defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan = _json.make_scanner(_Decoding())


def decode(data: bytes):
    """json.loads of a whole document (ValueError otherwise)."""
    text = data.decode("utf-8")
    start = len(text) - len(text.lstrip())
    try:
        obj, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"no JSON value at {start}") from None
    if text[end:].strip():
        raise ValueError(f"extra data at {end}")
    return obj


def post_json(socket_path: str, path: str, body: str):
    """POST `body` (JSON text) to `path`; the answer decoded. ClientError for an error answer
    or no daemon."""
    head = (f"POST {path} HTTP/1.1\r\nHost: kubelet-py\r\nUser-Agent: kubelet-py\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect(socket_path)
        except FileNotFoundError:
            from .client import no_daemon
            raise no_daemon(socket_path) from None
        sock.settimeout(None)  # the answer may take long: deadlines are the daemon's
        sock.sendall(head.encode("latin-1") + body.encode())
        chunks = []
        while data := sock.recv(1 << 16):
            chunks.append(data)
    except OSError as e:
        from .client import unreachable
        raise unreachable(socket_path, e) from None
    finally:
        sock.close()
    status, answer = split_response(b"".join(chunks))
    if status >= 400:
        from .client import status_error
        raise status_error(status, answer)
    return decode(answer)


def split_response(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.1 answer read to EOF; ClientError if it is not one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    words = lines[0].split(b" ", 2)
    length = None
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value) if value.strip().isdigit() else -1
    if not sep or len(words) < 2 or not words[0].startswith(b"HTTP/1.") or not words[1].isdigit() \
            or length is None or length < 0 or len(body) < length:
        from .client import ClientError
        raise ClientError(f"the daemon's answer is not one this client reads: {raw[:80]!r}")
    return int(words[1]), body[:length]
