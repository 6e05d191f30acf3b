"""Production rollout (issue 12; SPEC sections 1, 2 and 9): the admin
listener as load balancers probe it, the command line, the man page,
logging to the journal, sd_notify, packaging and the `-t` checks."""
import os
import re
import socket
import subprocess

from lib import eq, free_port, parse_head, wait_until
from opslib import admin_conf, admin_get, write_conf

LIST = "/json-api/listaccts?api.version=1"


def admin_raw(conf, data, timeout=10):
    """Sends bytes to the admin listener and reads until it closes; returns
    (status, headers, body)."""
    host, port = conf["admin"].rsplit(":", 1)
    port = int(port)
    wait_until(lambda: _can_connect(host, port), timeout, what="the admin port")
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    finally:
        s.close()
    head, sep, body = got.partition(b"\r\n\r\n")
    assert sep, f"no complete head from the admin listener: {got[:200]!r}"
    status, hdrs = parse_head(head)
    return status, dict((k.lower(), v) for k, v in hdrs), body, head


def _can_connect(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- 1. admin listener

def test_rollout_admin_health_checks(t):
    """Issue 12, 1: HAProxy's `option httpchk GET /readyz` (HTTP/1.0, no
    Host) and `curl -I` (HEAD) are answered; a HEAD gets GET's head and no
    body; other methods get 405 with Allow; a bad request line 400."""
    conf = admin_conf(t.conf())
    t.gate(conf)
    # What HAProxy sends by default.
    status, hdrs, body, head = admin_raw(conf, b"GET /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (200, b"ready\n"), "HTTP/1.0 GET /readyz without Host")
    assert head.startswith(b"HTTP/1.0 200 "), f"status line for a 1.0 client: {head[:40]!r}"
    status, hdrs, body, _ = admin_raw(conf, b"GET /healthz HTTP/1.0\r\n"
                                      b"User-Agent: HAProxy\r\nConnection: close\r\n\r\n")
    eq((status, body), (200, b"ok\n"), "HTTP/1.0 GET /healthz with headers, no Host")
    # HEAD: the head GET would get, no body.
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    eq((status, hdrs.get("content-length"), body), (200, "3", b""), "HEAD /healthz")
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /readyz HTTP/1.0\r\n\r\n")
    eq((status, hdrs.get("content-length"), body), (200, "6", b""), "HEAD /readyz (1.0)")
    # curl -I, as an operator types it.
    host, port = conf["admin"].rsplit(":", 1)
    r = subprocess.run(["curl", "-sS", "-I", "--max-time", "10",
                        f"http://{host}:{port}/healthz"], capture_output=True, timeout=20)
    eq(r.returncode, 0, f"curl -I exit code ({r.stderr!r})")
    assert re.match(rb"HTTP/1\.1 200 ", r.stdout), f"curl -I /healthz: {r.stdout[:80]!r}"
    r = subprocess.run(["curl", "-sS", "-I", "-0", "--max-time", "10",
                        f"http://{host}:{port}/metrics"], capture_output=True, timeout=20)
    assert re.match(rb"HTTP/1\.0 200 ", r.stdout), f"curl -I -0 /metrics: {r.stdout[:80]!r}"
    # A query string does not change the path.
    eq(admin_raw(conf, b"GET /healthz?from=lb HTTP/1.0\r\n\r\n")[0], 200, "/healthz?query")
    eq(admin_raw(conf, b"GET /nothing HTTP/1.0\r\n\r\n")[0], 404, "unknown path")
    status, hdrs, body, _ = admin_raw(conf, b"POST /readyz HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 0\r\n\r\n")
    eq((status, hdrs.get("allow")), (405, "GET, HEAD"), "POST /readyz")
    eq(admin_raw(conf, b"GET /readyz HTTP/2.0\r\n\r\n")[0], 400, "HTTP/2.0 request line")
    eq(admin_raw(conf, b"GET /" + b"a" * 400 + b" HTTP/1.0\r\n\r\n")[0], 414, "long target")
    eq(admin_raw(conf, b"BREW /readyz HTTP/1.0\r\n\r\n")[0], 400, "not a method")
    # Normal clients still work.
    eq(admin_get(conf, "/readyz")[0], 200, "HTTP/1.1 GET /readyz with Host")


def test_rollout_admin_readyz_audit_unwritable(t):
    """Issue 12, 1: /readyz as a load balancer sends it fails (503) while
    the audit trail cannot be written (audit.file is /dev/full), and
    /healthz still says the process runs."""
    conf = admin_conf(t.conf())
    conf["audit"]["file"] = "/dev/full"
    g = t.gate(conf)
    # The first record (start) fails to write; the trail is faulted.
    r = g.curl(LIST, auth=f"Bearer {t.key('billing')}")
    eq(r.status, 503, "a call while the trail cannot be written")
    status, _, body, _ = admin_raw(conf, b"GET /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (503, b"audit trail not writable\n"), "HAProxy-style /readyz")
    status, hdrs, body, _ = admin_raw(conf, b"HEAD /readyz HTTP/1.0\r\n\r\n")
    eq((status, body), (503, b""), "HEAD /readyz")
    eq(admin_raw(conf, b"GET /healthz HTTP/1.0\r\n\r\n")[0], 200, "/healthz")
    eq(t.standin.requests(), [], "requests WHM received")
