"""Refusals: policy, target, method, media type (SPEC sections 4 and 6)."""
from lib import check_deny, check_error, eq


def test_function_not_allowed(t):
    """6. A function outside the allow list: 403, nothing reaches WHM, one
    deny record and no request record."""
    g = t.gate()
    r = g.curl("/json-api/removeacct?api.version=1&user=cust1",
               auth=f"Bearer {t.key('billing')}")
    rid = check_error(r, 403, "function_not_allowed")
    eq(r.json()["metadata"]["command"], "removeacct", "metadata.command")
    d = check_deny(g, rid, 403, "function_not_allowed")
    eq(d["client"]["id"], "billing", "deny client.id")
    eq(d["whm"]["function"], "removeacct", "deny whm.function")
    eq(d["whm"]["target"], "cust1", "deny whm.target")
    eq(t.standin.requests(), [], "requests WHM received")
    eq([x["type"] for x in g.audit()], ["system", "deny"], "audit record types")
    # support may list but not create.
    r = g.curl("/json-api/createacct?api.version=1&username=abc&domain=abc.example",
               auth=f"Bearer {t.key('support')}")
    check_deny(g, check_error(r, 403, "function_not_allowed"), 403, "function_not_allowed")
    eq(t.standin.requests(), [], "requests WHM received")


def test_error_envelopes(t):
    """19. whmgate's own errors use WHM's envelope with the matching code,
    each with a deny record; none reaches WHM."""
    g = t.gate()
    key = t.key("billing").encode()
    host = b"127.0.0.1:%d" % g.port
    auth = b"Authorization: Bearer " + key + b"\r\n"
    cases = [
        (b"GET /foo HTTP/1.1\r\nHost: " + host + b"\r\n" + auth + b"\r\n",
         404, "not_found"),
        (b"PUT /json-api/listaccts HTTP/1.1\r\nHost: " + host + b"\r\n" + auth +
         b"Content-Length: 0\r\n\r\n", 405, "method_not_allowed"),
        (b"GET /json-api/ListAccts?api.version=1 HTTP/1.1\r\nHost: " + host + b"\r\n" +
         auth + b"\r\n", 400, "bad_request"),
        (b"GET /json-api/../listaccts?api.version=1 HTTP/1.1\r\nHost: " + host + b"\r\n" +
         auth + b"\r\n", 400, "bad_request"),
        (b"GET /json-api/listaccts/ HTTP/1.1\r\nHost: " + host + b"\r\n" + auth + b"\r\n",
         400, "bad_request"),
        (b"GET /xml-api/listaccts?api.version=1 HTTP/1.1\r\nHost: " + host + b"\r\n" +
         auth + b"\r\n", 400, "bad_request"),
        (b"GET /json-api/list%61ccts?api.version=1 HTTP/1.1\r\nHost: " + host + b"\r\n" +
         auth + b"\r\n", 400, "bad_request"),
        (b"GET /json-api//listaccts?api.version=1 HTTP/1.1\r\nHost: " + host + b"\r\n" +
         auth + b"\r\n", 400, "bad_request"),
        (b"POST /json-api/listaccts HTTP/1.1\r\nHost: " + host + b"\r\n" + auth +
         b"Content-Type: application/json\r\nContent-Length: 18\r\n\r\n"
         b'{"api.version": 1}', 415, "unsupported_media_type"),
    ]
    # Refusals sent before the body was read close the connection, so
    # the body is never read as a request (SPEC section 4).
    cases.append((b"PUT /json-api/listaccts HTTP/1.1\r\nHost: " + host + b"\r\n" + auth +
                  b"Content-Length: 38\r\n\r\nGET /json-api/listaccts HTTP/1.1\r\n\r\n",
                  405, "method_not_allowed"))
    for raw, status, code in cases:
        what = raw.split(b"\r\n")[0].decode()
        with_body = b"Content-Length: 0\r\n" not in raw and b"Content-Length" in raw
        r = g.raw(raw, wait_close=1 if with_body else 0)
        try:
            rid = check_error(r, status, code)
            assert (r.header("Content-Type") or "").startswith("application/json"), \
                f"Content-Type {r.header('Content-Type')!r}"
            d = check_deny(g, rid, status, code)
            if with_body:
                eq(r.closed, True, "connection closed after refusing a request with a body")
        except AssertionError as e:
            raise AssertionError(f"{what}: {e}") from None
        eq(d["http"]["method"], what.split()[0], f"{what}: deny http.method")
    eq(len([x for x in g.audit() if x["type"] == "deny"]), len(cases),
       "deny records (one per refusal, none for a body read as a request)")
    # curl as well: the 415 for a JSON body.
    r = g.curl("/json-api/listaccts", "-H", "Content-Type: application/json",
               "--data-binary", '{"api.version":1}', auth=f"Bearer {t.key('billing')}")
    check_deny(g, check_error(r, 415, "unsupported_media_type"), 415, "unsupported_media_type")
    eq(t.standin.requests(), [], "requests WHM received")


def test_paths_outside_the_api(t):
    """/xml-api alone is no spelling of WHM's JSON API: 404 not_found;
    /json-api alone and /xml-api/... are 400 (SPEC section 4). Each leaves
    a deny record; nothing reaches WHM."""
    g = t.gate()
    auth = f"Bearer {t.key('billing')}"
    for path, status, code in (("/xml-api", 404, "not_found"),
                               ("/json-api", 400, "bad_request"),
                               ("/xml-api/listaccts", 400, "bad_request")):
        r = g.curl(path, auth=auth)
        check_deny(g, check_error(r, status, code), status, code)
    eq(t.standin.requests(), [], "requests WHM received")
