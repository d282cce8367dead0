"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

`Registry` runs one `docker-registry serve` on a free port with its own storage dir, plain http
or TLS (a throwaway CA made with `openssl`) with htpasswd Basic auth; it is started and stopped
by its own PID only. `push_layout` uploads an OCI layout made by runtime.image.build with
`skopeo copy`. `StallingProxy` sits between a client and a registry and, when armed, stops
passing bytes on once a connection has carried N bytes, so a test can kill the registry while a
blob download is certainly in flight (over loopback a 30 MB blob takes milliseconds, too short
to hit by polling)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import yaml

USER = "kpy"
PASSWORD = "s3cret-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (rc {r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


def make_ca(d: str) -> dict:
    """A CA and a server certificate for IP 127.0.0.1, made with openssl. Returns the paths."""
    os.makedirs(d, exist_ok=True)
    p = {k: os.path.join(d, f) for k, f in (("ca_key", "ca.key"), ("ca_crt", "ca.crt"), ("key", "server.key"),
                                               ("csr", "server.csr"), ("crt", "server.crt"), ("ext", "server.ext"))}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509", *ec, "-keyout", p["ca_key"], "-out", p["ca_crt"], "-days", "2",
          "-subj", "/CN=kubelet-py test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    _run(["openssl", "req", *ec, "-keyout", p["key"], "-out", p["csr"], "-subj", "/CN=127.0.0.1"])
    with open(p["ext"], "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n")
    _run(["openssl", "x509", "-req", "-in", p["csr"], "-CA", p["ca_crt"], "-CAkey", p["ca_key"],
          "-CAcreateserial", "-out", p["crt"], "-days", "2", "-extfile", p["ext"]])
    # skopeo's --cert-dir takes every *.crt in a directory as a CA (and *.cert/*.key as a client
    # pair), so the CA gets a directory of its own
    p["cert_dir"] = os.path.join(d, "skopeo-certs")
    os.makedirs(p["cert_dir"], exist_ok=True)
    shutil.copy(p["ca_crt"], os.path.join(p["cert_dir"], "ca.crt"))
    return p


class Registry:
    """One `docker-registry serve`. `tls=True` adds a self-signed CA, https and htpasswd auth."""

    def __init__(self, workdir: str, *, tls: bool = False, port: int | None = None):
        self.workdir = workdir
        self.tls = tls
        self.port = port or free_port()
        self.storage = os.path.join(workdir, "storage")
        self.config_path = os.path.join(workdir, "config.yml")
        self.log_path = os.path.join(workdir, "registry.log")
        self.proc: subprocess.Popen | None = None
        self.certs: dict = {}
        os.makedirs(self.storage, exist_ok=True)
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "kubelet-py-tests"},
        }
        if tls:
            self.certs = make_ca(os.path.join(workdir, "pki"))
            htpasswd = os.path.join(workdir, "htpasswd")
            with open(htpasswd, "w") as f:
                f.write(_run(["htpasswd", "-Bbn", USER, PASSWORD]).stdout)
            cfg["http"]["tls"] = {"certificate": self.certs["crt"], "key": self.certs["key"]}
            cfg["auth"] = {"htpasswd": {"realm": "kubelet-py-test", "path": htpasswd}}
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f)

    # ---- where ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def blob_data(self, digest: str) -> str:
        """The file that holds blob `digest` in the registry's own storage."""
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")

    def registries_yaml(self, path: str, *, password: str = PASSWORD, endpoint: str | None = None) -> str:
        """Write a k3s-format registries.yaml that reaches this registry (at `endpoint`, default
        its own URL); for the TLS variant with the CA and credentials. Returns `path`."""
        doc: dict = {"mirrors": {self.host: {"endpoint": [endpoint or self.url]}}}
        if self.tls:
            doc["configs"] = {self.host: {"auth": {"username": USER, "password": password},
                                          "tls": {"ca_file": self.certs["ca_crt"]}}}
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    # ---- life -------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "Registry":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(["docker-registry", "serve", self.config_path], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.certs["ca_crt"])
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=2, context=ctx) as r:
                    if r.status == 200:
                        return self
            except urllib.error.HTTPError as e:
                if e.code == 401 and self.tls:  # auth on: a challenge is the answer
                    return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not answer GET /v2/ in {timeout}s: {self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, by our own child's PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, n: int = 4000) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
        return ""

    def blob_gets(self, status: int | None = None) -> list[str]:
        """Digests of the blobs GET'ed so far (answered with `status`, if given), from the
        access log (`"GET /v2/<repo>/blobs/<digest> HTTP/1.1" <status> <bytes> ...`)."""
        out = []
        for line in self.log_tail(10 << 20).splitlines():
            if '"GET /v2/' in line and "/blobs/sha256:" in line:
                rest = line.split("/blobs/sha256:", 1)[1]
                code = rest.split('" ', 1)[1].split(" ", 1)[0] if '" ' in rest else ""
                if status is None or code == str(status):
                    out.append("sha256:" + rest[:64])
        return out

    # ---- content ----------------------------------------------------------------------
    def push_layout(self, layout: str, ref: str, dest: str, *, all_platforms: bool = False) -> None:
        """`skopeo copy oci:LAYOUT:REF docker://HOST/DEST` (`--all` for an index)."""
        argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests"]
        if all_platforms:
            argv.append("--all")
        if self.tls:
            argv += ["--dest-cert-dir", self.certs["cert_dir"], "--dest-creds", f"{USER}:{PASSWORD}"]
        else:
            argv.append("--dest-tls-verify=false")
        _run(argv + [f"oci:{layout}:{ref}", f"docker://{self.host}/{dest}"], timeout=120)

    def raw_manifest(self, dest: str) -> bytes:
        """`skopeo inspect --raw`: the manifest (or index) bytes as the registry serves them."""
        argv = ["skopeo", "inspect", "--raw"]
        if self.tls:
            argv += ["--cert-dir", self.certs["cert_dir"], "--creds", f"{USER}:{PASSWORD}"]
        else:
            argv.append("--tls-verify=false")
        r = subprocess.run(argv + [f"docker://{self.host}/{dest}"], capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"skopeo inspect {dest}: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout


class StallingProxy:
    """A TCP forwarder 127.0.0.1:port -> upstream. Once `arm(n)` is called, the first connection
    to carry `n` bytes towards the client stops passing anything on (`stalled` is set) and is
    closed, client side too, when the upstream side closes (the registry died); with
    `arm(n, cut=True)` it is closed right there instead (a connection lost mid-response).
    Later connections pass through untouched. Connections it cannot open upstream are closed
    at once, as a dead host's port would refuse them."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stalled = threading.Event()
        self._armed: int | None = None
        self._cut = False
        self._lock = threading.Lock()
        self._closing = False
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True, name="stalling-proxy")
        t.start()
        self._threads.append(t)

    def arm(self, after_bytes: int, *, cut: bool = False) -> None:
        self.stalled.clear()
        self._cut = cut
        self._armed = after_bytes

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            up.settimeout(None)
            with self._lock:
                self._conns += [client, up]
            for src, dst, down in ((client, up, False), (up, client, True)):
                t = threading.Thread(target=self._pump, args=(src, dst, down), daemon=True)
                t.start()
                self._threads.append(t)

    def _take(self, carried: int) -> bool:
        """Whether this connection, having carried `carried` bytes, is the one to stall."""
        with self._lock:
            if self._armed is not None and carried >= self._armed:
                self._armed = None
                return True
        return False

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        carried = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if down and self._take(carried + len(data)):
                    self.stalled.set()
                    if self._cut:
                        dst.sendall(data[: len(data) // 2])
                        break
                    while src.recv(65536):  # hold on, pass nothing on, until upstream goes away
                        pass
                    break
                dst.sendall(data)
                carried += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            if down:  # closing with unread data resets the registry's side: its handler ends now
                for s in (src, dst):
                    s.close()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        with self._lock:
            for s in self._conns:
                with contextlib.suppress(OSError):
                    s.close()


def wait_for(pred, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)

