"""Operations: reload, key and token rotation, drain and stop, TLS with
client certificates, rate and in-flight limits, the admin listener and its
metrics, config checks and privilege drop (SPEC sections 2, 3, 8 and 9)."""
import copy
import hashlib
import http.client
import json
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

from lib import (check_deny, check_error, check_forwarded, eq, free_port, header,
                 parse_response, peer_closed, read_response)
from opslib import (RawClient, admin_conf, admin_get, fingerprint, make_ca, make_cert,
                    msum, mval, port_open, samples, scrape, sighup, start_expect_failure,
                    status_ids, wait_exit, wait_until, write_conf, write_secret)

LIST = "/json-api/listaccts?api.version=1"
SUMMARY = "/json-api/accountsummary?api.version=1&user=cust1"


def base_conf(t, upstream_url=None, **upstream):
    """t.conf() with the upstream timeouts scaled for slow runs (valgrind)."""
    c = t.conf(upstream_url, **upstream)
    c["upstream"]["connect_timeout_ms"] *= t.session.slow
    c["upstream"]["timeout_ms"] *= t.session.slow
    return c


def bearer(t, name):
    return f"Bearer {t.key(name)}"


def final_records(recs):
    return [r for r in recs if r.get("type") in ("deny", "response")]


# ---------------------------------------------------------------- 1. reload under load

def test_ops_reload_under_load(t):
    """1. A client keeps calling (keep-alive and new connections) while the
    config is rewritten and SIGHUP'd 20 times, alternating whether support
    may call accountsummary: every always-allowed call is a 200, a probe
    after each reload record sees the new policy, 20 ok reloads counted."""
    conf = admin_conf(base_conf(t))
    wide = copy.deepcopy(conf)
    wide["clients"]["support"]["allow"]["accountsummary"] = {}
    g = t.gate(conf)
    auth = bearer(t, "billing")
    stop = threading.Event()
    statuses, failures = [], []

    def load():
        conn, i = None, 0
        while not stop.is_set():
            i += 1
            try:
                if conn is None or i % 4 == 0:       # a new connection every 4th call
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
                conn.request("GET", LIST, headers={"Authorization": auth})
                r = conn.getresponse()
                body = r.read()
                statuses.append(r.status)
                if r.status != 200:
                    failures.append(f"call {i}: {r.status} {body[:120]!r}")
                if (r.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:      # noqa: BLE001 - every failure counts
                failures.append(f"call {i}: {type(e).__name__}: {e}")
                conn = None
        if conn:
            conn.close()

    th = threading.Thread(target=load, daemon=True)
    th.start()
    try:
        wait_until(lambda: len(statuses) >= 5, 10 * t.session.slow, what="first calls")
        digests, seen = [], []
        for i in range(20):
            allowed = i % 2 == 0
            rec = sighup(g, wide if allowed else conf)
            eq(rec.get("result"), "ok", f"reload {i + 1} result ({rec})")
            digests.append(rec.get("config_digest"))
            seen.append(len(statuses))
            r = g.curl(SUMMARY, auth=bearer(t, "support"))
            if allowed:
                eq(r.status, 200, f"probe after reload {i + 1} (accountsummary allowed)"
                   f" {r.body[:160]!r}")
            else:
                check_error(r, 403, "function_not_allowed")
    finally:
        stop.set()
        th.join(30)
    assert not failures, (f"{len(failures)} of {len(statuses) + len(failures)} "
                          f"always-allowed calls failed: {failures[:5]}")
    assert seen[-1] > seen[0], "the load made no progress while reloading"
    eq(set(statuses), {200}, "statuses of the always-allowed calls")
    start = [r for r in g.audit() if r.get("event") == "start"][0]
    assert digests[0] and digests[0] != digests[1], f"config digests {digests[:2]}"
    eq(digests, [digests[0], digests[1]] * 10, "config digests of the alternating reloads")
    eq(digests[1], start.get("config_digest"), "digest after reverting vs at start")
    m, _ = scrape(conf)
    eq(mval(m, "whmgate_config_reloads_total", result="ok"), 20, "ok reloads counted")
    eq(mval(m, "whmgate_config_reloads_total", result="refused"), 0,
       "refused reloads counted")
    t.note(f"{len(statuses)} calls during 20 reloads")


# ---------------------------------------------------------------- 2. invalid reloads

def test_ops_reload_refused(t):
    """2. A reload with an unknown key, a bad CIDR, a bad pattern, a changed
    listen or admin address, a changed audit.file, audit.fsync, workers, or
    an added audit.hmac_key_file, audit.syslog or user, or broken JSON, is
    refused with a `system` record naming why (counted as refused); the
    old policy stays, whmgate keeps serving and stays ready; a good reload
    afterwards takes over."""
    conf = admin_conf(base_conf(t))
    g = t.gate(conf)
    new_port = free_port()

    def widened():
        c = copy.deepcopy(conf)
        c["clients"]["support"]["allow"]["accountsummary"] = {}
        return c

    bad = []
    c = widened()
    c["bogus_key"] = 1
    bad.append(("unknown key", c, [r"\$\.bogus_key"]))
    c = widened()
    c["clients"]["billing"]["source"] = ["127.0.0.1/8"]
    bad.append(("CIDR with host bits", c, [r"\$\.clients\.billing\.source\[0\]"]))
    c = widened()
    c["listen"] = [f"127.0.0.1:{new_port}"]
    bad.append(("changed listen", c, [r"listen"]))
    c = widened()
    c["admin"] = f"127.0.0.1:{free_port()}"
    bad.append(("changed admin", c, [r"admin"]))
    c = widened()
    c["audit"]["file"] = os.path.join(t.dir, "other-audit.jsonl")
    bad.append(("changed audit.file", c, [r"audit\.file"]))
    c = widened()
    c["audit"]["fsync"] = "never"
    bad.append(("changed audit.fsync", c, [r"audit\.fsync"]))
    hmac = os.path.join(t.dir, "hmac.key")
    write_secret(hmac, os.urandom(32).hex())
    c = widened()
    c["audit"]["hmac_key_file"] = hmac
    bad.append(("added audit.hmac_key_file", c, [r"hmac_key_file"]))
    c = widened()
    c["audit"]["syslog"] = "unix:/dev/log"
    bad.append(("added audit.syslog", c, [r"syslog"]))
    c = widened()
    c["workers"] = 2
    bad.append(("changed workers", c, [r"workers"]))
    c = widened()
    c["user"] = "nobody"
    bad.append(("added user", c, [r"user"]))
    c = widened()
    c["clients"]["support"]["allow"]["createacct"] = {"username": {"pattern": "^[a-z("}}
    bad.append(("bad pattern", c, [r"\$\.clients\.support\.allow\.createacct"]))

    for what, c, patterns in bad:
        rec = sighup(g, c)
        eq(rec.get("result"), "refused", f"reload result for {what} ({rec})")
        reason = rec.get("reason")
        assert isinstance(reason, str) and reason, f"no reason for {what}: {rec}"
        for p in patterns:
            assert re.search(p, reason), f"reason for {what} does not name {p!r}: {reason!r}"
        r = g.curl(SUMMARY, auth=bearer(t, "support"))
        rid = check_error(r, 403, "function_not_allowed")
        check_deny(g, rid, 403, "function_not_allowed")
        r = g.curl(LIST, auth=bearer(t, "billing"))
        eq(r.status, 200, f"billing after the refused reload ({what})")
    assert not port_open(new_port), "whmgate listens on the refused new address"

    # Broken JSON.
    with open(g.conf_path, "w") as f:
        f.write(json.dumps(widened())[:-20])
    rec = sighup(g)
    eq(rec.get("result"), "refused", f"reload result for truncated JSON ({rec})")
    check_error(g.curl(SUMMARY, auth=bearer(t, "support")), 403, "function_not_allowed")
    nbad = len(bad) + 1

    m, _ = scrape(conf)
    eq(mval(m, "whmgate_config_reloads_total", result="refused"), nbad, "refused reloads")
    eq(mval(m, "whmgate_config_reloads_total", result="ok"), 0, "ok reloads")
    status, body, _ = admin_get(conf, "/readyz")
    eq(status, 200, f"/readyz after refused reloads ({body!r})")

    # A good one still takes over.
    rec = sighup(g, widened())
    eq(rec.get("result"), "ok", f"the valid reload ({rec})")
    eq(g.curl(SUMMARY, auth=bearer(t, "support")).status, 200,
       "support's accountsummary after the valid reload")
    stderr = g.stderr()
    assert t.session.token not in stderr, "the WHM token is in stderr"


# ---------------------------------------------------------------- 3. key and token rotation

def test_ops_key_and_token_rotation(t):
    """3. Add a second key to billing and reload: both keys work; drop the
    old one and reload: it gets 401. A new WHM token in the token file is
    sent to WHM after a reload (the stand-in, not knowing it, answers 403
    with its legacy body, relayed as is); the old token comes back with
    the next reload."""
    old_key = t.key("billing")
    new_key, new_hash = t.session.keygen()
    conf = base_conf(t)
    g = t.gate(conf)
    eq(g.curl(LIST, auth=f"Bearer {old_key}").status, 200, "the old key at start")
    check_error(g.curl(LIST, auth=f"Bearer {new_key}"), 401, "unauthenticated")

    both = copy.deepcopy(conf)
    both["clients"]["billing"]["keys"].append(new_hash)
    eq(sighup(g, both).get("result"), "ok", "reload with two keys")
    for auth in (f"Bearer {old_key}", f"Bearer {new_key}", f"whm billing:{new_key}",
                 f"whm billing:{old_key}"):
        r = g.curl(LIST, auth=auth)
        eq(r.status, 200, f"{auth.split()[0]} with {'new' if new_key in auth else 'old'} key"
           " after adding the new key")
        req, _ = check_forwarded(g, r.header("X-Request-Id"))
        eq(req["client"]["id"], "billing", "client.id")

    only_new = copy.deepcopy(both)
    only_new["clients"]["billing"]["keys"] = [new_hash]
    # A call in flight with the old key finishes on the old config.
    t.standin.behave(delay_ms=800)
    slow_out = []
    th = threading.Thread(target=lambda: slow_out.append(
        g.curl(LIST, auth=f"Bearer {old_key}")), daemon=True)
    try:
        n0 = len(t.standin.requests())
        th.start()
        wait_until(lambda: len(t.standin.requests()) > n0, 10 * t.session.slow,
                   what="the slow call reaching WHM")
        eq(sighup(g, only_new).get("result"), "ok", "reload without the old key")
        th.join(20 * t.session.slow)
    finally:
        t.standin.behave(delay_ms=0)
    eq([r.status for r in slow_out], [200], "the call in flight during the key removal")
    _, resp = check_forwarded(g, slow_out[0].header("X-Request-Id"))
    eq((resp["client"]["id"], resp["http"]["status"]), ("billing", 200),
       "response record of the call in flight during the reload")
    for auth in (f"Bearer {old_key}", f"whm billing:{old_key}"):
        rid = check_error(g.curl(LIST, auth=auth), 401, "unauthenticated")
        check_deny(g, rid, 401, "unauthenticated")
    eq(g.curl(LIST, auth=f"Bearer {new_key}").status, 200, "the new key after rotation")

    # The WHM token: a new one in the file is picked up by the reload.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    new_token = "".join(alphabet[b % 36] for b in os.urandom(32))
    write_secret(t.token_file, new_token)
    n0 = len(t.standin.requests())
    eq(sighup(g, only_new).get("result"), "ok", "reload with a new token file")
    r = g.curl(LIST, auth=f"Bearer {new_key}")
    eq(r.status, 403, f"status when WHM refuses the new token ({r.body[:160]!r})")
    body = r.json()
    eq(body.get("cpanelresult", {}).get("error"), "Access denied",
       "WHM's legacy 403 body relayed as is")
    _, resp = check_forwarded(g, r.header("X-Request-Id"))
    eq(resp["http"]["status"], 403, "response record http.status")
    reqs = t.standin.requests()[n0:]
    eq(len(reqs), 1, "requests WHM received after the token change")
    eq(header(reqs[0], "Authorization"), [f"whm root:{new_token}"],
       "Authorization WHM received after the token change")

    write_secret(t.token_file, t.session.token)
    eq(sighup(g, only_new).get("result"), "ok", "reload with the old token back")
    eq(g.curl(LIST, auth=f"Bearer {new_key}").status, 200, "status with the token restored")
    eq(header(t.standin.requests()[-1], "Authorization"), [f"whm root:{t.session.token}"],
       "Authorization WHM received after restoring the token")
    with open(g.audit_path, encoding="utf-8") as f:
        audit = f.read()
    for secret, what in ((new_token, "new WHM token"), (new_key, "new key")):
        assert secret not in audit, f"the {what} is in the audit file"
        assert secret not in g.stderr(), f"the {what} is in stderr"


# ---------------------------------------------------------------- 4. drain and stop

def check_trail_complete(t, g):
    """Every request record has exactly one response, every id ends once,
    seq runs 1..n, the stop record is the last line, `audit verify` passes."""
    recs = g.audit()
    eq([r["seq"] for r in recs], list(range(1, len(recs) + 1)), "seq of the audit lines")
    by_id = {}
    for r in recs:
        if r.get("id"):
            by_id.setdefault(r["id"], []).append(r["type"])
    bad = {i: ts for i, ts in by_id.items() if ts not in (["deny"], ["request", "response"])}
    assert not bad, f"request ids without a complete record pair: {list(bad.items())[:5]}"
    last = recs[-1]
    eq((last.get("type"), last.get("event")), ("system", "stop"), "the last audit record")
    eq(len([r for r in recs if r.get("event") == "stop"]), 1, "stop records")
    v = t.run_bin("audit", "verify", g.audit_path)
    eq(v.returncode, 0, f"audit verify ({(v.stdout + v.stderr).strip()[-300:]!r})")
    return recs


def test_ops_sigterm_under_load(t):
    """4. Eight clients call (half keep-alive, half a new connection per call,
    WHM slow while SIGTERM arrives): every call either completed with 200
    or was refused cleanly: 503 shutting_down, or, for a new connection,
    refused or closed before any byte of a response. A response finished
    while draining tells a keep-alive client to close (or answers its next
    request with 503); a request whose head was half sent at SIGTERM gets
    503 shutting_down. In-flight calls finish; the audit trail is
    complete and ends with the stop record; exit code 0."""
    conf = base_conf(t)
    conf["limits"] = {"shutdown_timeout_ms": 10000}
    g = t.gate(conf)
    auth = bearer(t, "billing")
    slow = t.session.slow
    term_sent = threading.Event()
    gone = threading.Event()
    results = []    # (thread, started before SIGTERM, ended after it, Outcome)
    lock = threading.Lock()

    def worker(n):
        cl = RawClient(g.port, keepalive=n % 2 == 0, timeout=30 * slow)
        refused_after = 0
        try:
            while refused_after < 2:
                before = not term_sent.is_set()
                o = cl.call(LIST, auth)
                after = term_sent.is_set()
                with lock:
                    results.append((n, before, after, o))
                if o.kind in ("refused", "closed") and gone.is_set():
                    refused_after += 1
                elif o.kind not in ("ok", "refused", "closed"):
                    return
                if o.kind in ("refused", "closed"):
                    time.sleep(0.02)
        finally:
            cl.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(8)]
    busy = RawClient(g.port, keepalive=True, timeout=30 * slow)
    busy_out = []
    busy_th = threading.Thread(target=lambda: busy_out.append(busy.call(LIST, auth)),
                               daemon=True)
    later = []      # failures reported after the other checks ran
    for th in threads:
        th.start()
    try:
        wait_until(lambda: len(results) >= 40, 20 * slow, what="fast calls")
        t.standin.behave(delay_ms=400)
        n0 = len(t.standin.requests())
        busy_th.start()
        # Calls are now waiting in WHM: stop in the middle of them.
        wait_until(lambda: len(t.standin.requests()) >= n0 + 5, 10 * slow,
                   what="slow calls reaching WHM")
        # A request whose head is half sent when SIGTERM comes.
        half = socket.create_connection(("127.0.0.1", g.port), timeout=10 * slow)
        half.sendall(b"GET /json-api/listaccts?api.version=1 HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.2)
        g.proc.send_signal(signal.SIGTERM)
        term_sent.set()
        wait_until(lambda: not port_open(g.port), 10 * slow, what="the listener to close")
        half.sendall(f"Authorization: {auth}\r\n\r\n".encode())
        late = read_response(half)
        late.closed = peer_closed(half, 5 * slow)
        half.close()
        busy_th.join(20 * slow)
        # The busy keep-alive connection: told to close, or answered 503.
        busy_next = None
        if busy_out and busy_out[0].kind == "ok" and busy.sock is not None:
            busy_next = busy.call(LIST, auth)
        rc = wait_exit(g)
        gone.set()
    finally:
        term_sent.set()
        gone.set()
        for th in threads:
            th.join(30)
        busy.close()
        t.standin.behave(delay_ms=0)
    eq(rc, 0, "exit code after SIGTERM")
    late_id = check_error(late, 503, "shutting_down")
    assert late.closed, "the connection stayed open after 503 shutting_down"

    def clean_503(o):
        return (o.kind == "ok" and o.resp.status == 503
                and o.resp.json().get("whmgate", {}).get("error") == "shutting_down")

    eq(len(busy_out), 1, "the busy keep-alive call returned")
    b = busy_out[0]
    eq((b.kind, b.resp and b.resp.status), ("ok", 200), f"the call in flight at SIGTERM {b}")
    if busy_next is not None and not clean_503(busy_next):
        later.append("a response finished while draining had no `Connection: close` and "
                     f"the next request on that connection got {busy_next}")

    bad = []
    for n, before, after, o in results:
        if o.kind == "ok" and (o.resp.status == 200 or clean_503(o)):
            continue
        if o.kind in ("refused", "closed") and after and not o.reused:
            continue
        bad.append((n, o))
    hard = [x for x in bad if not (x[1].kind == "closed" and x[1].reused)]
    assert not hard, f"{len(hard)} calls neither completed nor were refused cleanly: {hard[:4]}"
    if bad:
        later.append(f"{len(bad)} requests on kept-alive connections were closed unanswered "
                     "while draining (want `Connection: close` on the response before, or "
                     f"503 shutting_down): {bad[:2]}")
    done_after = [o for _, before, after, o in results if before and after
                  and o.kind == "ok" and o.resp.status == 200]
    assert done_after, "no call in flight at SIGTERM completed with 200"
    refused = [o for _, _, after, o in results if after and o.kind == "refused"]
    assert refused, "no new connection was refused after SIGTERM"

    recs = check_trail_complete(t, g)
    by_id = {}
    for r in recs:
        if r.get("id"):
            by_id.setdefault(r["id"], []).append(r)
    oks = [o for _, _, _, o in results] + busy_out + \
        ([busy_next] if busy_next else [])
    for o in oks:
        if o.kind != "ok":
            continue
        rid = o.resp.header("X-Request-Id")
        mine = by_id.get(rid, [])
        if o.resp.status == 200:
            eq([r["type"] for r in mine], ["request", "response"], f"records of 200 {rid}")
            eq(mine[1]["http"]["status"], 200, f"response record status of {rid}")
        else:
            eq([r["type"] for r in mine], ["deny"], f"records of 503 {rid}")
            eq(mine[0]["decision"]["code"], "shutting_down", f"deny code of {rid}")
    late_recs = by_id.get(late_id, [])
    eq([(r["type"], r["decision"]["code"]) for r in late_recs], [("deny", "shutting_down")],
       "records of the request completed while draining")
    kinds = {}
    for _, _, after, o in results:
        k = (o.kind if o.kind != "ok" else str(o.resp.status)) + \
            (" kept-alive" if o.reused else "") + (" after" if after else "")
        kinds[k] = kinds.get(k, 0) + 1
    t.note(", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    assert not later, " | ".join(later)


def test_ops_sigterm_idle_keepalive(t):
    """4c. SPEC 8: after SIGTERM, "answer new requests on open connections
    with 503 shutting_down": a kept-alive connection idle at SIGTERM (while
    another call keeps whmgate draining) gets 503 shutting_down for its
    next request, not a silent close."""
    g = t.gate(base_conf(t))
    auth = bearer(t, "billing")
    slow = t.session.slow
    idle = RawClient(g.port, keepalive=True, timeout=10 * slow)
    busy = RawClient(g.port, keepalive=False, timeout=30 * slow)
    busy_out = []
    th = threading.Thread(target=lambda: busy_out.append(busy.call(LIST, auth)), daemon=True)
    try:
        o = idle.call(LIST, auth)
        eq((o.kind, o.resp and o.resp.status), ("ok", 200), f"the first call {o}")
        assert idle.sock is not None, "the connection was not kept alive"
        t.standin.behave(delay_ms=1500)
        th.start()
        wait_until(lambda: len(t.standin.requests()) >= 2, 10 * slow,
                   what="the slow call reaching WHM")
        g.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: not port_open(g.port), 10 * slow, what="the listener to close")
        nxt = idle.call(LIST, auth)
        th.join(20 * slow)
        rc = wait_exit(g)
    finally:
        t.standin.behave(delay_ms=0)
        idle.close()
        busy.close()
    eq(rc, 0, "exit code")
    eq([(x.kind, x.resp and x.resp.status) for x in busy_out], [("ok", 200)],
       "the call in flight at SIGTERM")
    assert nxt.kind == "ok", f"the next request on the idle kept-alive connection got {nxt}, " \
        "want 503 shutting_down"
    rid = check_error(nxt.resp, 503, "shutting_down")
    check_trail_complete(t, g)
    eq([r["type"] for r in g.audit() if r.get("id") == rid], ["deny"], f"records of {rid}")


def test_ops_shutdown_deadline_cuts(t):
    """4b. A call still waiting for WHM at limits.shutdown_timeout_ms is cut:
    the client gets no response, its response record says shutdown, the
    stop record is last, the trail verifies, exit code 0."""
    conf = base_conf(t)
    conf["limits"] = {"shutdown_timeout_ms": 300}
    g = t.gate(conf)
    t.standin.behave(delay_ms=4000)
    out = []
    cl = RawClient(g.port, keepalive=True, timeout=20 * t.session.slow)
    th = threading.Thread(target=lambda: out.append(cl.call(LIST, bearer(t, "billing"))),
                          daemon=True)
    th.start()
    try:
        wait_until(lambda: len(t.standin.requests()) >= 1, 10 * t.session.slow,
                   what="the call reaching WHM")
        g.proc.send_signal(signal.SIGTERM)
        rc = wait_exit(g)
        th.join(20 * t.session.slow)
    finally:
        t.standin.behave(delay_ms=0)
        cl.close()
    eq(rc, 0, "exit code after cutting a call")
    eq(len(out), 1, "the slow call returned")
    o = out[0]
    assert o.kind == "closed" or (o.kind == "ok" and o.resp.status >= 500), \
        f"what the cut call got: {o} (want the connection cut, or a 5xx)"
    recs = check_trail_complete(t, g)
    reqs = [r for r in recs if r["type"] == "request"]
    eq(len(reqs), 1, "request records")
    resp = [r for r in recs if r["type"] == "response" and r["id"] == reqs[0]["id"]]
    eq(len(resp), 1, "response records of the cut call")
    words = json.dumps([resp[0].get("upstream"), resp[0].get("whm", {}).get("reason"),
                        resp[0].get("decision", {}).get("reason")])
    assert "shutdown" in words or "shutting" in words, \
        f"the response record of the cut call does not say shutdown: {resp[0]}"
    assert resp[0]["http"]["status"] != 200, f"cut call recorded as {resp[0]['http']}"
    t.note(f"recorded as {resp[0]['http']['status']} {resp[0].get('upstream')}")


# ---------------------------------------------------------------- 5. TLS and client certificates

def tls_curl(t, port, path=LIST, cert=None, auth=None, extra=()):
    """curl over https; returns (exit code, Response or None, stderr)."""
    cmd = ["curl", "-sS", "-i", "--max-time", str(20 * t.session.slow),
           "--cacert", t.session.ca_crt, *extra]
    if cert:
        cmd += ["--cert", cert[0], "--key", cert[1]]
    if auth:
        cmd += ["-H", f"Authorization: {auth}"]
    cmd.append(f"https://127.0.0.1:{port}{path}")
    r = subprocess.run(cmd, capture_output=True, timeout=30 * t.session.slow)
    resp = parse_response(r.stdout) if r.returncode == 0 else None
    return r.returncode, resp, r.stderr.decode("utf-8", "replace").strip()


def served_cert(port, ca):
    """The DER bytes of the certificate a new TLS connection is served."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def test_ops_tls_client_certs(t):
    """5. HTTPS listeners with client certificates: a client's certificate
    alone, or with the same client's key, is that client (client.auth
    "cert"); a key of another client, or a certificate from the CA that
    names no client, is 401; a foreign CA's certificate or none is refused
    in the handshake when required (401 otherwise); TLS 1.1 is refused;
    the WHM client form works without a certificate; keep-alive works;
    the server certificate rotates on SIGHUP."""
    d = t.dir
    s = t.session
    ca = make_ca(d, "clients-ca", "whmgate clients CA")
    other_ca = make_ca(d, "other-ca", "some other CA")
    certs = {name: make_cert(d, name, name, ca) for name in ("billing", "support", "nobody")}
    foreign = make_cert(d, "foreign", "billing", other_ca)
    # The server pair, copied so it can be replaced.
    gw_crt, gw_key = os.path.join(d, "gw.crt"), os.path.join(d, "gw.key")
    with open(s.server_crt) as f:
        crt_pem = f.read()
    with open(s.server_key) as f:
        write_secret(gw_key, f.read())
    with open(gw_crt, "w") as f:
        f.write(crt_pem)

    conf = base_conf(t)
    p_req, p_opt = free_port(), free_port()
    conf["listen_tls"] = [
        {"address": f"127.0.0.1:{p_req}", "cert": gw_crt, "key": gw_key,
         "client_ca": ca[0], "require_client_cert": True},
        {"address": f"127.0.0.1:{p_opt}", "cert": gw_crt, "key": gw_key,
         "client_ca": ca[0], "require_client_cert": False}]
    conf["clients"]["billing"]["certs"] = [fingerprint(certs["billing"][0])]
    conf["clients"]["support"]["certs"] = [fingerprint(certs["support"][0])]
    g = t.gate(conf)
    wait_until(lambda: port_open(p_req) and port_open(p_opt), 10 * s.slow,
               what="the TLS listeners")
    billing, support = t.key("billing"), t.key("support")
    forwarded = 0

    def ok(rc, resp, err, what, auth_kind, client="billing"):
        nonlocal forwarded
        eq(rc, 0, f"curl exit code for {what} ({err[-200:]!r})")
        eq(resp.status, 200, f"status for {what} ({resp.body[:160]!r})")
        req, _ = check_forwarded(g, resp.header("X-Request-Id"))
        eq(req["client"]["id"], client, f"client.id for {what}")
        eq(req["client"]["auth"], auth_kind, f"client.auth for {what}")
        forwarded += 1

    def unauth(rc, resp, err, what):
        eq(rc, 0, f"curl exit code for {what} ({err[-200:]!r})")
        rid = check_error(resp, 401, "unauthenticated")
        check_deny(g, rid, 401, "unauthenticated")

    def handshake_refused(rc, resp, err, what):
        assert rc != 0 and resp is None, \
            f"{what}: expected a refused TLS handshake, got curl {rc} {resp!r}"

    for port in (p_req, p_opt):
        ok(*tls_curl(t, port, cert=certs["billing"]), f"(a) billing's cert alone on {port}",
           "cert")
        ok(*tls_curl(t, port, cert=certs["support"]), f"(a) support's cert alone on {port}",
           "cert", "support")
        ok(*tls_curl(t, port, cert=certs["billing"], auth=f"Bearer {billing}"),
           "(b) billing's cert and billing's key", "cert")
        ok(*tls_curl(t, port, cert=certs["billing"], auth=f"whm billing:{billing}"),
           "(b) billing's cert and whm billing:key", "cert")
        unauth(*tls_curl(t, port, cert=certs["billing"], auth=f"Bearer {support}"),
               "(c) billing's cert and support's key")
        unauth(*tls_curl(t, port, cert=certs["billing"], auth=f"whm support:{support}"),
               "(c) billing's cert and whm support:key")
        unauth(*tls_curl(t, port, cert=certs["nobody"], auth=f"Bearer {billing}"),
               "(d) a CA cert naming no client, with billing's key")
        unauth(*tls_curl(t, port, cert=certs["nobody"]), "(d) a CA cert naming no client")
    handshake_refused(*tls_curl(t, p_req, cert=foreign),
                      "(e) a foreign CA's cert, client cert required")
    handshake_refused(*tls_curl(t, p_req, cert=foreign, auth=f"Bearer {billing}"),
                      "(e) a foreign CA's cert with a key, client cert required")
    # Checked last (a failure here must not hide the rest).
    later = []
    try:
        unauth(*tls_curl(t, p_opt, cert=foreign), "(e) a foreign CA's cert, not required")
    except AssertionError as e:
        later.append(str(e))
    handshake_refused(*tls_curl(t, p_req), "(f) no cert, client cert required")
    handshake_refused(*tls_curl(t, p_req, auth=f"Bearer {billing}"),
                      "(f) no cert but a key, client cert required")
    legacy = ["--tlsv1", "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0"]
    for port in (p_req, p_opt):
        rc, resp, err = tls_curl(t, port, cert=certs["billing"], auth=f"Bearer {billing}",
                                 extra=legacy)
        handshake_refused(rc, resp, err, f"(g) TLS 1.1 on {port}")
        # The refusal is the server's: curl itself can speak TLS 1.1 here.
        assert "no protocols available" not in err, f"curl refused TLS 1.1 itself: {err}"
    ok(*tls_curl(t, p_opt, auth=f"Bearer {billing}",
                 extra=["--tlsv1.2", "--tls-max", "1.2"]), "TLS 1.2 exactly", "bearer")
    ok(*tls_curl(t, p_opt, auth=f"whm billing:{billing}"), "(h) whm billing:key, no cert",
       "whm")
    eq(len(t.standin.requests()), forwarded, "requests WHM received")

    # Keep-alive: several requests on one TLS connection with a client cert.
    cctx = ssl.create_default_context(cafile=s.ca_crt)
    cctx.load_cert_chain(*certs["billing"])
    conn = http.client.HTTPSConnection("127.0.0.1", p_req, context=cctx, timeout=20)
    ids = []
    try:
        for i in range(4):
            conn.request("GET", LIST + f"&search=cust{i}")
            r = conn.getresponse()
            r.read()
            eq(r.status, 200, f"keep-alive call {i + 1} over TLS")
            ids.append(r.getheader("X-Request-Id"))
        sockname = conn.sock.getsockname()
    finally:
        conn.close()
    ports = set()
    for rid in ids:
        req, _ = check_forwarded(g, rid)
        eq(req["client"]["auth"], "cert", "client.auth on the kept-alive connection")
        ports.add(req["client"]["port"])
    eq(ports, {sockname[1]}, "client ports of the kept-alive TLS calls (one connection)")

    # Removing billing's certificate by reload applies to a connection
    # that is already open: its next request is no longer billing's.
    conn = http.client.HTTPSConnection("127.0.0.1", p_opt, context=cctx, timeout=20)
    try:
        conn.request("GET", LIST)
        r = conn.getresponse()
        r.read()
        eq(r.status, 200, "billing's cert on a kept-alive connection")
        revoked = copy.deepcopy(conf)
        revoked["clients"]["billing"]["certs"] = []
        eq(sighup(g, revoked).get("result"), "ok", "reload without billing's cert")
        conn.request("GET", LIST)
        r = conn.getresponse()
        body = r.read()
        eq(r.status, 401, f"the same connection after billing's cert was removed ({body[:120]!r})")
    finally:
        conn.close()
    # The client CA file is re-read too: trust the other CA as well.
    bundle = os.path.join(d, "clients-bundle.crt")
    with open(ca[0]) as a1, open(other_ca[0]) as a2, open(bundle, "w") as o:
        o.write(a1.read() + a2.read())
    rotated = copy.deepcopy(conf)
    for lt in rotated["listen_tls"]:
        lt["client_ca"] = bundle
    rotated["clients"]["billing"]["certs"].append(fingerprint(foreign[0]))
    eq(sighup(g, rotated).get("result"), "ok", "reload with a second client CA")
    ok(*tls_curl(t, p_req, cert=foreign), "the other CA's cert after the CA reload", "cert")
    ok(*tls_curl(t, p_req, cert=certs["billing"]), "billing's cert after the CA reload", "cert")
    conf = rotated

    # Rotation: a new server pair, re-read on SIGHUP.
    old_der = served_cert(p_opt, s.ca_crt)
    eq(hashlib.sha256(old_der).hexdigest(), fingerprint(gw_crt)[7:], "the served cert at start")
    new_crt, new_key = make_cert(d, "gw2", "127.0.0.1", (s.ca_crt, s.ca_key),
                                 usage="serverAuth", san="IP:127.0.0.1,DNS:localhost",
                                 serial=4242)
    with open(new_key) as f:
        write_secret(gw_key, f.read())
    with open(new_crt) as f, open(gw_crt + ".tmp", "w") as o:
        o.write(f.read())
    os.replace(gw_crt + ".tmp", gw_crt)
    rec = sighup(g)
    eq(rec.get("result"), "ok", f"reload with the new server pair ({rec})")
    for port in (p_req, p_opt):
        der = served_cert(port, s.ca_crt)
        eq(hashlib.sha256(der).hexdigest(), fingerprint(new_crt)[7:],
           f"the served cert on {port} after the reload")
    ok(*tls_curl(t, p_req, cert=certs["billing"]), "billing's cert after the rotation", "cert")
    # A certificate that does not match the key is refused at reload.
    with open(gw_crt) as f:
        good_crt = f.read()
    with open(certs["support"][0]) as f, open(gw_crt + ".tmp", "w") as o:
        o.write(f.read())
    os.replace(gw_crt + ".tmp", gw_crt)
    rec = sighup(g)
    with open(gw_crt + ".tmp", "w") as o:
        o.write(good_crt)
    os.replace(gw_crt + ".tmp", gw_crt)
    eq(rec.get("result"), "refused", f"reload with a cert that does not match the key ({rec})")
    # A key that others may read is refused at reload; the pair in use stays.
    os.chmod(gw_key, 0o644)
    rec = sighup(g)
    os.chmod(gw_key, 0o600)
    eq(rec.get("result"), "refused", f"reload with a TLS key readable by others ({rec})")
    eq(hashlib.sha256(served_cert(p_opt, s.ca_crt)).hexdigest(), fingerprint(new_crt)[7:],
       "the served cert after the refused reload")
    ok(*tls_curl(t, p_req, cert=certs["billing"]), "billing's cert after a refused reload",
       "cert")
    assert not later, "; ".join(later)


# ---------------------------------------------------------------- 6. rate limit

def check_rate_limited(g, r, what):
    rid = check_error(r, 429, "rate_limited")
    ra = r.header("Retry-After")
    assert ra is not None and re.fullmatch(r"[0-9]+", ra) and int(ra) >= 1, \
        f"Retry-After of {what}: {ra!r}"
    check_deny(g, rid, 429, "rate_limited")
    return int(ra)


def burst(g, n, auth, path=LIST):
    """n requests sent at once on n connections opened beforehand; the
    responses, in sending order."""
    socks = [socket.create_connection(("127.0.0.1", g.port), timeout=30 * g.session.slow)
             for _ in range(n)]
    try:
        req = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode()
        for sk in socks:
            sk.sendall(req)
        return [read_response(sk) for sk in socks]
    finally:
        for sk in socks:
            sk.close()


def test_ops_rate_limit(t):
    """6. billing: per_second 2, burst 3. A burst of 6 calls sent at once
    gets 429 rate_limited with an integer Retry-After >= 1 and a deny
    record, and never reaches WHM; after the advised wait calls pass
    again. remote (per_second 0.1, burst 1): over the limit, bad
    parameters and a function it may not call also get 429 (rate comes
    before parameters and policy). support (per_second 0.2, burst 1)
    stays limited across a reload: SIGHUP does not refill the bucket."""
    conf = base_conf(t)
    conf["clients"]["billing"]["rate"] = {"per_second": 2, "burst": 3}
    conf["clients"]["support"]["rate"] = {"per_second": 0.2, "burst": 1}
    conf["clients"]["remote"] = t.client("remote", rate={"per_second": 0.1, "burst": 1})
    g = t.gate(conf)
    auth = bearer(t, "billing")
    resps = burst(g, 6, auth)
    statuses = [r.status for r in resps]
    waits = []
    for i, r in enumerate(resps):
        if r.status == 429:
            waits.append(check_rate_limited(g, r, f"call {i + 1}"))
        else:
            eq(r.status, 200, f"status of burst call {i + 1}")
    eq(statuses.count(200) >= 3, True, f"at least the burst of 3 passed: {statuses}")
    assert waits, f"no 429 in a burst of 6 sent at once: {statuses}"
    eq(len(t.standin.requests()), statuses.count(200),
       "requests WHM received (429s never reach it)")
    time.sleep(max(waits))
    r = g.curl(LIST, auth=auth)
    eq(r.status, 200, f"after waiting the advised {max(waits)} s ({r.body[:120]!r})")

    # remote: one call per 10 s. Over the limit, bad parameters and a
    # function remote may not call still answer 429: rate comes first.
    rem = bearer(t, "remote")
    eq(g.curl(LIST, auth=rem).status, 200, "remote's first call")
    bad = [(LIST, "a good call"),
           ("/json-api/listaccts?api.version=2", "api.version 2"),
           ("/json-api/listaccts?api.version=1&a=1&a=2", "a repeated parameter"),
           ("/json-api/removeacct?api.version=1&user=cust1", "a function not allowed")]
    for path, what in bad:
        r = g.curl(path, auth=rem)
        if r.status != 429:
            raise AssertionError(f"{what} over the limit: got {r.status} "
                                 f"{r.body[:120]!r}, want 429 (rate before parameters)")
        check_rate_limited(g, r, what)
    # Within the limit a bad-parameter call is a 400 (billing has tokens again).
    time.sleep(1)
    check_error(g.curl("/json-api/listaccts?api.version=2", auth=auth), 400, "bad_request")

    # support: one token per 5 s, kept across a reload.
    sup = bearer(t, "support")
    eq(g.curl(LIST, auth=sup).status, 200, "support's first call")
    check_rate_limited(g, g.curl(LIST, auth=sup), "support's second call")
    eq(sighup(g, conf).get("result"), "ok", "reload")
    r = g.curl(LIST, auth=sup)
    if r.status != 429:
        raise AssertionError(f"support right after a reload: got {r.status}, want 429 "
                             "(the bucket was refilled by SIGHUP)")
    check_rate_limited(g, r, "support after the reload")


# ---------------------------------------------------------------- 7. in-flight limit

def test_ops_inflight_limit(t):
    """7. billing: max_inflight 2, WHM slow: two concurrent calls are
    forwarded, a third gets 429 too_many_inflight with Retry-After: 1 and
    a deny record; WHM saw only two; once they are answered, calls pass."""
    conf = base_conf(t)
    conf["clients"]["billing"]["max_inflight"] = 2
    g = t.gate(conf)
    auth = bearer(t, "billing")
    t.standin.behave(delay_ms=1500)
    out = []
    threads = [threading.Thread(target=lambda: out.append(g.curl(LIST, auth=auth)),
                                daemon=True) for _ in range(2)]
    try:
        for th in threads:
            th.start()
        wait_until(lambda: len(t.standin.requests()) >= 2, 10 * t.session.slow,
                   what="two calls reaching WHM")
        r = g.curl(LIST, auth=auth)
        rid = check_error(r, 429, "too_many_inflight")
        eq(r.header("Retry-After"), "1", "Retry-After of too_many_inflight")
        check_deny(g, rid, 429, "too_many_inflight")
        # support (no limit) is not held back by billing's count.
        sup_out = []
        sup_th = threading.Thread(target=lambda: sup_out.append(
            g.curl(LIST, auth=bearer(t, "support"))), daemon=True)
        sup_th.start()
        wait_until(lambda: len(t.standin.requests()) >= 3, 10 * t.session.slow,
                   what="support's call reaching WHM")
        threads.append(sup_th)
        # The count survives a reload.
        eq(sighup(g, conf).get("result"), "ok", "reload with two calls in flight")
        check_error(g.curl(LIST, auth=auth), 429, "too_many_inflight")
        for th in threads:
            th.join(20 * t.session.slow)
    finally:
        t.standin.behave(delay_ms=0)
    eq(sorted(x.status for x in out), [200, 200], "the two slow calls")
    eq([x.status for x in sup_out], [200], "support's call while billing was at its limit")
    reqs = t.standin.requests()
    eq(len(reqs), 3, "requests WHM received (billing's two, support's one)")
    for _ in range(3):
        eq(g.curl(LIST, auth=auth).status, 200, "a call after the slow ones were answered")
    eq(len(t.standin.requests()), 6, "requests WHM received in the end")

    # A client that goes away while WHM works frees its slot.
    t.standin.behave(delay_ms=1500)
    try:
        gone = []
        for i in range(2):
            sk = socket.create_connection(("127.0.0.1", g.port), timeout=10)
            sk.sendall(f"GET {LIST} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
                       .encode())
            gone.append(sk)
        wait_until(lambda: len(t.standin.requests()) >= 8, 10 * t.session.slow,
                   what="two more calls reaching WHM")
        check_error(g.curl(LIST, auth=auth), 429, "too_many_inflight")
        for sk in gone:
            sk.close()
        g.wait_audit(lambda rs: len([r for r in rs if r["type"] == "response"
                                     and r["http"]["status"] == 499]) >= 2,
                     what="499 records of the clients that left")
        t.standin.behave(delay_ms=0)
        r = g.curl(LIST, auth=auth)
        eq(r.status, 200, f"a call once the callers that left are recorded ({r.body[:120]!r})")
    finally:
        t.standin.behave(delay_ms=0)


# ---------------------------------------------------------------- 8. admin and metrics

def test_ops_metrics(t):
    """8. /metrics in Prometheus text: requests_total moves by exactly the
    calls made (allow/deny per client and function, "unknown" for a bad
    key, "other" for a function nobody allows), the duration histogram is
    cumulative with _count equal to the requests, connections and audit
    counters are numbers, no label or value carries a key, token or raw
    path; upstream_errors_total{kind="connect"} counts an unreachable WHM;
    /healthz 200; /readyz 200, and 503 while draining."""
    conf = admin_conf(base_conf(t))
    g = t.gate(conf)
    status, body, ctype = admin_get(conf, "/healthz")
    eq(status, 200, "/healthz")
    status, body, _ = admin_get(conf, "/readyz")
    eq(status, 200, f"/readyz ({body!r})")
    m0, _ = scrape(conf)
    billing, support, stranger = t.key("billing"), t.key("support"), t.key("stranger")
    wrong = billing[:-1] + ("A" if billing[-1] != "A" else "B")
    calls = [  # (path, auth, status)
        (LIST, f"Bearer {billing}", 200), (LIST, f"Bearer {billing}", 200),
        (LIST, f"whm billing:{billing}", 200),
        (LIST, f"Bearer {support}", 200),
        (SUMMARY, f"Bearer {support}", 403), (SUMMARY, f"Bearer {support}", 403),
        (LIST, f"Bearer {stranger}", 401),
        (LIST, f"whm billing:{wrong}", 401),
        ("/json-api/removeacct?api.version=1&user=cust1", f"Bearer {billing}", 403),
        ("/json-api/zzrawfn9?api.version=1", f"Bearer {billing}", 403),
        ("/secretpath-q7x?api.version=1", None, 404),
    ]
    for path, auth, want in calls:
        r = g.curl(path, auth=auth)
        eq(r.status, want, f"status of {path} as {auth and auth.split()[0]}")
    g.wait_audit(lambda rs: len(final_records(rs)) >= len(calls), what="final records")
    m1, text = scrape(conf)

    def delta(**labels):
        return (mval(m1, "whmgate_requests_total", **labels)
                - mval(m0, "whmgate_requests_total", **labels))
    want = {("billing", "listaccts", "allow"): 3, ("support", "listaccts", "allow"): 1,
            ("support", "accountsummary", "forbidden"): 2,
            ("unknown", "listaccts", "unauthenticated"): 2,
            ("billing", "other", "forbidden"): 2, ("unknown", "other", "bad_request"): 1}
    got = {}
    for labels, v in samples(m1, "whmgate_requests_total"):
        eq(set(labels), {"client", "function", "decision"},
           "labels of whmgate_requests_total")
        assert labels["decision"] in ("allow", "unauthenticated", "forbidden",
                                      "rate_limited", "bad_request", "unavailable"), \
            f"decision label {labels}"
        d = v - mval(m0, "whmgate_requests_total", **labels)
        if d:
            got[(labels["client"], labels["function"], labels["decision"])] = d
    eq(got, want, "whmgate_requests_total increments (client, function, decision)")
    configured = set(conf["clients"]) | {"unknown"}
    allowed = {f for c in conf["clients"].values() for f in c["allow"]} | {"other"}
    for labels, _ in samples(m1, "whmgate_requests_total"):
        assert labels["client"] in configured, f"client label {labels['client']!r}"
        assert labels["function"] in allowed, f"function label {labels['function']!r}"

    # The histograms, one per function label (the same labels as
    # whmgate_requests_total's).
    fns = {l["function"] for l, _ in samples(m1, "whmgate_request_duration_seconds_count")}
    eq(fns, {l["function"] for l, _ in samples(m1, "whmgate_requests_total")},
       "function labels of the histogram")
    for fn in fns:
        buckets = sorted(((float(l["le"]), v) for l, v in
                          samples(m1, "whmgate_request_duration_seconds_bucket")
                          if l["function"] == fn), key=lambda x: x[0])
        assert len(buckets) >= 2 and buckets[-1][0] == float("inf"), \
            f"histogram buckets {buckets}"
        vals = [v for _, v in buckets]
        eq(vals, sorted(vals), f"{fn}: bucket counts are cumulative (non-decreasing)")
        eq(buckets[-1][1], mval(m1, "whmgate_request_duration_seconds_count", function=fn),
           f"{fn}: the +Inf bucket vs _count")
        eq(mval(m1, "whmgate_request_duration_seconds_count", function=fn),
           sum(v for l, v in samples(m1, "whmgate_requests_total") if l["function"] == fn),
           f"{fn}: _count vs whmgate_requests_total")
    count = msum(m1, "whmgate_request_duration_seconds_count")
    total = sum(v for _, v in samples(m1, "whmgate_requests_total"))
    eq(count, total, "histogram _count vs the sum of whmgate_requests_total")
    eq(count, len(calls), "histogram _count vs the calls made")
    s = msum(m1, "whmgate_request_duration_seconds_sum")
    assert s > 0, f"histogram _sum {s}"
    assert ("whmgate_connections", ()) in m1, "no whmgate_connections sample"
    c0 = m1[("whmgate_connections", ())]
    assert c0 >= 0 and c0 == int(c0), f"whmgate_connections {c0}"
    held = [RawClient(g.port, keepalive=True) for _ in range(3)]
    try:
        for h in held:
            o = h.call(LIST, f"Bearer {billing}")
            eq((o.kind, o.resp and o.resp.status), ("ok", 200), "a kept-alive call")
        mh, _ = scrape(conf)
        eq(mh[("whmgate_connections", ())], c0 + 3, "whmgate_connections with 3 more open")
    finally:
        for h in held:
            h.close()
    g.wait_audit(lambda rs: len(final_records(rs)) >= len(calls) + 3, what="final records")
    m1, text = scrape(conf)
    eq(delta(client="billing", function="listaccts", decision="allow"), 6,
       "billing listaccts allow after 3 more calls")
    count = msum(m1, "whmgate_request_duration_seconds_count")
    total = sum(v for _, v in samples(m1, "whmgate_requests_total"))
    eq(count, total, "histogram _count vs the sum of whmgate_requests_total (later)")
    eq(count, len(calls) + 3, "histogram _count vs the calls made (later)")
    recs = g.audit()
    eq(mval(m1, "whmgate_audit_records_total"), len(recs),
       "whmgate_audit_records_total vs the lines in the audit file")
    eq(msum(m1, "whmgate_audit_failures_total"), 0, "whmgate_audit_failures_total")
    eq(mval(m1, "whmgate_audit_seq"), len(recs), "whmgate_audit_seq vs the audit file's lines")
    for secret, what in ((billing, "billing's key"), (support, "support's key"),
                         (stranger, "an unknown key"), (wrong, "a wrong key"),
                         (billing[5:20], "part of a key"), (t.session.token, "the WHM token"),
                         ("zzrawfn9", "a raw function name"),
                         ("secretpath", "a raw path")):
        assert secret not in text, f"{what} appears in /metrics"
    for labels, _ in [(dict(k[1]), v) for k, v in m1.items()]:
        for v in labels.values():
            assert "/" not in v, f"a path-like label value {v!r}"

    # An unreachable WHM counts as an upstream connect error.
    dead = admin_conf(base_conf(t, upstream_url=f"https://127.0.0.1:{free_port()}"))
    dead["clients"]["billing"]["max_inflight"] = 1
    g2 = t.gate(dead)
    for i in range(2):     # a failed call frees its in-flight slot
        r = g2.curl(LIST, auth=f"Bearer {billing}")
        check_error(r, 502, "upstream_unavailable")
        g2.records(r.header("X-Request-Id"))
    m2, _ = scrape(dead)
    eq(mval(m2, "whmgate_upstream_errors_total", kind="connect"), 2,
       "whmgate_upstream_errors_total{kind=\"connect\"}")
    eq(mval(m1, "whmgate_upstream_errors_total", kind="connect"), 0,
       "upstream connect errors of the gate with a live WHM")

    # Draining: /readyz fails while a slow call finishes.
    t.standin.behave(delay_ms=1500)
    out = []
    th = threading.Thread(target=lambda: out.append(g.curl(LIST, auth=f"Bearer {billing}")),
                          daemon=True)
    try:
        n0 = len(t.standin.requests())
        th.start()
        wait_until(lambda: len(t.standin.requests()) > n0, 10 * t.session.slow,
                   what="the slow call reaching WHM")
        g.proc.send_signal(signal.SIGTERM)
        status, body = wait_until(
            lambda: (lambda r: r[:2] if r[0] == 503 else None)(admin_get(conf, "/readyz")),
            5 * t.session.slow, what="/readyz 503 while draining")
        eq(admin_get(conf, "/healthz")[0], 200, "/healthz while draining")
        th.join(20 * t.session.slow)
    finally:
        t.standin.behave(delay_ms=0)
    eq([x.status for x in out], [200], "the call in flight while draining")
    eq(wait_exit(g), 0, "exit code after draining")


# ---------------------------------------------------------------- 8b. several workers

def test_ops_workers_share_state(t):
    """8b. With "workers": 4 (SO_REUSEPORT, new connections spread over the
    loops): after each reload record every worker applies the new policy;
    the rate bucket and the in-flight count of a client are shared by all
    workers; metrics add up over workers; SIGTERM drains them all."""
    conf = admin_conf(base_conf(t))
    conf["workers"] = 4
    conf["clients"]["billing"]["rate"] = {"per_second": 0.5, "burst": 3}
    conf["clients"]["support"]["max_inflight"] = 2
    wide = copy.deepcopy(conf)
    wide["clients"]["support"]["allow"]["accountsummary"] = {}
    g = t.gate(conf)
    sup = bearer(t, "support")
    # Reloads: probes on several new connections after each record.
    for i in range(6):
        allowed = i % 2 == 0
        eq(sighup(g, wide if allowed else conf).get("result"), "ok", f"reload {i + 1}")
        got = [g.http("GET", SUMMARY, headers={"Authorization": sup}).status
               for _ in range(8)]
        eq(got, [200 if allowed else 403] * 8,
           f"8 probes on new connections after reload {i + 1}")
    tasks = len(os.listdir(f"/proc/{g.pid}/task"))
    assert tasks >= 4, f"whmgate runs {tasks} threads with 4 workers"

    # One bucket for billing, whichever worker a connection lands on.
    resps = burst(g, 8, bearer(t, "billing"))
    statuses = [r.status for r in resps]
    n200 = statuses.count(200)
    assert 3 <= n200 <= 4, f"calls passed from a burst of 8 with burst 3: {statuses}"
    for r in resps:
        if r.status != 200:
            check_rate_limited(g, r, "a burst call")

    # One in-flight count for support.
    n0 = len(t.standin.requests())
    t.standin.behave(delay_ms=1500)
    out = []
    threads = [threading.Thread(target=lambda: out.append(
        g.http("GET", LIST, headers={"Authorization": sup})), daemon=True) for _ in range(2)]
    try:
        for th in threads:
            th.start()
        wait_until(lambda: len(t.standin.requests()) >= n0 + 2, 10 * t.session.slow,
                   what="two slow calls reaching WHM")
        more = [g.http("GET", LIST, headers={"Authorization": sup}) for _ in range(6)]
        for r in more:
            rid = check_error(r, 429, "too_many_inflight")
            check_deny(g, rid, 429, "too_many_inflight")
        for th in threads:
            th.join(20 * t.session.slow)
    finally:
        t.standin.behave(delay_ms=0)
    eq(sorted(r.status for r in out), [200, 200], "the two slow calls")
    eq(len(t.standin.requests()), n0 + 2, "requests WHM received with support's limit 2")

    g.wait_audit(lambda rs: len(final_records(rs)) >= 6 * 8 + 8 + 8, what="final records")
    m, _ = scrape(conf)
    eq(mval(m, "whmgate_requests_total", client="billing", function="listaccts",
            decision="allow"), n200, "billing's allowed calls summed over workers")
    eq(mval(m, "whmgate_requests_total", client="support", function="listaccts",
            decision="rate_limited"), 6, "support's in-flight refusals summed over workers")
    eq(mval(m, "whmgate_config_reloads_total", result="ok"), 6, "ok reloads")
    eq(msum(m, "whmgate_request_duration_seconds_count"),
       sum(v for _, v in samples(m, "whmgate_requests_total")),
       "histogram _count vs requests over workers")
    g.proc.send_signal(signal.SIGTERM)
    eq(wait_exit(g), 0, "exit code with 4 workers")
    check_trail_complete(t, g)


# ---------------------------------------------------------------- 9. config checks

def check_problems(t, conf, name, want_paths):
    """`-t` on conf: exit 1 and a `FILE: <path>: <problem>` line for each
    wanted path. Returns stderr."""
    path = os.path.join(t.dir, f"{name}.json")
    write_conf(path, conf)
    r = t.run_bin("-t", "-c", path)
    eq(r.returncode, 1, f"exit code of -t for {name} (stderr {r.stderr[-300:]!r})")
    lines = [l for l in r.stderr.splitlines() if l.startswith(path + ": ")]
    paths = []
    for line in lines:
        assert re.match(re.escape(path) + r": \$\S*: \S", line), f"bad problem line {line!r}"
        paths.append(line[len(path) + 2:].split(": ", 1)[0])
    missing = [p for p in want_paths if p not in paths]
    assert not missing, f"{name}: problems not reported: {missing}; got {paths}"
    return r.stderr


def test_ops_config_checks(t):
    """9. `-t` lists five different problems with their JSON paths; a token
    file, hmac_key_file or TLS key readable by group/others is refused by
    -t and at start; an unknown "user" is refused; insecure_skip_verify
    warns on stderr at start."""
    conf = base_conf(t)
    conf["bogus"] = True
    conf["clients"]["billing"]["source"] = ["127.0.0.1/8"]
    conf["audit"]["fsync"] = "sometimes"
    conf["upstream"]["url"] = "http://127.0.0.1:2087"
    conf["limits"] = {"max_connections": "many"}
    check_problems(t, conf, "five", ["$.bogus", "$.clients.billing.source[0]",
                                     "$.audit.fsync", "$.upstream.url",
                                     "$.limits.max_connections"])

    # Secret files readable by the group.
    loose = os.path.join(t.dir, "loose_token")
    write_secret(loose, t.session.token, 0o640)
    hmac = os.path.join(t.dir, "hmac.key")
    write_secret(hmac, os.urandom(32).hex(), 0o640)
    tls_key = os.path.join(t.dir, "tls.key")
    with open(t.session.server_key) as f:
        write_secret(tls_key, f.read(), 0o644)
    cases = []
    c = base_conf(t)
    c["clients"]["support"]["whm_token"] = {"file": loose}
    cases.append(("token file 0640", c, "$.clients.support.whm_token"))
    c = base_conf(t)
    c["audit"]["hmac_key_file"] = hmac
    cases.append(("hmac_key_file 0640", c, "$.audit.hmac_key_file"))
    c = base_conf(t)
    c["listen_tls"] = [{"address": f"127.0.0.1:{free_port()}", "cert": t.session.server_crt,
                        "key": tls_key}]
    cases.append(("TLS key 0644", c, "$.listen_tls[0].key"))
    c = base_conf(t)
    c["listen_tls"] = [{"address": f"127.0.0.1:{free_port()}",
                        "cert": os.path.join(t.dir, "missing.crt"), "key": tls_key.replace(
                            "tls.key", "missing.key")}]
    cases.append(("missing TLS files", c, "$.listen_tls[0].cert"))
    c = base_conf(t)
    c["user"] = "no_such_user_q7"
    cases.append(("unknown user", c, "$.user"))
    for i, (what, c, p) in enumerate(cases):
        err = check_problems(t, c, f"case{i}", [p])
        assert t.session.token not in err, f"-t printed the token ({what})"
        rc, err = start_expect_failure(t, c, f"start{i}")
        assert rc != 0 and rc != "still running", f"start with {what}: exit {rc}"
        assert not port_open(int(c["listen"][0].rsplit(":", 1)[1])), \
            f"whmgate listened with {what}"
        assert t.session.token not in err, f"start printed the token ({what})"
        assert err.strip(), f"start with {what} failed without a word on stderr"

    # insecure_skip_verify: starts, warns.
    c = base_conf(t, insecure_skip_verify=True)
    g = t.gate(c)
    eq(g.curl(LIST, auth=bearer(t, "billing")).status, 200, "a call with verification off")
    warn = [l for l in g.stderr().splitlines() if "insecure_skip_verify" in l]
    assert warn, f"no insecure_skip_verify warning on stderr: {g.stderr()[-400:]!r}"
    assert re.search(r"warn", warn[0], re.I), f"the line is not a warning: {warn[0]!r}"
    # The default config does not warn.
    g2 = t.gate(base_conf(t))
    assert "insecure_skip_verify" not in g2.stderr(), "a warning without the setting"


# ---------------------------------------------------------------- 10. privilege drop

def test_ops_privilege_drop(t):
    """10. As root with "user": "nobody": whmgate runs as nobody (uid, gid
    and no supplementary groups in /proc/PID/status), still serves calls,
    keeps writing the audit trail, and reloads a config nobody can read."""
    if os.geteuid() != 0:
        t.note("skipped: not root")
        return
    nobody = pwd.getpwnam("nobody")
    # Everything read at reload must be readable by nobody: the token file
    # (owned by nobody, 0600) and the config (0644 in directories nobody
    # may traverse).
    os.chown(t.token_file, nobody.pw_uid, nobody.pw_gid)
    dirs = [t.dir, t.session.dir]
    modes = {d: os.stat(d).st_mode & 0o7777 for d in dirs}
    for d in dirs:
        os.chmod(d, 0o711)
    try:
        conf = admin_conf(base_conf(t))
        conf["user"] = "nobody"
        g = t.gate(conf)
        # The port accepts as soon as it is bound; once a call is answered
        # the privileges must be gone.
        r = g.curl(LIST, auth=bearer(t, "billing"))
        eq(r.status, 200, f"the first call as nobody ({r.body[:120]!r})")
        ids = status_ids(f"/proc/{g.pid}/status")
        eq(ids["Uid"], [str(nobody.pw_uid)] * 4, "Uid (real, effective, saved, fs)")
        eq(ids["Gid"], [str(nobody.pw_gid)] * 4, "Gid (real, effective, saved, fs)")
        eq(ids.get("Groups", []), [], "supplementary groups")
        tasks = os.listdir(f"/proc/{g.pid}/task")
        for tid in tasks:
            try:
                tids = status_ids(f"/proc/{g.pid}/task/{tid}/status")
            except FileNotFoundError:
                continue
            eq((tids["Uid"], tids["Gid"]), (ids["Uid"], ids["Gid"]),
               f"uid/gid of thread {tid} of {len(tasks)}")
        for _ in range(3):
            r = g.curl(LIST, auth=bearer(t, "billing"))
            eq(r.status, 200, f"a call as nobody ({r.body[:120]!r})")
            check_forwarded(g, r.header("X-Request-Id"))
        eq(admin_get(conf, "/readyz")[0], 200, "/readyz as nobody")
        wide = copy.deepcopy(conf)
        wide["clients"]["support"]["allow"]["accountsummary"] = {}
        rec = sighup(g, wide)
        eq(rec.get("result"), "ok", f"a reload as nobody ({rec})")
        eq(g.curl(SUMMARY, auth=bearer(t, "support")).status, 200,
           "the reloaded policy as nobody")
        eq(status_ids(f"/proc/{g.pid}/status")["Uid"], [str(nobody.pw_uid)] * 4,
           "Uid after the reload")
        # A token file nobody cannot read: the reload is refused, calls go on.
        os.chown(t.token_file, 0, 0)
        rec = sighup(g, conf)
        eq(rec.get("result"), "refused", f"a reload with a token nobody cannot read ({rec})")
        eq(g.curl(SUMMARY, auth=bearer(t, "support")).status, 200,
           "the policy in force after the refused reload")
        eq(g.curl(LIST, auth=bearer(t, "billing")).status, 200,
           "a call after the refused reload")
        eq(g.stop(), 0, "exit code as nobody")
        recs = g.audit()
        eq(recs[-1].get("event"), "stop", "the stop record written as nobody")
        v = t.run_bin("audit", "verify", g.audit_path)
        eq(v.returncode, 0, f"audit verify ({(v.stdout + v.stderr).strip()[-200:]!r})")
    finally:
        for d in dirs:
            os.chmod(d, modes[d])
