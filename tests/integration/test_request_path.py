"""The way of one request (issue "The way of one request, rebuilt", and the
slow reader of "Hostile input, round 2"): completion that never recurses,
every exit of a request ends it once, limits that fail closed, a request's
records that keep its peer, and a client that never reads is cut."""
import base64
import hashlib
import json
import os
import resource
import socket
import subprocess
import threading
import time

from lib import check_error, eq, read_response, read_while_trickling, wait_until

# An LD_PRELOAD shim built by the test: curl_multi_add_handle fails while
# the file named by WHMGATE_SHIM_FAIL_ADD exists, and fdatasync sleeps
# WHMGATE_SHIM_SLOW_SYNC_MS while the file named by WHMGATE_SHIM_SLOW_SYNC
# exists. It changes no behaviour when the files are absent.
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int flag(const char *env)
{
	const char *p = getenv(env);
	return p && access(p, F_OK) == 0;
}

int curl_multi_add_handle(void *m, void *e)
{
	static int (*real)(void *, void *);
	if (!real)
		real = (int (*)(void *, void *))dlsym(RTLD_NEXT, "curl_multi_add_handle");
	if (flag("WHMGATE_SHIM_FAIL_ADD"))
		return 3;                       /* CURLM_OUT_OF_MEMORY */
	return real(m, e);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (flag("WHMGATE_SHIM_SLOW_SYNC")) {
		const char *ms = getenv("WHMGATE_SHIM_SLOW_SYNC_MS");
		long v = ms ? atol(ms) : 300;
		struct timespec ts = { v / 1000, (v % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return real(fd);
}
"""


def shim(t):
    """Builds the shim; returns (path of the .so, env for the gate)."""
    src = os.path.join(t.dir, "shim.c")
    so = os.path.join(t.dir, "shim.so")
    with open(src, "w") as f:
        f.write(SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                   check=True, capture_output=True, timeout=60)
    env = {"LD_PRELOAD": so,
           # An ASan build wants its runtime first; the shim comes before.
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0",
           "WHMGATE_SHIM_FAIL_ADD": os.path.join(t.dir, "fail_add"),
           "WHMGATE_SHIM_SLOW_SYNC": os.path.join(t.dir, "slow_sync")}
    return so, env


def touch(path):
    open(path, "w").close()


def get(url, auth=None, close=False):
    h = f"GET {url} HTTP/1.1\r\nHost: x\r\n"
    if auth:
        h += f"Authorization: {auth}\r\n"
    if close:
        h += "Connection: close\r\n"
    return (h + "\r\n").encode()


def test_request_deep_pipeline_small_stack(t):
    """5000 pipelined refused requests in one write, with the gateway's
    stack limited to 256 KiB: every one answered, in order, each with its
    deny record. (The old completion recursed once per request and died
    after about 1900 at this stack size.)"""
    n = 5000
    g = t.gate()
    resource.prlimit(g.pid, resource.RLIMIT_STACK, (256 * 1024, 256 * 1024))
    data = b"".join(get(f"/p{i}") for i in range(n))
    s = socket.create_connection(("127.0.0.1", g.port), timeout=30 * t.session.slow)
    sender = threading.Thread(target=s.sendall, args=(data,))
    sender.start()
    buf = bytearray()
    ids = []
    for i in range(n):
        r = read_response(s, buf)
        eq(r.status, 404, f"answer {i + 1}")
        ids.append(r.header("X-Request-Id"))
    sender.join()
    s.close()
    eq(g.proc.poll(), None, "whmgate still running")
    eq(len(set(ids)), n, "distinct request ids")
    g.wait_audit(lambda recs: sum(r["type"] == "deny" for r in recs) >= n,
                 timeout=20 * t.session.slow, what=f"{n} deny records")
    paths = {r["id"]: r["http"]["path"] for r in g.audit() if r["type"] == "deny"}
    eq([paths.get(i) for i in ids], [f"/p{i}" for i in range(n)],
       "deny records' paths in the order of the answers")
    # The connection is still served after all of it.
    eq(g.curl("/json-api/listaccts", auth=f"Bearer {t.key('billing')}").status, 200,
       "a call afterwards")


def test_request_upstream_start_failure_keepalive(t):
    """When the call to WHM cannot even start (curl_multi_add_handle fails,
    forced by an LD_PRELOAD shim), the client gets a 502, the response
    record says so, WHM received nothing, and the next request on the
    same keep-alive connection is answered (it used to hang)."""
    so, env = shim(t)
    g = t.gate(env=env)
    auth = f"Bearer {t.key('billing')}"
    url = "/json-api/listaccts?api.version=1"
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10 * t.session.slow)
    buf = bytearray()
    touch(env["WHMGATE_SHIM_FAIL_ADD"])
    t.standin.reset()
    s.sendall(get(url, auth))
    r1 = read_response(s, buf)
    rid1 = check_error(r1, 502, "upstream_unavailable")
    eq(t.standin.requests(), [], "what WHM received during the failure")
    os.unlink(env["WHMGATE_SHIM_FAIL_ADD"])
    s.sendall(get(url, auth))
    r2 = read_response(s, buf)
    eq(r2.status, 200, "the next request on the same connection")
    s.close()
    recs = g.records(rid1)
    eq([r["type"] for r in recs], ["request", "response"], "records of the failed call")
    eq(recs[1]["http"]["status"], 502, "response record status")
    assert recs[1]["upstream"]["error"], recs[1]
    rid2 = r2.header("X-Request-Id")
    eq([r["type"] for r in g.records(rid2)], ["request", "response"],
       "records of the next call")
    eq(len(t.standin.requests()), 1, "calls WHM received")


def test_request_detached_record_keeps_peer(t):
    """A client that leaves while its request record is being written (the
    writer's fdatasync slowed by the shim) gets a response record 499 that
    still names its address and port."""
    so, env = shim(t)
    env["WHMGATE_SHIM_SLOW_SYNC_MS"] = "400"
    g = t.gate(env=env)
    auth = f"Bearer {t.key('billing')}"
    t.standin.reset()
    touch(env["WHMGATE_SHIM_SLOW_SYNC"])
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
    port = s.getsockname()[1]
    s.sendall(get("/json-api/listaccts?api.version=1", auth))
    time.sleep(0.1)                 # the request record is being written
    s.close()

    def found():
        return [r for r in g.audit() if r["type"] == "response"]
    wait_until(lambda: found(), 5 * t.session.slow, what="the response record")
    os.unlink(env["WHMGATE_SHIM_SLOW_SYNC"])
    resp = found()[0]
    eq((resp["http"]["status"], resp["upstream"]["error"]), (499, "client_closed"),
       "response record")
    eq((resp["client"]["ip"], resp["client"]["port"]), ("127.0.0.1", port),
       "the detached request's peer")
    eq(t.standin.requests(), [], "what WHM received")


def test_request_rate_limits_many_clients(t):
    """1100 clients of burst 1: every client's second call inside the
    window gets 429 (the old table held 1024 clients and let the others
    through). The first call of each is refused by policy after taking its
    token, so WHM sees nothing."""
    n = 1100
    conf = t.conf()
    keys = {}
    for i in range(n):
        key = "whmg_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
        cid = f"c{i}"
        keys[cid] = key
        conf["clients"][cid] = {
            "keys": ["sha256:" + hashlib.sha256(key.encode()).hexdigest()],
            "whm_user": "root", "whm_token": {"file": t.token_file},
            "rate": {"per_second": 0.01, "burst": 1},
            "allow": {"listaccts": {}}}
    conf["audit"]["fsync"] = "never"
    g = t.gate(conf)
    t.standin.reset()
    s = socket.create_connection(("127.0.0.1", g.port), timeout=20 * t.session.slow)
    buf = bytearray()
    firsts, seconds = [], []
    for cid, key in keys.items():
        s.sendall(get("/json-api/removeacct?user=x", f"Bearer {key}")
                  + get("/json-api/removeacct?user=x", f"Bearer {key}"))
        firsts.append(read_response(s, buf).status)
        r = read_response(s, buf)
        seconds.append((r.status, r.json()["whmgate"]["error"]))
    s.close()
    eq(set(firsts), {403}, "first calls (policy refuses after the rate check)")
    bad = [(cid, st) for cid, st in zip(keys, seconds) if st != (429, "rate_limited")]
    eq(bad[:5], [], f"second calls not 429 ({len(bad)} of {n})")
    eq(t.standin.requests(), [], "what WHM received")


def test_request_slow_reader_cut(t):
    """A client that asks for an 8 MB answer (more than the kernel buffers hold) with a 2 KB receive buffer
    and never reads is cut after idle_timeout_ms without progress, however
    little of the answer is left in whmgate's buffers; its response record
    says 499 client_stalled with WHM's status (it used to stay open with
    the record saying 200)."""
    conf = t.conf()
    conf["limits"] = {"idle_timeout_ms": 1000}
    g = t.gate(conf)
    t.standin.reset()
    t.standin.behave(body_bytes=8_000_000)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    s.connect(("127.0.0.1", g.port))
    s.sendall(get("/json-api/listaccts?api.version=1", f"Bearer {t.key('billing')}"))

    def rec():
        return [r for r in g.audit() if r["type"] == "response"]
    wait_until(rec, 15 * t.session.slow, what="the response record")
    resp = rec()[0]
    eq((resp["http"]["status"], resp["upstream"]["error"], resp["upstream"]["status"]),
       (499, "client_stalled", 200), "response record")
    assert resp["upstream"]["bytes"] < 8_000_000, resp["upstream"]
    # The connection is gone: reading drains what was sent, then the end.
    s.settimeout(5)
    got = 0
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += len(b)
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    assert got < 8_000_000, f"the client got the whole answer ({got} bytes)"
    t.note(f"cut after {got} bytes")


def test_request_body_trickle_deadline(t):
    """A body trickled a byte at a time, each pause shorter than
    idle_timeout_ms, is cut at body_timeout_ms with 408 and its deny
    record (it used to be held as long as the client kept trickling)."""
    conf = t.conf()
    conf["limits"] = {"idle_timeout_ms": 1000, "body_timeout_ms": 1500}
    g = t.gate(conf)
    t.standin.reset()
    s = socket.create_connection(("127.0.0.1", g.port), timeout=10 * t.session.slow)
    s.sendall((f"POST /json-api/listaccts HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {t.key('billing')}\r\n"
               f"Content-Type: application/x-www-form-urlencoded\r\n"
               f"Content-Length: 1000\r\n\r\n").encode())
    try:
        r = read_while_trickling(s)
    finally:
        s.close()
    rid = check_error(r, 408, "request_timeout")
    eq([x["type"] for x in g.records(rid)], ["deny"], "records")
    eq(t.standin.requests(), [], "what WHM received")


def test_request_metrics_labels(t):
    """whmgate_requests_total says why a call was refused (unauthenticated,
    forbidden, rate_limited, bad_request) and counts an allowed
    uapi_cpanel call under its own allow entry, not as "other"."""
    import urllib.request
    from lib import free_port
    conf = t.conf()
    admin = free_port()
    conf["admin"] = f"127.0.0.1:{admin}"
    conf["clients"]["billing"]["allow"]["uapi_cpanel:Email::list_pops"] = {
        "cpanel.user": {"pattern": "^cust[0-9]+$"}}
    conf["clients"]["support"]["rate"] = {"per_second": 0.01, "burst": 1}
    g = t.gate(conf)
    billing, support = f"Bearer {t.key('billing')}", f"Bearer {t.key('support')}"
    uapi = ("/json-api/uapi_cpanel?api.version=1&cpanel.module=Email"
            "&cpanel.function=list_pops&cpanel.user=cust1")
    calls = [(uapi, billing, 200), (LIST_URL, support, 200), (LIST_URL, support, 429),
             (LIST_URL, f"Bearer {t.key('stranger')}", 401),
             ("/json-api/removeacct?user=x", billing, 403),
             ("/json-api/listaccts?a=%zz", billing, 400)]
    for url, auth, want in calls:
        eq(g.curl(url, auth=auth).status, want, f"status of {url}")
    g.wait_audit(lambda rs: sum(r["type"] in ("deny", "response") for r in rs) >= len(calls),
                 what="final records")
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10).read().decode()
    got = {}
    for line in text.splitlines():
        if line.startswith("whmgate_requests_total{"):
            labels, v = line.rsplit(" ", 1)
            got[labels[len("whmgate_requests_total"):]] = float(v)
    want = {
        '{client="billing",function="uapi_cpanel:Email::list_pops",decision="allow"}': 1,
        '{client="support",function="listaccts",decision="allow"}': 1,
        '{client="support",function="listaccts",decision="rate_limited"}': 1,
        '{client="unknown",function="listaccts",decision="unauthenticated"}': 1,
        '{client="billing",function="other",decision="forbidden"}': 1,
        '{client="billing",function="listaccts",decision="bad_request"}': 1,
    }
    eq(got, want, "whmgate_requests_total")


LIST_URL = "/json-api/listaccts?api.version=1"
