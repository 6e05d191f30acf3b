"""What a hostile client can put in the audit trail, and what a trail
left by a crash or by an older whmgate holds (SPEC section 7; issue 16,
items 2, 4, 5 and 7): the chain continues from a last line of any length,
a torn line is cut at its own start, a record is bounded, positional
arguments of cPanel API 1 calls are redacted, a key is found after
percent-decoding, and U+2028/U+2029 are escaped."""
import hashlib
import json
import os
from urllib.parse import quote

from auditlib import call, check_chain, read_trail, verify_ok
from lib import check_deny, check_error, eq, free_port

LIST = "/json-api/listaccts?api.version=1"
RECORD_MAX = 1024 * 1024           # AUDIT_RECORD_MAX, README "The audit trail"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def relisten(conf):
    return dict(conf, listen=[f"127.0.0.1:{free_port()}"])


def first_run(t):
    """A trail of one call, whmgate stopped: (conf, path, lines)."""
    conf = t.conf()
    path = conf["audit"]["file"]
    g = t.gate(conf)
    call(g, LIST, t.key("billing"))
    eq(g.stop(), 0, "exit code, first run")
    lines, torn = read_trail(path)
    eq(torn, b"", "torn tail after the first run")
    check_chain(lines, what="first run")
    return conf, path, lines


def long_line(prev_line, seq, size):
    """A chained record of about `size` bytes: the 2 MB deny line of issue
    16 (a refused POST of 1 MB of %01), as a whmgate without a bound on a
    record wrote it."""
    rec = {"ts": "2026-12-01T00:00:00.000000Z", "instance": "test", "type": "deny",
           "id": "0" * 24, "client": {"id": "billing", "ip": "127.0.0.1", "port": 1,
                                      "auth": "bearer"},
           "http": {"method": "POST", "path": "/json-api/removeacct", "status": 403},
           "whm": {"function": "removeacct", "user": "root", "target": None,
                   "params": {"x": "\u0001" * (size // 6)}},
           "seq": seq, "prev": sha(prev_line)}
    return json.dumps(rec, separators=(",", ":")).encode()


def test_audit_bounds_restart_after_long_line(t):
    """16.2a A restart on a trail whose last line is 2 MB continues the
    chain from that line (seq and prev), and the whole verifies. (Only
    the last 1 MiB was read before: the start record had seq 1 and a prev
    that matched nothing.)"""
    conf, path, lines = first_run(t)
    big = long_line(lines[-1], len(lines) + 1, 2 * 1024 * 1024)
    assert len(big) > 2 * 1024 * 1024 - 1024, len(big)
    with open(path, "ab") as f:
        f.write(big + b"\n")
    g = t.gate(relisten(conf))
    call(g, LIST, t.key("billing"))
    eq(g.stop(), 0, "exit code, second run")
    lines2, torn = read_trail(path)
    eq(torn, b"", "torn tail")
    eq(lines2[:len(lines) + 1], lines + [big], "the lines before the restart")
    start = json.loads(lines2[len(lines) + 1])
    eq((start.get("event"), start.get("seq"), start.get("prev"), start.get("torn_line_sha256")),
       ("start", len(lines) + 2, sha(big), None), "start record after the 2 MB line")
    check_chain(lines2, what="after the restart")
    verify_ok(t, path, what="verify after the restart")


def test_audit_bounds_torn_long_line(t):
    """16.2b A torn last line of 1.8 MB (power loss mid-write) is cut at
    its own start, not at the start of the file's last MiB; the start
    record names the SHA-256 of the whole torn line and chains from the
    line before it."""
    conf, path, lines = first_run(t)
    torn_line = long_line(lines[-1], len(lines) + 1, 1900 * 1024)[:1800 * 1024]
    with open(path, "ab") as f:
        f.write(torn_line)
    g = t.gate(relisten(conf))
    call(g, LIST, t.key("billing"))
    eq(g.stop(), 0, "exit code, second run")
    lines2, torn = read_trail(path)
    eq(torn, b"", "torn tail after the restart")
    eq(lines2[:len(lines)], lines, "the lines before the torn one")
    start = json.loads(lines2[len(lines)])
    eq((start.get("event"), start.get("seq"), start.get("prev")),
       ("start", len(lines) + 1, sha(lines[-1])), "start record after the torn line")
    eq(start.get("torn_line_sha256"), sha(torn_line), "torn_line_sha256 (the whole torn line)")
    with open(path, "rb") as f:
        assert b"\\u0001\\u0001\\u0001" not in f.read(), "a piece of the torn line is left"
    check_chain(lines2, what="after the torn line")
    verify_ok(t, path, what="verify after the torn line")


def test_audit_bounds_record_size(t):
    """16.2c A record is bounded: a refused POST of 1 MB of %01 (2 MB of
    JSON escapes) and an allowed call with a 1 MB value are recorded in
    lines of at most 1 MiB, the long value cut with a marker and the cut
    counted in the record's `cut` field. WHM receives the whole value;
    the trail continues after a restart."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"]["listaccts"] = {}
    path = conf["audit"]["file"]
    g = t.gate(conf)
    key = t.key("billing")
    n = 340000
    body = "api.version=1&reason=" + "%01" * n
    assert len(body) < 1048576
    r = call(g, "/json-api/removeacct", key, method="POST", body=body)
    rid = check_error(r, 403, "function_not_allowed")
    d = check_deny(g, rid, 403, "function_not_allowed")
    eq(t.standin.requests(), [], "requests WHM received for the refused call")
    v = d["whm"]["params"]["reason"]
    assert v.endswith(f"[cut by whmgate: {n} bytes in all]"), v[-80:]
    assert set(v[:-40]) == {"\u0001"}, "the kept part of the value"
    eq((d["cut"]["strings"], d["cut"]["params"]), (1, 0), "cut field of the deny record")
    assert d["cut"]["bytes"] > n - 9000, d["cut"]

    # Allowed: forwarded whole, recorded cut.
    search = "x" * (1000 * 1000)
    r = call(g, "/json-api/listaccts", key, method="POST",
             body="api.version=1&search=" + search)
    eq(r.status, 200, "status of the allowed call")
    rid = r.header("X-Request-Id")
    recs = g.records(rid)
    reqs = t.standin.requests()
    eq(len(reqs), 1, "requests WHM received")
    eq(reqs[0]["params"].get("search"), search, "the value WHM received (whole)")
    req = next(x for x in recs if x["type"] == "request")
    assert req["whm"]["params"]["search"].endswith("[cut by whmgate: 1000000 bytes in all]")
    eq(req["cut"]["strings"], 1, "cut strings of the request record")
    eq(g.stop(), 0, "exit code")
    lines, torn = read_trail(path)
    eq(torn, b"", "torn tail")
    longest = max(len(x) + 1 for x in lines)
    assert longest <= RECORD_MAX, f"a line of {longest} bytes"
    check_chain(lines)
    t.note(f"longest line {longest} bytes")
    # Restart on the same trail: chained from the last line.
    g = t.gate(relisten(conf))
    eq(g.stop(), 0, "exit code, restart")
    lines2 = read_trail(path)[0]
    check_chain(lines2, what="after the restart")
    verify_ok(t, path)


def cpanel_conf(t):
    conf = t.conf()
    conf["clients"]["billing"]["allow"].update({"cpanel:Email::addpop": {}, "batch": {}})
    return conf


CPANEL1 = ("/json-api/cpanel?api.version=1&cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop"
           "&cpanel_jsonapi_user=cust1&cpanel_jsonapi_apiversion=1&arg-0=box")


def test_audit_bounds_cpanel_api1_positional(t):
    """16.4 The positional arguments (arg-N) of a cPanel API 1 call are
    redacted like a password, in a plain cpanel call and in a batch
    sub-call; WHM receives them unchanged."""
    g = t.gate(cpanel_conf(t))
    key = t.key("billing")
    pw, subpw = "ApiOnePassw0rd", "SubCallPassw0rd"
    r = call(g, CPANEL1 + "&arg-1=" + pw, key)
    eq(r.status, 200, "status of the cpanel call")
    recs = g.records(r.header("X-Request-Id"))
    req = next(x for x in recs if x["type"] == "request")
    eq((req["whm"]["params"].get("arg-0"), req["whm"]["params"].get("arg-1")),
       ("[REDACTED]", "[REDACTED]"), "recorded arg-0, arg-1")
    eq(req["whm"]["params"].get("cpanel_jsonapi_module"), "Email", "a named argument")
    sub = ("cpanel?cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop&cpanel_jsonapi_user=cust1"
           "&cpanel_jsonapi_apiversion=1&arg-0=box&arg-1=" + subpw)
    r = call(g, "/json-api/batch", key, method="POST",
             body="api.version=1&command=" + quote(sub, safe=""))
    eq(r.status, 200, "status of the batch")
    recs = g.records(r.header("X-Request-Id"))
    req = next(x for x in recs if x["type"] == "request")
    eq(req["whm"]["calls"][0]["params"].get("arg-1"), "[REDACTED]", "sub-call arg-1")
    reqs = t.standin.requests()
    eq(reqs[0]["params"].get("arg-1"), pw, "arg-1 WHM received")
    assert quote(subpw) in reqs[1]["body"] or subpw in reqs[1]["body"], "sub-call WHM received"
    eq(g.stop(), 0, "exit code")
    with open(g.audit_path, "rb") as f:
        data = f.read()
    for s in (pw, subpw):
        assert s.encode() not in data, f"{s} in the audit file"


def test_audit_bounds_encoded_key_in_path(t):
    """16.5 A whmgate key written with a percent escape in a refused path
    (`/json-api/%77hmg_...`) is not recorded: http.path is [REDACTED].
    The same holds for a value that still holds an escape after WHM's
    one decoding (double-encoded)."""
    g = t.gate()
    key = t.key("billing")
    enc = "%77" + key[1:]
    r = g.raw(b"GET /json-api/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
              % (enc.encode(), key.encode()))
    rid = check_error(r, 400, "bad_request")
    d = check_deny(g, rid, 400, "bad_request")
    eq(d["http"]["path"], "[REDACTED]", "recorded path")
    r = call(g, LIST + "&search=" + quote(enc, safe=""), key)
    eq(r.status, 200, "status of a double-encoded key in a value")
    recs = g.records(r.header("X-Request-Id"))
    eq(recs[0]["whm"]["params"].get("search"), "[REDACTED]", "recorded search")
    eq(t.standin.requests()[0]["params"].get("search"), enc, "the value WHM received")
    eq(g.stop(), 0, "exit code")
    with open(g.audit_path, "rb") as f:
        data = f.read()
    assert key[5:].encode() not in data, "the key (after its first characters) is in the trail"


def test_audit_bounds_line_separators(t):
    """16.7 U+2028 and U+2029 in a value are written as \\u2028 and
    \\u2029, so a line reader that splits there (JavaScript, Python's
    str.splitlines) still reads one record per line; the value reads
    back unchanged and WHM receives it unchanged."""
    g = t.gate()
    key = t.key("billing")
    value = "a\u2028b\u2029c"
    r = call(g, LIST + "&search=" + quote(value), key)
    eq(r.status, 200, "status")
    recs = g.records(r.header("X-Request-Id"))
    eq(recs[0]["whm"]["params"].get("search"), value, "recorded value (parsed)")
    eq(t.standin.requests()[0]["params"].get("search"), value, "the value WHM received")
    eq(g.stop(), 0, "exit code")
    with open(g.audit_path, "rb") as f:
        data = f.read()
    for raw in ("\u2028".encode(), "\u2029".encode()):
        assert raw not in data, f"raw {raw!r} in the audit file"
    assert b'"search":"a\\u2028b\\u2029c"' in data, "escaped value in the line"
    eq(len(data.decode().splitlines()), data.count(b"\n"), "lines by str.splitlines")
    check_chain(read_trail(g.audit_path)[0])
