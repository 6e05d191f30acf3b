"""Memory bounds of issue "Performance": idle keep-alive connections are
cheap, and with several workers every worker serves and shares one chain."""
import socket
import threading

from lib import eq


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
