"""Allowed calls: what the client gets, what WHM receives, what is audited."""
import http.client
import re
from urllib.parse import parse_qsl

from lib import check_error, check_forwarded, eq, header

# Exactly what SPEC section 5 lets through to WHM.
GET_HEADERS = ["accept", "authorization", "host", "user-agent", "x-request-id"]
POST_HEADERS = sorted(GET_HEADERS + ["content-length", "content-type"])


def check_upstream_headers(t, rec, rid, names):
    """The stand-in got exactly these headers, with whmgate's values."""
    s = t.session
    eq(sorted(k.lower() for k, _ in rec["headers"]), names, "header names WHM received")
    eq(header(rec, "Authorization"), [f"whm root:{s.token}"], "Authorization WHM received")
    eq(header(rec, "Accept"), ["application/json"], "Accept WHM received")
    eq(header(rec, "User-Agent"), [f"whmgate/{s.version}"], "User-Agent WHM received")
    eq(header(rec, "X-Request-Id"), [rid], "X-Request-Id WHM received")
    eq(header(rec, "Host"), [f"127.0.0.1:{t.standin.port}"], "Host WHM received")
    if "content-type" in names:
        eq(header(rec, "Content-Type"), ["application/x-www-form-urlencoded"],
           "Content-Type WHM received")
        eq(header(rec, "Content-Length"), [str(len(rec["body"].encode("latin-1")))],
           "Content-Length WHM received")


def users(resp):
    body = resp.json()
    eq(body.get("metadata", {}).get("result"), 1, f"metadata.result in {body}")
    return sorted(a["user"] for a in body["data"]["acct"])


def test_get_seed_curl_style(t):
    """1. The seed's curl call: 200, WHM gets only whmgate's headers, and a
    request and a response record share the id."""
    g = t.gate()
    key = t.key("billing")
    r = g.curl("/json-api/listaccts?api.version=1", "-H", f"Authorization: Bearer {key}")
    eq(r.status, 200, f"status ({r.body[:200]!r})")
    eq(users(r), ["cust1", "cust2"], "accounts")
    rid = r.header("X-Request-Id")
    assert rid and re.fullmatch(r"[\x21-\x7e]{8,64}", rid), f"X-Request-Id {rid!r}"

    reqs = t.standin.requests()
    eq(len(reqs), 1, "requests WHM received")
    q = reqs[0]
    eq((q["method"], q["path"], q["query"], q["body"]),
       ("GET", "/json-api/listaccts", "api.version=1", ""), "request line WHM received")
    check_upstream_headers(t, q, rid, GET_HEADERS)

    recs = g.audit()
    eq((recs[0]["type"], recs[0].get("event")), ("system", "start"), "first audit record")
    req, resp = check_forwarded(g, rid)
    eq(req["client"]["id"], "billing", "request client.id")
    eq(req["client"]["auth"], "bearer", "request client.auth")
    eq(req["client"]["ip"], "127.0.0.1", "request client.ip")
    eq(req["instance"], "test", "request instance")
    eq((req["http"]["method"], req["http"]["path"]), ("GET", "/json-api/listaccts"),
       "request http")
    eq((req["whm"]["function"], req["whm"]["user"]), ("listaccts", "root"), "request whm")
    eq(req["whm"]["params"], {"api.version": "1"}, "request whm.params")
    eq(req["decision"]["allow"], True, "request decision.allow")
    eq(req["decision"]["rule"], "$.clients.billing.allow.listaccts", "request decision.rule")
    eq(resp["http"]["status"], 200, "response http.status")
    eq(resp["whm"]["result"], 1, "response whm.result")
    eq(resp["upstream"]["status"], 200, "response upstream.status")
    eq(resp["upstream"]["error"], None, "response upstream.error")
    eq(resp["upstream"]["bytes"], len(r.body), "response upstream.bytes")
    assert isinstance(resp.get("ms"), (int, float)), f"response ms: {resp}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", resp["ts"]), resp["ts"]


def test_post_perl_publicapi_shape(t):
    """3. cPanel::PublicAPI: POST, octet-stream body, Connection: close."""
    g = t.gate()
    body = b"api.version=1&search=cust1&searchtype=user"
    r = g.raw(b"POST /json-api/listaccts HTTP/1.1\r\n"
              b"Host: 127.0.0.1:%d\r\n"
              b"Authorization: WHM billing:%s\r\n"
              b"Content-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s"
              % (g.port, t.key("billing").encode(), len(body), body), wait_close=2)
    eq(r.status, 200, f"status ({r.body[:200]!r})")
    eq(users(r), ["cust1"], "accounts")
    eq(r.closed, True, "connection closed after the answer to Connection: close")
    rid = r.header("X-Request-Id")

    reqs = t.standin.requests()
    eq(len(reqs), 1, "requests WHM received")
    q = reqs[0]
    eq((q["method"], q["path"], q["query"]), ("POST", "/json-api/listaccts", ""),
       "request line WHM received (POST, no query)")
    eq(parse_qsl(q["body"], keep_blank_values=True),
       [("api.version", "1"), ("search", "cust1"), ("searchtype", "user")],
       "form body WHM received")
    check_upstream_headers(t, q, rid, POST_HEADERS)

    req, resp = check_forwarded(g, rid)
    eq(req["client"]["auth"], "whm", "client.auth")
    eq(req["whm"]["params"], {"api.version": "1", "search": "cust1", "searchtype": "user"},
       "whm.params")
    eq((resp["http"]["status"], resp["whm"]["result"]), (200, 1), "response record")

    # The same as HTTP/1.0 while WHM answers chunked: no chunked framing
    # to a 1.0 client; the end of the body is the close.
    t.standin.behave(chunked=True)
    r = g.raw(b"POST /json-api/listaccts HTTP/1.0\r\n"
              b"Host: 127.0.0.1:%d\r\n"
              b"Authorization: WHM billing:%s\r\n"
              b"Content-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\n\r\n%s"
              % (g.port, t.key("billing").encode(), len(body), body), wait_close=2)
    eq(r.status, 200, f"HTTP/1.0 status ({r.body[:200]!r})")
    eq(r.header("Transfer-Encoding"), None, "Transfer-Encoding to an HTTP/1.0 client")
    eq(users(r), ["cust1"], "HTTP/1.0 accounts")
    eq(r.closed, True, "HTTP/1.0 connection closed after the answer")
    check_forwarded(g, r.header("X-Request-Id"))


def test_post_javascript_client_shape(t):
    """4. The cPanel JavaScript client: a urlencoded POST (query first, then
    body, all forwarded in the body); browser headers are not forwarded."""
    g = t.gate()
    r = g.http("POST", "/json-api/listaccts?api.version=1",
               body=b"search=cust2&searchtype=user",
               headers={"Authorization": f"whm billing:{t.key('billing')}",
                        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                        "X-Requested-With": "XMLHttpRequest",
                        "Accept": "application/json, text/javascript, */*; q=0.01",
                        "Origin": "https://whm.example:2087",
                        "Cookie": "whostmgrsession=abc"})
    eq(r.status, 200, f"status ({r.body[:200]!r})")
    eq(users(r), ["cust2"], "accounts")
    rid = r.header("X-Request-Id")
    reqs = t.standin.requests()
    eq(len(reqs), 1, "requests WHM received")
    q = reqs[0]
    eq((q["method"], q["query"]), ("POST", ""), "method and query WHM received")
    eq(parse_qsl(q["body"], keep_blank_values=True),
       [("api.version", "1"), ("search", "cust2"), ("searchtype", "user")],
       "form body WHM received (query first, then body)")
    check_upstream_headers(t, q, rid, POST_HEADERS)
    _, resp = check_forwarded(g, rid)
    eq(resp["whm"]["result"], 1, "response whm.result")


def test_createacct_then_listaccts(t):
    """5. createacct through whmgate creates; listaccts shows it; a username
    outside the pattern (or missing) is 403 and never reaches WHM."""
    g = t.gate()
    auth = f"Bearer {t.key('billing')}"
    r = g.curl("/json-api/createacct?api.version=1&username=newacct1"
               "&domain=newacct1.example&plan=basic", auth=auth)
    eq(r.status, 200, f"createacct status ({r.body[:200]!r})")
    eq(r.json()["metadata"]["result"], 1, f"createacct metadata.result ({r.body[:200]!r})")
    req, resp = check_forwarded(g, r.header("X-Request-Id"))
    eq(req["whm"]["target"], "newacct1", "createacct whm.target")
    eq(resp["whm"]["result"], 1, "createacct response whm.result")

    r = g.curl("/json-api/listaccts?api.version=1&search=newacct1&searchtype=user", auth=auth)
    eq(r.status, 200, "listaccts status")
    eq(users(r), ["newacct1"], "listaccts after createacct")

    before = len(t.standin.requests())
    for q in ("username=Bad_Name&domain=bad.example",      # pattern
              "username=toolongname1&domain=bad.example",  # pattern, length
              "domain=bad.example"):                       # required
        r = g.curl(f"/json-api/createacct?api.version=1&{q}", auth=auth)
        rid = check_error(r, 403, "parameter_not_allowed")
        eq(r.json()["metadata"]["command"], "createacct", "metadata.command")
        d = g.records(rid)[0]
        eq(d["type"], "deny", f"record of {q}")
        eq(d["decision"]["code"], "parameter_not_allowed", f"decision.code of {q}")
        assert (d["decision"]["rule"] or "").startswith(
            "$.clients.billing.allow.createacct"), f"decision.rule {d['decision']['rule']!r}"
    eq(len(t.standin.requests()), before, "requests WHM received after the refusals")
    r = g.curl("/json-api/listaccts?api.version=1&search=bad.example&searchtype=domain",
               auth=auth)
    eq(users(r), [], "accounts after refused createacct")


def test_whm_result_zero_relayed(t):
    """12. WHM's HTTP 200 with metadata.result 0 is relayed as is and its
    result and reason are audited."""
    g = t.gate()
    r = g.curl("/json-api/accountsummary?api.version=1&user=nosuch",
               auth=f"Bearer {t.key('billing')}")
    eq(r.status, 200, "status")
    body = r.json()
    eq(body["metadata"]["result"], 0, "metadata.result")
    eq(body["metadata"]["reason"], "Account does not exist.", "metadata.reason")
    assert "whmgate" not in body, f"WHM's own answer was rewritten: {body}"
    eq(len(t.standin.requests()), 1, "requests WHM received")
    _, resp = check_forwarded(g, r.header("X-Request-Id"))
    eq(resp["http"]["status"], 200, "response http.status")
    eq(resp["upstream"]["status"], 200, "response upstream.status")
    eq(resp["whm"]["result"], 0, "response whm.result")
    eq(resp["whm"]["reason"], "Account does not exist.", "response whm.reason")
    eq(resp["whm"]["target"], "nosuch", "response whm.target")


def test_response_headers_filtered(t):
    """13. Set-Cookie and other WHM headers are dropped; X-Request-Id is
    whmgate's own (the client's is ignored) and equals the audit id."""
    g = t.gate()
    r = g.http("GET", "/json-api/listaccts?api.version=1",
               headers={"Authorization": f"Bearer {t.key('billing')}",
                        "X-Request-Id": "client-chosen-id-0001",
                        "X-Forwarded-For": "203.0.113.9",
                        "Cookie": "cpsession=client"})
    eq(r.status, 200, "status")
    names = {k.lower() for k, _ in r.headers}
    for bad in ("set-cookie", "x-standin"):
        assert bad not in names, f"{bad} leaked to the client: {r.headers}"
    assert "cpsrvd" not in (r.header("Server") or ""), f"WHM's Server header leaked: {r.headers}"
    allowed = {"content-type", "content-length", "transfer-encoding", "connection",
               "x-request-id", "date", "keep-alive", "server"}
    assert names <= allowed, f"unexpected response headers {sorted(names - allowed)}"
    eq(len(r.header_all("X-Request-Id")), 1, "X-Request-Id headers")
    rid = r.header("X-Request-Id")
    assert rid != "client-chosen-id-0001", "the client's X-Request-Id was used"
    eq(r.header("Content-Type"), 'application/json; charset="utf-8"', "Content-Type")
    q = t.standin.requests()[0]
    eq(header(q, "X-Request-Id"), [rid], "X-Request-Id WHM received")
    for bad in ("cookie", "x-forwarded-for"):
        eq(header(q, bad), [], f"{bad} forwarded to WHM")
    req, resp = check_forwarded(g, rid)
    eq(req["id"], rid, "audit id")
    # A refusal carries the id too, and again not the client's.
    r = g.http("GET", "/json-api/removeacct?api.version=1&user=cust1",
               headers={"Authorization": f"Bearer {t.key('billing')}",
                        "X-Request-Id": "client-chosen-id-0002"})
    rid = check_error(r, 403, "function_not_allowed")
    assert rid != "client-chosen-id-0002", "the client's X-Request-Id was used"
    g.records(rid)


def test_keep_alive(t):
    """14. Several requests (allowed and refused) on one client connection
    are all answered; the upstream connection is reused too."""
    g = t.gate()
    auth = {"Authorization": f"Bearer {t.key('billing')}"}
    form = dict(auth, **{"Content-Type": "application/x-www-form-urlencoded"})
    plan = [("GET", "/json-api/listaccts?api.version=1", None, auth, 200),
            ("POST", "/json-api/listaccts", b"api.version=1&search=cust1", form, 200),
            ("GET", "/json-api/removeacct?api.version=1&user=cust2", None, auth, 403),
            ("GET", "/json-api/accountsummary?api.version=1&user=cust2", None, auth, 200),
            ("GET", "/json-api/listaccts?api.version=1", None, {}, 401),
            ("GET", "/json-api/listaccts?api.version=1&want=user", None, auth, 200)]
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10 * t.session.slow)
    ids = []
    try:
        for i, (method, path, body, hdrs, want) in enumerate(plan):
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            eq(r.status, want, f"request {i + 1} ({method} {path}) status, body {data[:120]!r}")
            assert not r.will_close, f"request {i + 1}: whmgate closed the connection"
            ids.append(r.getheader("X-Request-Id"))
    finally:
        c.close()
    eq(len(set(ids)), len(plan), "distinct request ids")
    recs = g.wait_audit(lambda rs: len([r for r in rs if r["type"] in ("deny", "response")])
                        >= len(plan), what="a final record per request")
    ports = {r["client"]["port"] for r in recs if r.get("id") in ids}
    eq(len(ports), 1, "client ports in the audit (one connection)")
    reqs = t.standin.requests()
    eq(len(reqs), 4, "requests WHM received")
    eq(len({q["conn"] for q in reqs}), 1, "upstream connections used (reuse)")
