"""Memory bounds of issue "Performance": idle keep-alive connections are
cheap, and with several workers every worker serves and shares one chain."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

from lib import check_forwarded, cpu_seconds, eq, free_port, read_response, wait_until


def test_perf_10k_idle_connections(t):
    """10,000 idle connections (a request made on some of them first, so
    they are kept-alive ones) keep whmgate's RSS under 64 MB."""
    conf = t.conf()
    conf["limits"] = {"max_connections": 12000, "header_timeout_ms": 60000,
                      "idle_timeout_ms": 60000}
    g = t.gate(conf)
    key = t.key("billing").encode()
    req = (b"GET /json-api/listaccts?api.version=1 HTTP/1.1\r\nHost: x\r\n"
           b"Authorization: Bearer " + key + b"\r\n\r\n")
    before = g.status()
    socks = []
    try:
        for _ in range(10000):
            socks.append(socket.create_connection(("127.0.0.1", g.port), timeout=10))
        for s in socks[:200]:
            s.sendall(req)
        for s in socks[:200]:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                assert chunk, "connection closed before an answer"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data[:60]
        # Every connection is still open and served: the last one too.
        socks[-1].sendall(req)
        socks[-1].settimeout(10)
        assert socks[-1].recv(12) == b"HTTP/1.1 200", "the 10,000th connection"
        after = g.status()
    finally:
        for s in socks:
            s.close()
    mb = after["VmRSS"] / 1024
    t.note(f"RSS {before['VmRSS'] / 1024:.1f} MB idle, {mb:.1f} MB with 10k connections")
    if not t.session.instrumented:
        assert mb < 64, f"RSS with 10k idle connections: {mb:.1f} MB"


def test_perf_workers_share_one_chain(t):
    """With 4 workers, 200 calls over fresh connections spread over the
    workers and their records form one chain that `audit verify` accepts."""
    conf = t.conf()
    conf["workers"] = 4
    g = t.gate(conf)
    auth = f"Bearer {t.key('billing')}"
    results = []

    def call():
        for _ in range(25):
            results.append(g.curl("/json-api/listaccts?api.version=1", auth=auth).status)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    eq(results.count(200), 200, "calls answered 200")
    g.wait_audit(lambda recs: sum(r["type"] == "response" for r in recs) == 200,
                 what="200 response records")
    r = t.run_bin("audit", "verify", g.conf["audit"]["file"])
    eq(r.returncode, 0, f"audit verify ({r.stdout.strip()})")
    seqs = [r["seq"] for r in g.audit()]
    eq(seqs, list(range(1, len(seqs) + 1)), "seq without gaps")


def strace_count(t, g, syscalls, action):
    """Runs action() while strace counts the given syscalls of gate g (all
    threads); returns (calls, strace's table), or (None, why) when strace
    cannot attach here (no ptrace permission)."""
    out = os.path.join(t.dir, "strace.txt")
    st = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=" + ",".join(syscalls),
                           "-o", out, "-p", str(g.pid)], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        time.sleep(0.5 * t.session.slow)     # attached to every thread
        action()
    finally:
        if st.poll() is None:
            st.send_signal(signal.SIGINT)
        st.wait(timeout=10)
    err = st.stderr.read().decode("utf-8", "replace")
    # strace says "Process N attached" when it could; its exit code after
    # SIGINT is not a verdict.
    if "attached" not in err or not os.path.exists(out):
        return None, f"strace could not attach ({err.strip()[-200:]})"
    with open(out) as f:
        text = f.read()
    names = "|".join(re.escape(n) for n in syscalls)
    calls = sum(int(m.group(1)) for m in re.finditer(
        r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+(?:%s)$" % names, text, re.M))
    return calls, text


def test_perf_pooled_connection_no_epoll_churn(t):
    """A call on a pooled WHM connection costs no epoll_ctl: the socket's
    poll handle stays from one call to the next (it used to be created and
    closed per call: five or six epoll_ctl each). strace counts them over
    30 keep-alive calls; the connection to WHM is one and the same."""
    if t.session.wrapper or not shutil.which("strace"):
        t.note("skipped: needs strace and no wrapper")
        return
    g = t.gate()
    url = "/json-api/listaccts?api.version=1"
    auth = f"Bearer {t.key('billing')}"
    eq(g.curl(url, auth=auth).status, 200, "warm-up call (opens the WHM connection)")

    def calls30():
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        req = (f"GET {url} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").encode()
        buf = bytearray()
        for i in range(30):
            s.sendall(req)
            resp = read_response(s, buf)
            eq(resp.status, 200, f"call {i + 1} on the kept-alive connection")
        s.close()
    calls, text = strace_count(t, g, ["epoll_ctl"], calls30)
    if calls is None:
        t.note(f"count skipped: {text}")
        return
    t.note(f"{calls} epoll_ctl for 30 calls")
    conns = {r["conn"] for r in t.standin.requests()}
    eq(len(conns), 1, "connections WHM saw (the pooled one, reused)")
    assert calls < 10, f"epoll_ctl calls for 30 calls on a pooled connection: {calls}\n{text}"


def test_perf_idle_upstream_close_no_spin(t):
    """WHM closes a pooled connection while it is idle: whmgate stops
    watching it (no busy loop on the readable, closed socket), and the next
    call opens a new connection and succeeds."""
    g = t.gate()
    url = "/json-api/listaccts?api.version=1"
    auth = f"Bearer {t.key('billing')}"
    t.standin.behave(idle_close_ms=100)
    eq(g.curl(url, auth=auth).status, 200, "first call")
    time.sleep(0.5)                           # WHM has closed it by now
    c0 = cpu_seconds(g.pid)
    time.sleep(1.0)
    used = cpu_seconds(g.pid) - c0
    t.note(f"{used:.2f} s CPU in 1 s idle after WHM closed the connection")
    if not t.session.wrapper:
        assert used < 0.3, f"CPU in 1 s idle: {used:.2f} s (a loop on the closed socket)"
    r = g.curl(url, auth=auth)
    eq(r.status, 200, "the call after WHM closed the pooled connection")
    check_forwarded(g, r.header("X-Request-Id"))
    conns = [q["conn"] for q in t.standin.requests()]
    eq(len(set(conns)), 2, f"connections WHM saw ({conns})")


def test_perf_large_answer_gathered(t):
    """A 2 MB answer reaches the client in writes of up to 64 KiB gathered
    from curl's 16 KiB pieces, not a write per piece: strace counts the
    writes (plain listener); the bytes arrive complete and in order."""
    if t.session.wrapper or not shutil.which("strace"):
        t.note("skipped: needs strace and no wrapper")
        return
    size = 2_000_000
    g = t.gate()
    auth = f"Bearer {t.key('billing')}"
    eq(g.curl("/json-api/listaccts?api.version=1", auth=auth).status, 200, "warm-up call")
    t.standin.behave(body_bytes=size)
    box = {}

    def call():
        s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
        s.sendall(f"GET /json-api/listaccts?api.version=1 HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: {auth}\r\n\r\n".encode())
        box["r"] = read_response(s)
        s.close()
        g.records(box["r"].header("X-Request-Id"))
    writes, text = strace_count(t, g, ["write", "writev"], call)
    r = box["r"]
    eq(r.status, 200, "status")
    eq(len(r.body), size, "body bytes")
    json.loads(r.body)
    if writes is None:
        t.note(f"count skipped: {text}")
        return
    t.note(f"{writes} writes for a {size // 1000} kB answer")
    # 2 MB in 16 KiB pieces would be 123 writes; gathered, about 31 (plus
    # the audit writer's and any the socket did not take at once).
    assert writes < 70, f"writes for a 2 MB answer: {writes}\n{text}"


def test_perf_large_answer_over_tls(t):
    """A 3 MB answer over the TLS listener: gathered pieces are encrypted
    together and arrive complete, in order, as valid JSON."""
    from opslib import port_open, write_secret
    s = t.session
    key = os.path.join(t.dir, "gw.key")
    with open(s.server_key) as f:
        write_secret(key, f.read())
    conf = t.conf()
    port = free_port()
    conf["listen_tls"] = [{"address": f"127.0.0.1:{port}", "cert": s.server_crt, "key": key}]
    g = t.gate(conf)
    wait_until(lambda: port_open(port), 10 * s.slow, what="the TLS listener")
    size = 3_000_000
    t.standin.behave(body_bytes=size)
    ctx = ssl.create_default_context(cafile=s.ca_crt)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60 * s.slow)
    try:
        conn.request("GET", "/json-api/listaccts?api.version=1",
                     headers={"Authorization": f"Bearer {t.key('billing')}"})
        resp = conn.getresponse()
        body = resp.read()
        eq(resp.status, 200, "status")
        eq(len(body), size, "body bytes")
        doc = json.loads(body)
        eq(doc["metadata"]["result"], 1, "metadata.result of the answer")
        # A second call on the same TLS connection: the state carried over.
        conn.request("GET", "/json-api/listaccts?api.version=1",
                     headers={"Authorization": f"Bearer {t.key('billing')}"})
        resp = conn.getresponse()
        eq(resp.status, 200, "second call on the connection")
        eq(len(resp.read()), size, "second body")
    finally:
        conn.close()
    rid = resp.getheader("X-Request-Id")
    check_forwarded(g, rid)
