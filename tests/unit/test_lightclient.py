"""kubelet_py/lightclient.py: the JSON and HTTP of `apply -f` without the json and socket modules
read and write what those modules do."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from kubelet_py.client import ClientError
from kubelet_py.lightclient import decode, encode_str, post_json, split_response

DOCS = [{"items": [{"object": {"kind": "Pod", "metadata": {"name": "ä-1"}}, "action": "created",
                    "warnings": ["unknown field \"x\"\n\t"]}]},
        [1, -2.5e-3, True, False, None, "\u2603", {"": []}], "plain", 0, {"big": 10 ** 30, "nan": float("inf")}]


@pytest.mark.parametrize("doc", DOCS)
def test_decode_reads_what_json_writes(doc):
    text = json.dumps(doc, indent=1)
    assert decode(text.encode()) == json.loads(text)
    assert decode(f"  {text}\n".encode()) == doc


@pytest.mark.parametrize("bad", [b"", b"   ", b"{", b'{"a": 1} x', b"[1,]", b"nope"])
def test_decode_refuses_what_json_refuses(bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    with pytest.raises(ValueError):
        decode(bad)


@pytest.mark.parametrize("s", ["", "plain", 'q"uote\\back', "nl\nt\tnul\x00", "ünïcødé ☃ \U0001f600", "</script>"])
def test_encode_str_is_json_dumps(s):
    assert encode_str(s) == json.dumps(s) and json.loads(encode_str(s)) == s


def test_split_response():
    assert split_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\n{}") == (200, b"{}")
    assert split_response(b"HTTP/1.1 422 Unprocessable\r\ncontent-length:  3 \r\n\r\nabcdef") == (422, b"abc")
    for bad in (b"", b"HTTP/1.1 200 OK\r\n\r\n{}",  # no Content-Length (chunked): not ours
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",  # cut short
                b"SSH-2.0-x\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"):
        with pytest.raises(ClientError, match="not one this client reads"):
            split_response(bad)


def _serve_once(path: str, answer: bytes, got: list) -> threading.Thread:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        n = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
        while len(body) < n:
            body += c.recv(65536)
        got.append((head.decode(), body))
        c.sendall(answer)
        c.close()
        srv.close()
    t = threading.Thread(target=run)
    t.start()
    return t


def test_post_json_against_a_socket(tmp_path):
    got = []
    ok = json.dumps({"items": []}).encode()
    t = _serve_once(str(tmp_path / "s"), b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ok) + ok, got)
    assert post_json(str(tmp_path / "s"), "/apis/x", '{"a": "\\u00e9"}') == {"items": []}
    t.join()
    head, body = got[0]
    assert head.startswith("POST /apis/x HTTP/1.1\r\n") and "Connection: close" in head
    assert json.loads(body) == {"a": "é"}
    status = json.dumps({"kind": "Status", "message": "bad pod", "reason": "Invalid"}).encode()
    t = _serve_once(str(tmp_path / "e"), b"HTTP/1.1 422 X\r\nContent-Length: %d\r\n\r\n" % len(status) + status, got)
    with pytest.raises(ClientError) as e:
        post_json(str(tmp_path / "e"), "/apis/x", "{}")
    t.join()
    assert (str(e.value), e.value.code, e.value.reason) == ("bad pod", 422, "Invalid")
    with pytest.raises(ClientError, match="no daemon at .*/none"):
        post_json(str(tmp_path / "none"), "/apis/x", "{}")
