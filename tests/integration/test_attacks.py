"""Hostile input (SPEC sections 4 and 6): table-driven attacks over raw
sockets, one whmgate per class.

Every attack row asserts the status and whmgate.error code in WHM's
envelope, that the WHM stand-in received nothing, and that a deny record
with that status and code exists for the request id. Rows marked close
also assert that whmgate closes the connection and never answers (or
forwards) the well-formed request appended after the attack. Twin rows
send the same request made well-formed and assert it reaches WHM with
exactly the expected parameters.
"""
import select
import socket
import threading
import time
from urllib.parse import quote

from attacklib import GOOD, Table
from lib import (check_deny, check_error, check_forwarded, eq, read_response,
                 read_while_trickling)

B400 = (400, "bad_request")
B404 = (404, "not_found")
B405 = (405, "method_not_allowed")
B401 = (401, "unauthenticated")
B403F = (403, "function_not_allowed")
B403P = (403, "parameter_not_allowed")
B413 = (413, "payload_too_large")
B415 = (415, "unsupported_media_type")
B431 = (431, "headers_too_large")
B408 = (408, "request_timeout")

V1 = {"api.version": "1"}


def attack_conf(t, limits=None):
    """billing with value constraints, cpanel/uapi targets and batch."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"].update({
        "accountsummary": {"user": {"pattern": "^cust[0-9]+$"}},
        "suspendacct": {"user": {"enum": ["cust1", "cust2"]}, "reason": {"absent": True}},
        "cpanel:Email::listpops": {"cpanel_jsonapi_user": {"pattern": "^cust[0-9]+$"}},
        "uapi_cpanel:Email::list_pops": {"cpanel.user": {"pattern": "^cust[0-9]+$"}},
    })
    if limits:
        conf["limits"] = limits
    return conf


def enc(s):
    """One level of form encoding (what a batch command value needs)."""
    return quote(s, safe="")


def table(t, label, limits=None):
    g = t.gate(attack_conf(t, limits))
    return g, Table(t, g, label)


# ---------------------------------------------------------------- target

def test_attack_path(t):
    """Path spellings: only the exact `/json-api/<fn>` form passes; other
    spellings of a json-api/xml-api path are 400, any other path 404."""
    g, T = table(t, "path")
    bad = [
        # percent-escapes anywhere in the path
        "/json-api/list%61ccts?api.version=1", "/json-api/%6cistaccts", "/json-api/listaccts%2f",
        "/json-api/listaccts%2F", "/json-api/%2e%2e/json-api/listaccts",
        "/json-api/%2E/listaccts", "/json-api/listaccts%00", "/json-api/listaccts%00.json",
        "/json-api/listaccts%25", "/json-api/list%2561ccts", "/json-api/listaccts%3fapi.version=1",
        "/json-api/listaccts%20", "/json-api/listaccts%", "/json-api/listaccts%zz",
        "/json-api/%2fjson-api%2flistaccts",
        # dot segments, empty segments, trailing slash
        "/json-api/../json-api/listaccts", "/json-api/./listaccts", "/json-api/listaccts/.",
        "/json-api/listaccts/..", "/json-api/x/../listaccts", "/json-api//listaccts",
        "/json-api/listaccts/", "/json-api/listaccts//", "/json-api/listaccts/?api.version=1",
        "/json-api/cpsess123/listaccts", "/json-api/listaccts/extra",
        # params, backslash, case, separators in the name
        "/json-api/listaccts;x=1", "/json-api/listaccts;", "/json-api/list;accts",
        "/json-api/list\\accts", "/json-api/listaccts\\", "/json-api/ListAccts",
        "/json-api/LISTACCTS?api.version=1", "/json-api/listAccts", "/json-api/list-accts",
        "/json-api/list.accts", "/json-api/listaccts.json", "/json-api/listaccts-1",
        "/json-api/listaccts~", "/json-api/listaccts!",
        # /json-api alone, an empty function, xml-api
        "/json-api", "/json-api?api.version=1", "/json-api/", "/json-api/?api.version=1",
        "/xml-api/listaccts?api.version=1", "/xml-api/listaccts", "/xml-api/",
        # fragments
        "/json-api/listaccts#frag", "/json-api/listaccts?api.version=1#x", "/json-api/#/listaccts",
        "/json-api/listaccts#/../removeacct",
        # absolute-form, authority-form, asterisk-form
        "http://127.0.0.1/json-api/listaccts?api.version=1",
        "https://whm.example:2087/json-api/listaccts", "HTTP://h/json-api/listaccts",
        "127.0.0.1:2087", "whm.example:2087", "*",
        # non-ASCII bytes
        "/json-api/list\xc3\xa9accts", "/json-api/listaccts\xff", "/json-api/\x80listaccts",
        "/json-api/listacct\xd1\x95",
        # very long
        "/json-api/listaccts/" + "a" * 8000, "/json-api/" + "../" * 2000 + "listaccts",
        "/json-api/" + "%61" * 3000,
    ]
    for target in bad:
        T.attack(f"GET {target[:60]!r}", T.get(target), *B400)
    # A path outside /json-api/ and /xml-api/ is not WHM's API: 404
    # (refused all the same, however WHM would fold it).
    for target in ["/foo", "/", "/cpsess123/json-api/listaccts",
                   "/cpsess0123456789/json-api/listaccts?api.version=1",
                   "/./json-api/listaccts", "/../json-api/listaccts", "//json-api/listaccts",
                   "/%6Ason-api/listaccts", "/json-api%2flistaccts", "/JSON-API/listaccts",
                   "/json-apix/listaccts", "/json-api.json", "/scripts/listaccts",
                   "/" + "a" * 8000]:
        T.attack(f"GET {target[:60]!r}", T.get(target), *B404)
    # A well-formed name that is not in the allow list, however long.
    T.attack("GET /json-api/<8000 letters>", T.get("/json-api/" + "a" * 8000), *B403F)
    T.attack("GET /json-api/removeacct", T.get("/json-api/removeacct?user=cust1"), *B403F)

    T.twin("exact path", T.get(GOOD), V1)
    T.twin("no query", T.get("/json-api/listaccts"), V1)
    T.twin("empty query", T.get("/json-api/listaccts?"), V1)
    T.twin("accountsummary", T.get("/json-api/accountsummary?api.version=1&user=cust1"),
           dict(V1, user="cust1"), function="accountsummary")
    T.finish()


def test_attack_method(t):
    """Methods: anything but GET and POST is 405, after the target check
    (a bad target is 400 first) and before authentication; an invalid
    method token is 400."""
    g, T = table(t, "method")
    cl0 = [("Content-Length", "0")]
    for m in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "LOCK",
              "PURGE", "SEARCH", "REPORT", "MOVE", "COPY"):
        T.attack(f"{m} listaccts", T.head(m, GOOD, cl0), *B405)
    T.attack("CONNECT /json-api/listaccts", T.head("CONNECT", GOOD), *B405, close=True)
    T.attack("PUT without auth", T.head("PUT", GOOD, cl0, auth=False), *B405)
    T.attack("DELETE with a bad key", T.head("DELETE", GOOD, cl0, auth="Bearer nope"), *B405)
    T.attack("PUT with a JSON body type", T.head("PUT", GOOD, [("Content-Type",
                                                                "application/json")] + cl0),
             *B405)
    # A body that is itself a request: answered before reading, closed.
    smug = T.smuggled()
    T.attack("PUT with a request as body",
             T.head("PUT", GOOD, [("Content-Length", str(len(smug)))]) + smug, *B405,
             close=True, smuggle=False)
    T.attack("DELETE with a chunked request as body",
             T.head("DELETE", GOOD, [("Transfer-Encoding", "chunked")])
             + T.chunks(smug), *B405, close=True)
    T.attack("PATCH with a form body",
             T.post(GOOD, "api.version=1").replace(b"POST", b"PATCH", 1), *B405, close=True)
    # The target is checked first.
    T.attack("PUT bad target", T.head("PUT", "/json-api/ListAccts", cl0), *B400)
    T.attack("DELETE ../ target", T.head("DELETE", "/json-api/../listaccts", cl0), *B400)
    T.attack("PUT /foo", T.head("PUT", "/foo", cl0), *B404)
    T.attack("OPTIONS *", T.head("OPTIONS", "*", cl0), *B400)
    T.attack("CONNECT authority-form", T.head("CONNECT", "127.0.0.1:2087"), *B400, close=True)
    T.attack("TRACE absolute-form", T.head("TRACE", "http://h/json-api/listaccts", cl0), *B400)
    # Invalid method tokens.
    for m in ("get", "Get", "post", "GETT", "G\x00ET", "GET\t", "GET /x"):
        T.attack(f"method {m!r}", T.head(m, GOOD), *B400, close=True)

    # HEAD: 405 and a deny record; an answer to HEAD has no body
    # (RFC 9110 9.3.2), or a keep-alive client reads it as the next answer.
    s = T.connect()
    try:
        s.sendall(T.head("HEAD", GOOD) + T.smuggled())
        buf = bytearray()
        r = T.read_head(s, buf)
        T.twins += 1        # the GET after it is well-formed and forwarded
        try:
            T.attacks += 1
            eq(r.status, 405, "HEAD status")
            rid = r.header("X-Request-Id")
            check_deny(T.g, rid, *B405)
            r2 = read_response(s, buf)      # the next answer, in order
            eq(r2.status, 200, f"status of the request after HEAD ({r2.body[:120]!r})")
            t.standin.reset()
        except (AssertionError, OSError, ValueError) as e:
            T.fail("HEAD then GET on one connection", e)
    finally:
        s.close()
    t.standin.reset()

    T.twin("GET", T.get(GOOD), V1)
    T.twin("POST", T.post("/json-api/listaccts", "api.version=1&search=cust1"),
           dict(V1, search="cust1"), method="POST")
    T.finish()


# ---------------------------------------------------------------- parameters

def test_attack_param_encoding(t):
    """Parameter encodings: bad escapes, NUL, invalid UTF-8 and empty names
    are 400 in the query and in the body; decoding happens exactly once."""
    g, T = table(t, "encoding")
    pieces = [
        "search=%", "search=%4", "search=%zz", "search=%g0", "search=%%30", "search=a%",
        "search=%u0041", "search=%4G", "se%rch=1", "se%2=1", "%=1", "search=%0",
        "search=%00", "search=a%00b", "sea%00rch=1", "%00=1", "search=%2500%00",
        "search=%C0%AF", "search=%C0%80", "search=%E0%80%AF", "search=%F0%80%80%AF",
        "search=%ED%A0%80", "search=%ED%BF%BF", "search=%F4%90%80%80", "search=%FF",
        "search=%FE%FF", "search=%80", "search=%C3", "search=%E2%82", "search=a%C3(",
        "search=%F8%88%80%80%80", "%C0%AE%C0%AE=1", "us%ED%A0%80er=1", "%FF=1",
        "=x", "=", "=1&search=a", "api.version=1&=",
    ]
    for p in pieces:
        T.attack(f"query {p}", T.get(f"/json-api/listaccts?api.version=1&{p}"), *B400)
    for p in ("search=%zz", "search=%00", "search=%C0%AF", "search=%ED%A0%80", "=x", "search=%"):
        T.attack(f"body {p}", T.post("/json-api/listaccts", f"api.version=1&{p}"), *B400)
    # Raw bytes that are not valid UTF-8 (or not allowed) in the target.
    for raw in ("search=\xff", "search=\xc0\xaf", "search=\x01", "search=a\x7fb"):
        T.attack(f"raw query {raw!r}", T.get(f"/json-api/listaccts?api.version=1&{raw}"),
                 *B400)
    for raw in ("search=\xff", "search=\xc0\xaf", "search=\xed\xa0\x80"):
        T.attack(f"raw body {raw!r}", T.post("/json-api/listaccts", f"api.version=1&{raw}"),
                 *B400)
    # Escapes in a constrained name are decoded before the policy check.
    T.attack("encoded name %75ser", T.get("/json-api/accountsummary?%75ser=root"), *B403P)
    T.attack("encoded name user%2D0", T.get("/json-api/accountsummary?user=cust1&user%2D0=root"),
             *B403P)
    T.attack("encoded api%2Eversion", T.get("/json-api/listaccts?api%2Eversion=0"), *B400)
    T.attack("encoded reason", T.get("/json-api/suspendacct?user=cust1&re%61son=x"), *B403P)

    T.twin("valid UTF-8", T.get("/json-api/listaccts?api.version=1&search=caf%C3%A9"),
           dict(V1, search="caf\u00e9"))
    T.twin("4-byte UTF-8", T.get("/json-api/listaccts?api.version=1&search=%F0%9F%98%80"),
           dict(V1, search="\U0001F600"))
    T.twin("plus is a space", T.get("/json-api/listaccts?api.version=1&search=cust+1"),
           dict(V1, search="cust 1"))
    T.twin("%2B is a plus", T.get("/json-api/listaccts?api.version=1&search=a%2Bb"),
           dict(V1, search="a+b"))
    T.twin("plus in a name", T.get("/json-api/listaccts?api.version=1&a+b=1"),
           dict(V1, **{"a b": "1"}))
    T.twin("empty pieces", T.get("/json-api/listaccts?&&api.version=1&&search=x&"),
           dict(V1, search="x"))
    T.twin("no = is an empty value", T.get("/json-api/listaccts?api.version=1&search"),
           dict(V1, search=""))
    T.twin("%25 decodes once", T.get("/json-api/listaccts?api.version=1&search=%2541"),
           dict(V1, search="%41"))
    T.twin("semicolon is not a separator",
           T.get("/json-api/accountsummary?user=cust1&x=1;user=root"),
           dict(V1, user="cust1", x="1;user=root"), function="accountsummary")
    T.twin("lower-case escapes", T.get("/json-api/listaccts?api.version=1&search=%2f%3d"),
           dict(V1, search="/="))
    # Double-encoded names are decoded once: WHM gets the literal name,
    # never a second api.version or a user-N copy.
    T.twin("double-encoded api%252eversion",
           T.get("/json-api/listaccts?api.version=1&api%252eversion=0"),
           dict(V1, **{"api%2eversion": "0"}))
    T.twin("double-encoded user%252d0",
           T.get("/json-api/accountsummary?user=cust1&user%252d0=root"),
           dict(V1, user="cust1", **{"user%2d0": "root"}), function="accountsummary")
    T.twin("body", T.post("/json-api/listaccts", "api.version=1&search=caf%C3%A9+x"),
           dict(V1, search="caf\u00e9 x"), method="POST")
    T.finish()


def test_attack_duplicates(t):
    """Repeated names (query, body, across both) are 400; `name-N` copies
    are held to the constraints of `name`, leading zeros included."""
    g, T = table(t, "duplicates")
    q = "/json-api/accountsummary?"
    for qs in ("user=cust1&user=cust2", "user=cust1&user=cust1", "user=root&user=cust1",
               "user=cust1&%75ser=cust2", "user=cust1&us%65r=cust1", "user-0=cust1&user-0=cust2",
               "user=cust1&user-1=cust2&user-1=cust2", "api.version=1&user=cust1&user=root"):
        T.attack(f"query {qs}", T.get(q + qs), *B400)
    T.attack("listaccts search twice", T.get(GOOD + "&search=a&search=b"), *B400)
    T.attack("body user twice", T.post("/json-api/accountsummary", "user=cust1&user=root"),
             *B400)
    T.attack("query and body", T.post("/json-api/accountsummary?user=cust1", "user=cust2"),
             *B400)
    T.attack("query and body, same value",
             T.post("/json-api/accountsummary?user=cust1", "user=cust1"), *B400)
    T.attack("query and body search", T.post(GOOD + "&search=a", "search=b"), *B400)
    T.attack("api.version query and body", T.post(GOOD, "api.version=1"), *B400)
    T.attack("disallowed function, duplicate", T.get("/json-api/removeacct?user=a&user=b"),
             *B400)
    # name-N copies: the constraint holds for each.
    for qs in ("user=cust1&user-0=root", "user-0=root", "user=cust1&user-1=cust2&user-2=root",
               "user=cust1&user-01=root", "user=cust1&user-007=root",
               "user=cust1&user-00=root", "user-99999999999999999999=root",
               "user=cust1&user-0=cust1x"):
        T.attack(f"accountsummary {qs}", T.get(q + qs), *B403P)
    # Patterns and enums match the whole decoded value, byte for byte.
    for qs in ("user=cust1%0A", "user=cust1%0Aroot", "user=xcust1", "user=cust1x",
               "user=cust%EF%BC%91", "user=%20cust1", "user=cust1+", "user=CUST1"):
        T.attack(f"accountsummary {qs}", T.get(q + qs), *B403P)
    for qs in ("user=CUST1", "user=cust1%20", "user=cust1%0A", "user=cust"):
        T.attack(f"suspendacct {qs}", T.get("/json-api/suspendacct?" + qs), *B403P)
    # `command` may repeat only in a batch call.
    T.attack("listaccts command twice", T.get(GOOD + "&command=a&command=b"), *B400)
    T.attack("user-N in the body", T.post("/json-api/accountsummary?user=cust1", "user-0=root"),
             *B403P)
    c = "/json-api/createacct?domain=abc.example&"
    for qs in ("username=abc&username-1=Evil!", "username=abc&username-0=root_x",
               "username=abc&username-01=BAD", "username=abc&username-007=a+b",
               "username-1=abc", "username-0=abc&username-1=def"):
        T.attack(f"createacct {qs}", T.get(c + qs), *B403P)
    s = "/json-api/suspendacct?"
    for qs in ("user=cust3", "user=cust1&user-0=cust3", "user=cust1&user-00=root",
               "user=cust1&reason=x", "user=cust1&reason-1=x", "user=cust1&reason-007=",
               "user=cust1&reason=", "user-0=cust1&user-0=cust2"):
        T.attack(f"suspendacct {qs}", T.get(s + qs),
                 *(B400 if qs.count("user-0") == 2 else B403P))

    T.twin("user and user-0 both allowed", T.get(q + "user=cust1&user-0=cust2"),
           dict(V1, user="cust1", **{"user-0": "cust2"}), function="accountsummary")
    T.twin("username and username-01 both allowed",
           T.get(c + "username=abc&username-01=def"),
           dict(V1, domain="abc.example", username="abc", **{"username-01": "def"}),
           function="createacct")
    T.twin("escaped value decodes into the pattern", T.get(q + "user=cust%31"),
           dict(V1, user="cust1"), function="accountsummary")
    T.twin("POST query and body, distinct names",
           T.post("/json-api/accountsummary?api.version=1", "user=cust1"),
           dict(V1, user="cust1"), method="POST", function="accountsummary")
    T.twin("suspendacct allowed", T.get(s + "user=cust1&user-0=cust2"),
           dict(V1, user="cust1", **{"user-0": "cust2"}), function="suspendacct")
    T.finish()


def test_attack_api_version(t):
    """api.version: absent or `1` only, every copy, in the call and in a
    batch sub-call; anything else is 400 so nothing runs on API 0."""
    g, T = table(t, "api.version")
    L = "/json-api/listaccts?"
    for qs in ("api.version=0", "api.version=2", "api.version=1.0", "api.version=%201",
               "api.version=+1", "api.version=1+", "api.version=", "api.version",
               "api.version=01", "api.version=1%00", "api.version=i", "api.version=%EF%BC%91",
               "api.version=1&api.version=1", "api.version=1&api.version=0",
               "api.version=0&api.version=1", "api.version-1=0", "api.version=1&api.version-1=0",
               "api.version=1&api.version-0=2", "api.version-01=0", "api.version-1=",
               "api%2Eversion=0", "api%2eversion=1&api.version=1",
               "api.version=1&api.version-0=1.0"):
        T.attack(f"listaccts?{qs}", T.get(L + qs), *B400)
    T.attack("POST body api.version=0", T.post("/json-api/listaccts", "api.version=0"), *B400)
    T.attack("POST query 1, body 0", T.post(GOOD, "api.version=0"), *B400)
    T.attack("POST body api.version-3=0", T.post(GOOD, "api.version-3=0"), *B400)
    T.attack("policy-denied call with api.version=0",
             T.get("/json-api/removeacct?api.version=0&user=x"), *B400)
    bt = "/json-api/batch?api.version=1&"
    for sub in ("listaccts?api.version=0", "listaccts?api.version=2",
                "listaccts?api.version-1=0", "listaccts?api.version=1&api.version=1",
                "listaccts?api.version=", "listaccts?api.version=1.0"):
        T.attack(f"batch sub-call {sub}", T.get(bt + "command=" + enc(sub)), *B400)
    T.attack("batch second sub-call api.version=0",
             T.get(bt + "command-0=listaccts&command-1=" + enc("listaccts?api.version=0")), *B400)
    T.attack("batch outer api.version=0",
             T.get("/json-api/batch?api.version=0&command=listaccts"), *B400)
    T.attack("batch outer api.version-1=0",
             T.get("/json-api/batch?api.version-1=0&command=listaccts"), *B400)

    T.twin("api.version=1", T.get(L + "api.version=1"), V1)
    T.twin("absent (added)", T.get(L + "search=cust1"), dict(V1, search="cust1"))
    T.twin("%31 is 1", T.get(L + "api.version=%31"), V1)
    T.twin("lone api.version-1=1 (plain added)", T.get(L + "api.version-1=1"),
           dict(V1, **{"api.version-1": "1"}))
    T.twin("POST body api.version=1", T.post("/json-api/listaccts", "api.version=1"), V1,
           method="POST")
    T.twin("batch sub-call api.version=1",
           T.get(bt + "command=" + enc("listaccts?api.version=1")),
           dict(V1, **{"command-0": "listaccts?api.version=1"}), function="batch")
    T.finish()


# ---------------------------------------------------------------- batch, cpanel

def test_attack_batch(t):
    """batch: every sub-call is itself checked; nested batch 403; bad
    sub-calls and mixed list forms 400."""
    g, T = table(t, "batch")
    bt = "/json-api/batch?api.version=1&"

    def cmd(*subs, key="command"):
        return "&".join(f"{key}={enc(s)}" for s in subs)

    T.attack("nested batch", T.get(bt + cmd("batch?command=listaccts")), *B403F)
    T.attack("nested batch, second", T.get(bt + cmd("listaccts", "batch?command=listaccts")),
             *B403F)
    T.attack("nested batch in command-5", T.get(bt + "command-5=" + enc("batch")), *B403F)
    for sub in ("removeacct?user=cust1", "passwd?user=cust1&password=x",
                "create_user_session?user=root&service=whostmgrd",
                "api_token_create?token_name=x", "version", "listaccts_x"):
        T.attack(f"disallowed {sub}", T.get(bt + cmd("listaccts", sub)), *B403F)
    T.attack("disallowed in command-N", T.get(bt + "command-0=listaccts&command-1=removeacct"),
             *B403F)
    for sub in ("accountsummary?user=root", "accountsummary?user=cust1&user-0=root",
                "accountsummary?user-01=root", "createacct?domain=x.example",
                "createacct?username=Root&domain=x.example", "suspendacct?user=cust1&reason=x",
                "suspendacct?user=cust1&reason-2=x", "suspendacct?user=cust9"):
        T.attack(f"parameter {sub}", T.get(bt + cmd(sub)), *B403P)
    T.attack("support may not batch", T.get(bt + "command=listaccts",
                                            auth="Bearer " + t.key("support")), *B403F)
    # List forms.
    for qs in ("command=listaccts&command=listaccts&command-0=listaccts",
               "command-0=listaccts&command=listaccts&command=version",
               "command-1=listaccts&command-01=listaccts",
               "command-0=listaccts&command-00=listaccts",
               "command-0=listaccts&command-0=listaccts",
               "command-2=listaccts&command-002=version"):
        T.attack(f"list form {qs}", T.get(bt + qs), *B400)
    # Bad sub-call function names.
    for sub in ("ListAccts", "list.accts", "list%2Eaccts", "../listaccts", "listaccts/",
                "/json-api/listaccts", "json-api/listaccts", "", "?api.version=1",
                "listaccts#x", "list accts", "listaccts;x", "list-accts", "LISTACCTS?x=1",
                "list\\accts", "caf\u00e9", "listaccts\x00"):
        T.attack(f"sub-call name {sub!r}", T.get(bt + "command=" + enc(sub)), *B400)
    # Bad sub-call arguments.
    for sub in ("listaccts?search=%zz", "listaccts?search=%", "listaccts?search=%00",
                "listaccts?search=%C0%AF", "listaccts?search=%ED%A0%80", "listaccts?=x",
                "listaccts?search=a&search=b", "accountsummary?user=cust1&user=root",
                "listaccts?se%rch=1"):
        T.attack(f"sub-call args {sub}", T.get(bt + cmd(sub)), *B400)
    T.attack("bare cpanel sub-call", T.get(bt + cmd("listaccts", "cpanel")), *B400)
    T.attack("bare uapi_cpanel sub-call", T.get(bt + cmd("uapi_cpanel")), *B400)
    T.attack("batch without command", T.get(bt + "abort_on_error=1"), *B400)
    T.attack("batch, empty query", T.get("/json-api/batch"), *B400)
    T.attack("batch, command- (no digits) only", T.get(bt + "command-=listaccts"), *B400)
    T.attack("batch, commandx only", T.get(bt + "commands=listaccts"), *B400)
    # cpanel and uapi_cpanel inside a batch are checked per target.
    cp = "cpanel?cpanel_jsonapi_module=Email&cpanel_jsonapi_func=listpops&"
    T.attack("batch cpanel user=root", T.get(bt + cmd(cp + "cpanel_jsonapi_user=root")), *B403P)
    T.attack("batch cpanel fallback user=root", T.get(bt + cmd(cp + "user=root")), *B403P)
    T.attack("batch cpanel other target",
             T.get(bt + cmd("cpanel?cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email"
                            "&cpanel_jsonapi_func=addpop")), *B403F)
    T.attack("batch cpanel without module",
             T.get(bt + cmd("cpanel?cpanel_jsonapi_user=cust1&cpanel_jsonapi_func=listpops")),
             *B400)
    T.attack("batch cpanel module twice",
             T.get(bt + cmd(cp + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module-0=Fileman")),
             *B400)
    up = "uapi_cpanel?cpanel.module=Email&cpanel.function=list_pops&"
    T.attack("batch uapi user=root", T.get(bt + cmd(up + "cpanel.user=root")), *B403P)
    T.attack("batch uapi other target",
             T.get(bt + cmd("uapi_cpanel?cpanel.user=cust1&cpanel.module=Email"
                            "&cpanel.function=delete_pop")), *B403F)
    T.attack("batch uapi function missing",
             T.get(bt + cmd("uapi_cpanel?cpanel.user=cust1&cpanel.module=Email")), *B400)
    T.attack("batch uapi module Email::x",
             T.get(bt + cmd("uapi_cpanel?cpanel.user=cust1&cpanel.module=Email::x"
                            "&cpanel.function=list_pops")), *B400)
    T.attack("batch, body command", T.post("/json-api/batch?api.version=1",
                                           "command=" + enc("removeacct?user=cust1")), *B403F)

    T.twin("two plain commands", T.get(bt + cmd("listaccts", "accountsummary?user=cust1")),
           dict(V1, **{"command-0": "listaccts", "command-1": "accountsummary?user=cust1"}),
           function="batch")
    T.twin("command-N reordered",
           T.get(bt + "command-10=" + enc("accountsummary?user=cust2") + "&command-2=listaccts"),
           dict(V1, **{"command-0": "listaccts", "command-1": "accountsummary?user=cust2"}),
           function="batch")
    T.twin("sub-call re-encoded", T.get(bt + cmd("listaccts?search=a%20b%26c")),
           dict(V1, **{"command-0": "listaccts?search=a%20b%26c"}), function="batch")
    T.twin("cpanel and uapi in a batch",
           T.get(bt + cmd(cp + "cpanel_jsonapi_user=cust1", up + "cpanel.user=cust2")),
           dict(V1, **{"command-0": cp + "cpanel_jsonapi_user=cust1",
                       "command-1": up + "cpanel.user=cust2"}), function="batch")
    T.finish()


def test_attack_cpanel(t):
    """cpanel/uapi_cpanel: per-target allow, the target parameters exactly
    once, module and function names checked, the `user` fallback held to
    the cpanel_jsonapi_user constraint."""
    g, T = table(t, "cpanel")
    C = "/json-api/cpanel?api.version=1&"
    mf = "cpanel_jsonapi_module=Email&cpanel_jsonapi_func=listpops"
    U = "/json-api/uapi_cpanel?api.version=1&"
    umf = "cpanel.module=Email&cpanel.function=list_pops"
    rows = [
        # missing or bad module/function names
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_func=listpops", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email", B400),
        (C + "cpanel_jsonapi_user=cust1", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=&cpanel_jsonapi_func=listpops",
         B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email&cpanel_jsonapi_func=", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email%3A%3Ax"
         "&cpanel_jsonapi_func=listpops", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email/../Fileman"
         "&cpanel_jsonapi_func=listpops", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email+&cpanel_jsonapi_func=listpops",
         B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email&cpanel_jsonapi_func=list-pops",
         B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Em%C3%A1il"
         "&cpanel_jsonapi_func=listpops", B400),
        # target parameters twice or with a -N copy
        (C + "cpanel_jsonapi_user=cust1&" + mf + "&cpanel_jsonapi_module=Email", B400),
        (C + "cpanel_jsonapi_user=cust1&" + mf + "&cpanel_jsonapi_module-0=Fileman", B400),
        (C + "cpanel_jsonapi_user=cust1&" + mf + "&cpanel_jsonapi_func-1=addpop", B400),
        (C + "cpanel_jsonapi_user=cust1&" + mf + "&cpanel_jsonapi_user-0=root", B400),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_user=root&" + mf, B400),
        (C + "user=cust1&user-0=root&" + mf, B400),
        (C + "user=cust1&user=root&" + mf, B400),
        (C + "cpanel_jsonapi_module-0=Email&cpanel_jsonapi_func=listpops&user=cust1", B400),
        # targets outside the allow list
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email&cpanel_jsonapi_func=addpop",
         B403F),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Fileman"
         "&cpanel_jsonapi_func=listfiles", B403F),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=email&cpanel_jsonapi_func=listpops",
         B403F),
        (C + "cpanel_jsonapi_user=cust1&cpanel_jsonapi_module=Email&cpanel_jsonapi_func=ListPops",
         B403F),
        # the user
        (C + "cpanel_jsonapi_user=root&" + mf, B403P),
        (C + "cpanel_jsonapi_user=cust1x&" + mf, B403P),
        (C + "cpanel_jsonapi_user=&" + mf, B403P),
        (C + "user=root&" + mf, B403P),
        (C + "user=&" + mf, B403P),
        (C + "user=cust1%0Aroot&" + mf, B403P),
        (C + "cpanel_jsonapi_user=&user=root&" + mf, B403P),
        # uapi_cpanel
        (U + "cpanel.user=cust1&cpanel.function=list_pops", B400),
        (U + "cpanel.user=cust1&cpanel.module=Email", B400),
        (U + "cpanel.user=cust1&cpanel.module=Email&cpanel.function=list_pops%00", B400),
        (U + "cpanel.user=cust1&cpanel.module=Email&cpanel.function=list.pops", B400),
        (U + "cpanel.user=cust1&" + umf + "&cpanel.user-0=root", B400),
        (U + "cpanel.user=cust1&" + umf + "&cpanel.user=root", B400),
        (U + "cpanel.user=cust1&" + umf + "&cpanel.function=delete_pop", B400),
        (U + "cpanel.user=cust1&" + umf + "&cpanel.module-1=Fileman", B400),
        (U + "cpanel.user=cust1&" + umf + "&cpanel%2Emodule=Email", B400),
        (U + "cpanel.user=cust1&cpanel.module=Email&cpanel.function=delete_pop", B403F),
        (U + "cpanel.user=cust1&cpanel.module=Mysql&cpanel.function=list_databases", B403F),
        (U + "cpanel.user=root&" + umf, B403P),
        (U + "cpanel.user=&" + umf, B403P),
        (U + "cpanel.user=cust1+&" + umf, B403P),
    ]
    for target, exp in rows:
        T.attack(target.split("?", 1)[1][14:80], T.get(target), *exp)
    T.attack("bare cpanel", T.get("/json-api/cpanel?api.version=1"), *B400)
    T.attack("support has no cpanel target",
             T.get(C + "cpanel_jsonapi_user=cust1&" + mf, auth="Bearer " + t.key("support")),
             *B403F)
    T.attack("POST body user=root", T.post("/json-api/cpanel?" + mf, "user=root"), *B403P)
    T.attack("POST module in query and body",
             T.post("/json-api/cpanel?" + mf + "&user=cust1", "cpanel_jsonapi_module=Fileman"),
             *B400)

    T.twin("cpanel", T.get(C + "cpanel_jsonapi_user=cust1&" + mf
                           + "&cpanel_jsonapi_apiversion=2"),
           dict(V1, cpanel_jsonapi_user="cust1", cpanel_jsonapi_module="Email",
                cpanel_jsonapi_func="listpops", cpanel_jsonapi_apiversion="2"),
           function="cpanel")
    T.twin("cpanel user fallback", T.get(C + "user=cust2&" + mf),
           dict(V1, user="cust2", cpanel_jsonapi_module="Email", cpanel_jsonapi_func="listpops"),
           function="cpanel")

    def uapi_ok(r, q):
        eq(r.json()["data"]["uapi"]["status"], 1, "data.uapi.status")
    T.twin("uapi_cpanel", T.get(U + "cpanel.user=cust1&" + umf),
           {"api.version": "1", "cpanel.user": "cust1", "cpanel.module": "Email",
            "cpanel.function": "list_pops"}, function="uapi_cpanel", check=uapi_ok)
    T.twin("uapi_cpanel POST", T.post("/json-api/uapi_cpanel", "cpanel.user=cust2&" + umf),
           {"api.version": "1", "cpanel.user": "cust2", "cpanel.module": "Email",
            "cpanel.function": "list_pops"}, method="POST", function="uapi_cpanel",
           check=uapi_ok)
    T.finish()


# ---------------------------------------------------------------- bodies

def test_attack_body(t):
    """Bodies: only form bodies (or none, or octet-stream); other media
    types and any Content-Encoding 415; raw CR/LF/NUL 400; GET with a
    body 400 and closed."""
    g, T = table(t, "body")
    P = "/json-api/listaccts"
    for ct in ("application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
               "multipart/form-data; boundary=x", "text/plain", "text/plain; charset=utf-8",
               "application/x-www-form-urlencodedx", "application/x-www-form-urlencoded2",
               "application/x-www-form-urlencoded,application/json", "application/xml",
               "application/octet-streamx", "x-www-form-urlencoded", "*/*",
               "application/*", "text/html", "application/x-www-form"):
        body = '{"api.version":1}' if "json" in ct else "api.version=1"
        T.attack(f"Content-Type {ct}", T.post(P, body, ctype=ct), *B415, close=True)
    T.attack("multipart body", T.post(P, "--x\r\nContent-Disposition: form-data; "
                                         "name=\"api.version\"\r\n\r\n1\r\n--x--\r\n",
                                      ctype="multipart/form-data; boundary=x"),
             *B415, close=True)
    for ce in ("gzip", "deflate", "identity", "br", "gzip, identity"):
        T.attack(f"Content-Encoding {ce}",
                 T.post(P, "api.version=1", headers=[("Content-Encoding", ce)]), *B415,
                 close=True)
    T.attack("Content-Encoding on an octet-stream body",
             T.post(P, "api.version=1", ctype="application/octet-stream",
                    headers=[("Content-Encoding", "gzip")]), *B415, close=True)
    T.attack("JSON with Expect: 100-continue, body not sent",
             T.head("POST", P, [("Content-Type", "application/json"), ("Expect", "100-continue"),
                                ("Content-Length", "17")]), *B415, close=True)
    T.attack("JSON, chunked", T.chunked(P, T.chunks('{"api.version":1}'),
                                        ctype="application/json"), *B415, close=True)
    # Raw CR, LF, NUL in a form body.
    for raw in ("api.version=1\r\n", "api.version=1\n", "api.version=1\r", "api.version=1\x00",
                "api.version=1&search=a\nb", "api.version=1&search=a\rb",
                "api.version=1&search=a\x00b", "api.version=1\r\n\r\nsearch=x",
                "\napi.version=1"):
        T.attack(f"body {raw!r}", T.post(P, raw), *B400)
    T.attack("raw LF, octet-stream", T.post(P, "api.version=1\n",
                                            ctype="application/octet-stream"), *B400)
    T.attack("raw CR, chunked", T.chunked(P, T.chunks("api.version=1\r", "&search=x")), *B400)
    # Query and body disagree.
    T.attack("same name in query and body", T.post(P + "?search=a", "search=b"), *B400)
    T.attack("user in query and body",
             T.post("/json-api/accountsummary?user=cust1", "user=root"), *B400)
    # A body on GET.
    T.attack("GET with a body", T.get(GOOD, [("Content-Length", "13")]) + b"api.version=1",
             *B400, close=True)
    T.attack("GET with a body that is a request",
             T.get(GOOD, [("Content-Length", str(len(T.smuggled())))]) + T.smuggled(), *B400,
             close=True, smuggle=False)
    T.attack("GET chunked", T.get(GOOD, [("Transfer-Encoding", "chunked")]) + T.chunks("x=1"),
             *B400, close=True)
    T.attack("GET chunked, empty", T.get(GOOD, [("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n",
             *B400, close=True)
    T.attack("GET to a 404 path with a body",
             T.get("/foo", [("Content-Length", "5")]) + b"hello", *B400, close=True)

    T.twin("form", T.post(P, "api.version=1&search=cust1"), dict(V1, search="cust1"),
           method="POST")
    T.twin("form; charset", T.post(P, "api.version=1&search=cust1",
                                   ctype="application/x-www-form-urlencoded; charset=UTF-8"),
           dict(V1, search="cust1"), method="POST")
    T.twin("form, upper case type", T.post(P, "search=cust2",
                                           ctype="APPLICATION/X-WWW-FORM-URLENCODED"),
           dict(V1, search="cust2"), method="POST")
    T.twin("octet-stream", T.post(P, "api.version=1&search=cust1",
                                  ctype="application/octet-stream"),
           dict(V1, search="cust1"), method="POST")
    T.twin("no Content-Type", T.post(P, "api.version=1&search=cust1", ctype=None),
           dict(V1, search="cust1"), method="POST")
    T.twin("query then body", T.post(P + "?api.version=1", "search=cust1"),
           dict(V1, search="cust1"), method="POST")
    T.twin("empty POST", T.post(P, ""), V1, method="POST")
    T.twin("chunked form", T.chunked(P, T.chunks("api.version=1", "&search=cust1")),
           dict(V1, search="cust1"), method="POST")
    T.twin("GET, Content-Length: 0", T.get(GOOD, [("Content-Length", "0")]), V1)
    T.finish()


# ---------------------------------------------------------------- framing

def test_attack_framing(t):
    """Smuggling and framing: 400 and a close; the well-formed request sent
    after each one is never answered nor forwarded."""
    g, T = table(t, "framing")
    P = "/json-api/listaccts"
    body = "api.version=1"
    n = str(len(body))

    def post(headers, data=body, target=P):
        return T.head("POST", target, headers) + data.encode("latin-1")

    ct = ("Content-Type", "application/x-www-form-urlencoded")
    rows = [
        ("CL + TE", post([ct, ("Content-Length", n), ("Transfer-Encoding", "chunked")],
                         T.chunks(body).decode())),
        ("TE + CL", post([ct, ("Transfer-Encoding", "chunked"), ("Content-Length", "0")],
                         T.chunks(body).decode())),
        ("two Content-Lengths", post([ct, ("Content-Length", n), ("Content-Length", n)])),
        ("two different Content-Lengths", post([ct, ("Content-Length", n),
                                                ("Content-Length", "0")])),
        ("Content-Length: +13", post([ct, ("Content-Length", "+" + n)])),
        ("Content-Length: -1", post([ct, ("Content-Length", "-1")])),
        ("Content-Length: 13, 13", post([ct, ("Content-Length", f"{n}, {n}")])),
        ("Content-Length: 13,13", post([ct, ("Content-Length", f"{n},{n}")])),
        ("Content-Length: 1 3", post([ct, ("Content-Length", "1 3")])),
        ("Content-Length: 0x0d", post([ct, ("Content-Length", "0x0d")])),
        ("Content-Length: 13.0", post([ct, ("Content-Length", n + ".0")])),
        ("Content-Length: empty", post([ct, "Content-Length:"])),
        ("Content-Length: 1e1", post([ct, ("Content-Length", "1e1")])),
        ("GET with two Content-Length: 0", T.get(GOOD, [("Content-Length", "0"),
                                                        ("Content-Length", "0")])),
        ("TE chunked, chunked", post([ct, ("Transfer-Encoding", "chunked, chunked")],
                                     T.chunks(body).decode())),
        ("TE gzip, chunked", post([ct, ("Transfer-Encoding", "gzip, chunked")],
                                  T.chunks(body).decode())),
        ("TE chunked, gzip", post([ct, ("Transfer-Encoding", "chunked, gzip")],
                                  T.chunks(body).decode())),
        ("TE chunked;q=1", post([ct, ("Transfer-Encoding", "chunked;q=1")],
                                T.chunks(body).decode())),
        ('TE "chunked"', post([ct, ("Transfer-Encoding", '"chunked"')], T.chunks(body).decode())),
        ("TE identity", post([ct, ("Transfer-Encoding", "identity")])),
        ("TE identity + CL", post([ct, ("Transfer-Encoding", "identity"), ("Content-Length", n)])),
        ("TE gzip", post([ct, ("Transfer-Encoding", "gzip")])),
        ("TE xchunked", post([ct, ("Transfer-Encoding", "xchunked")], T.chunks(body).decode())),
        ("TE chunked twice", post([ct, ("Transfer-Encoding", "chunked"),
                                   ("Transfer-Encoding", "chunked")], T.chunks(body).decode())),
        ("TE empty + chunked", post([ct, "Transfer-Encoding:", ("Transfer-Encoding", "chunked")],
                                    T.chunks(body).decode())),
        ("TE obs-fold", post([ct, "Transfer-Encoding:", " chunked"], T.chunks(body).decode())),
        ("TE obs-fold, tab", post([ct, "Transfer-Encoding: gzip", "\tchunked"],
                                  T.chunks(body).decode())),
        ("TE chunked with a folded second line", post([ct, ("Content-Length", n),
                                                       "Transfer-Encoding: chunked",
                                                       " , identity"])),
        ("obs-fold in X-Foo", post([ct, ("Content-Length", n), "X-Foo: a", " b"])),
        ("obs-fold after Authorization", T.head("GET", GOOD, [" continued"])),
        ("obs-fold without Authorization", T.get(GOOD, ["X-Foo: a", " b"], auth=False)),
        ("obs-fold on a 404 path", T.get("/foo", ["X-Foo: a", " b"])),
        ("obs-fold on a PUT", T.head("PUT", GOOD, ["X-Foo: a", "\tb", "Content-Length: 0"])),
        ("obs-fold on a disallowed function", T.get("/json-api/removeacct?user=cust1",
                                                    ["X-Foo: a", " b"])),
        ("folded after an empty value", post([ct, ("Content-Length", n), "X:",
                                              " Transfer-Encoding: chunked"])),
        ("folded after an empty value, tab", post([ct, ("Content-Length", n), "X:",
                                                   "\tTransfer-Encoding: chunked"])),
        ("space-led first header line", b"GET " + GOOD.encode() + b" HTTP/1.1\r\n"
         b" Host: x\r\n" + T.auth_line + b"\r\n"),
        ("bare LF line endings", T.get(GOOD).replace(b"\r\n", b"\n")),
        ("bare LF after one header", T.get(GOOD, ["X-Foo: a\nX-Bar: b"])),
        ("bare LF ending the head", T.get(GOOD)[:-2] + b"\n"),
        ("bare LF after the request line", T.get(GOOD).replace(b"HTTP/1.1\r\n", b"HTTP/1.1\n")),
        ("bare CR smuggling TE", post([ct, ("Content-Length", n),
                                       "X: a\rTransfer-Encoding: chunked"])),
        ("bare CR at the end of a value", T.get(GOOD, ["X-Foo: a\r"])),
        ("bare CR line endings", T.get(GOOD).replace(b"\r\n", b"\r")),
        ("NUL in a value", T.get(GOOD, ["X-Foo: a\x00b"])),
        ("NUL in Authorization", T.get(GOOD, auth="Bearer \x00" + t.key("billing"))),
        ("SOH in a value", T.get(GOOD, ["X-Foo: a\x01b"])),
        ("VT in a value", T.get(GOOD, ["X-Foo: a\x0bb"])),
        ("FF in a value", T.get(GOOD, ["X-Foo: a\x0cb"])),
        ("ESC in a value", T.get(GOOD, ["X-Foo: \x1b[2J"])),
        ("DEL in a value", T.get(GOOD, ["X-Foo: a\x7fb"])),
        ("control character in the target", T.get("/json-api/listaccts?api.version=1&x=\x01")),
        ("space before the colon", T.get(GOOD, ["X-Foo : bar"])),
        ("TE with a space before the colon", post([ct, ("Content-Length", n),
                                                   "Transfer-Encoding : chunked"])),
        ("Host with a space before the colon", T.get(GOOD, ["Host : x"], host=False)),
        ("tab before the colon", T.get(GOOD, ["X-Foo\t: bar"])),
        ("empty header name", T.get(GOOD, [": x"])),
        ("space in a header name", T.get(GOOD, ["X Foo: bar"])),
        ("non-token header name", T.get(GOOD, ["X(Foo): bar"])),
        ("slash in a header name", T.get(GOOD, ["X/Foo: bar"])),
        ("non-ASCII header name", T.get(GOOD, ["X-F\xe9o: bar"])),
        ("header line without a colon", T.get(GOOD, ["X-Foo"])),
        ("missing Host", T.get(GOOD, host=False)),
        ("missing Host, HTTP/1.0", T.get(GOOD, host=False, version="HTTP/1.0")),
        ("two Hosts", T.get(GOOD, [("Host", "127.0.0.1")])),
        ("two Hosts, same value", T.get(GOOD, [("Host", T.host.decode())])),
        ("two Hosts, HTTP/1.0", T.get(GOOD, [("Host", "other")], version="HTTP/1.0")),
        ("Upgrade: h2c", T.get(GOOD, [("Connection", "Upgrade, HTTP2-Settings"),
                                      ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")])),
        ("Upgrade: websocket", T.get(GOOD, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                            ("Sec-WebSocket-Version", "13")])),
        ("Upgrade without Connection", T.get(GOOD, [("Upgrade", "h2c")])),
        ("upgrade, lower case", T.get(GOOD, [("upgrade", "websocket")])),
        ("HTTP/1.2", T.get(GOOD, version="HTTP/1.2")),
        ("HTTP/2.0", T.get(GOOD, version="HTTP/2.0")),
        ("HTTP/2", T.get(GOOD, version="HTTP/2")),
        ("HTTP/3.0", T.get(GOOD, version="HTTP/3.0")),
        ("HTTP/0.9", T.get(GOOD, version="HTTP/0.9")),
        ("HTTP/1.10", T.get(GOOD, version="HTTP/1.10")),
        ("HTTP/01.1", T.get(GOOD, version="HTTP/01.1")),
        ("http/1.1", T.get(GOOD, version="http/1.1")),
        ("HTTP/1.1 trailing space", T.get(GOOD, version="HTTP/1.1 ")),
        ("tab after the method", T.get(GOOD).replace(b"GET ", b"GET\t", 1)),
        ("HTTP/0.9 request line", b"GET " + GOOD.encode() + b"\r\n\r\n"),
        ("HTTP/0.9 request line, LF", b"GET " + GOOD.encode() + b"\n"),
        ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        # chunked framing
        ("chunk extension > 1024", T.chunked(P, b"d;" + b"x" * 1100 + b"\r\n" + body.encode()
                                             + b"\r\n0\r\n\r\n")),
        ("many chunk extensions", T.chunked(P, b"d" + b";a=b" * 300 + b"\r\n" + body.encode()
                                            + b"\r\n0\r\n\r\n")),
        ("quoted chunk extension > 1024", T.chunked(P, b'd;a="' + b"y" * 1100 + b'"\r\n'
                                                    + body.encode() + b"\r\n0\r\n\r\n")),
        ("last-chunk extension > 1024", T.chunked(P, T.chunks(body, last=b"0;" + b"x" * 1100
                                                              + b"\r\n\r\n"))),
        ("2000 leading zeros", T.chunked(P, b"0" * 2000 + b"d\r\n" + body.encode()
                                         + b"\r\n0\r\n\r\n")),
        ("2000 leading zeros in the last chunk", T.chunked(P, T.chunks(body, last=b"0" * 2000
                                                                       + b"\r\n\r\n"))),
        ("trailer field", T.chunked(P, T.chunks(body, last=b"0\r\nX-Trailer: 1\r\n\r\n"))),
        ("trailer Content-Length", T.chunked(P, T.chunks(body, last=b"0\r\nContent-Length: 5"
                                                               b"\r\n\r\n"))),
        ("trailer Authorization", T.chunked(P, T.chunks(body, last=b"0\r\nAuthorization: x"
                                                              b"\r\n\r\n"))),
        ("chunk size zz", T.chunked(P, b"zz\r\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk size -d", T.chunked(P, b"-d\r\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk size +d", T.chunked(P, b"+d\r\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk size 0x0d", T.chunked(P, b"0x0d\r\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk size with a leading space", T.chunked(P, b" d\r\n" + body.encode()
                                                      + b"\r\n0\r\n\r\n")),
        ("chunk size overflow", T.chunked(P, b"f" * 17 + b"\r\n" + body.encode()
                                          + b"\r\n0\r\n\r\n")),
        ("empty chunk size", T.chunked(P, b"\r\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk data without CRLF", T.chunked(P, b"d\r\n" + body.encode() + b"XX0\r\n\r\n")),
        ("chunk data with a bare LF", T.chunked(P, b"d\r\n" + body.encode() + b"\n0\r\n\r\n")),
        ("chunk size with a bare LF", T.chunked(P, b"d\n" + body.encode() + b"\r\n0\r\n\r\n")),
        ("chunk shorter than its size", T.chunked(P, b"20\r\n" + body.encode()
                                                  + b"\r\n0\r\n\r\n")),
    ]
    for name, raw in rows:
        T.attack(name, raw, *B400, close=True)
    T.attack("absolute-form POST with a request as body",
             T.head("POST", "http://127.0.0.1/json-api/listaccts",
                    [("Content-Length", str(len(T.smuggled())))]) + T.smuggled(), *B400,
             close=True, smuggle=False)
    # Framing errors come before the target and method checks.
    T.attack("missing Host on a 404 path", T.get("/foo", host=False), *B400, close=True)
    T.attack("CL+TE on PUT", T.head("PUT", P, [("Content-Length", "5"),
                                               ("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n",
             *B400, close=True)

    T.twin("Content-Length", post([ct, ("Content-Length", n)]), V1, method="POST")
    T.twin("Content-Length with leading zeros", post([ct, ("Content-Length", "00" + n)]), V1,
           method="POST")
    T.twin("chunked", T.chunked(P, T.chunks("api.version=1&", "search=cust1")),
           dict(V1, search="cust1"), method="POST")
    T.twin("chunked, upper-case hex, short extension",
           T.chunked(P, b"0D;a=b\r\n" + body.encode() + b"\r\n0;x\r\n\r\n"), V1, method="POST")
    T.twin("chunked, a few leading zeros", T.chunked(P, b"000d\r\n" + body.encode()
                                                     + b"\r\n00\r\n\r\n"), V1, method="POST")
    T.twin("HTAB in a value", T.get(GOOD, ["X-Foo: a\tb"]), V1)
    T.twin("obs-text in a value", T.get(GOOD, ["X-Foo: caf\xe9"]), V1)
    T.twin("HTTP/1.0", T.get(GOOD, version="HTTP/1.0"), V1)
    T.twin("Connection: keep-alive", T.get(GOOD, [("Connection", "keep-alive")]), V1)
    T.finish()


# ---------------------------------------------------------------- limits

LIMITS = {"max_header_bytes": 1024, "max_body_bytes": 4096, "header_timeout_ms": 1000,
          "idle_timeout_ms": 1000}


def test_attack_oversized(t):
    """Oversized input with small limits: 431 for the head, 413 for the
    body (a Content-Length over the limit is answered without the body)."""
    g, T = table(t, "oversized", dict(LIMITS))
    P = "/json-api/listaccts"
    T.attack("one 2000-byte header", T.get(GOOD, [("X-Pad", "a" * 2000)]), *B431, close=True)
    T.attack("a 1500-byte header name", T.get(GOOD, ["X" * 1500 + ": 1"]), *B431, close=True)
    T.attack("1500-byte target", T.get(GOOD + "&search=" + "a" * 1500), *B431, close=True)
    T.attack("1500-byte Authorization", T.get(GOOD, auth="Bearer " + "k" * 1500), *B431,
             close=True)
    T.attack("many small headers over the byte limit",
             T.get(GOOD, [f"X-{i}: {'v' * 20}" for i in range(60)]), *B431, close=True)
    T.attack("129 tiny headers", T.get(GOOD, [f"{i}:" for i in range(129)]), *B431, close=True)
    T.attack("1000 tiny headers", T.get(GOOD, [f"{i}:" for i in range(1000)]), *B431,
             close=True)
    T.attack("endless head", T.get(GOOD)[:-2] + b"X: y\r\n" * 2000, *B431, close=True)
    for cl in ("4097", "1048576", "1000000000000"):
        T.attack(f"Content-Length {cl}, no body sent",
                 T.head("POST", P, [("Content-Length", cl)]), *B413, close=True)
    T.attack("Content-Length 4097 with its body",
             T.post(P, "api.version=1&search=" + "a" * (4097 - 21)), *B413, close=True)
    T.attack("chunked body over the limit",
             T.chunked(P, T.chunks(*["a" * 1000] * 5)), *B413, close=True)
    T.attack("chunked body over the limit in one chunk",
             T.chunked(P, b"2000\r\n" + b"a" * 0x2000 + b"\r\n0\r\n\r\n"), *B413, close=True)
    T.attack("chunked, huge chunk size", T.chunked(P, b"fffffff\r\n" + b"a" * 5000), *B413,
             close=True)
    # Size refusals come before the target and method checks.
    T.attack("Content-Length over the limit on PUT",
             T.head("PUT", GOOD, [("Content-Length", "9999")]), *B413, close=True)
    T.attack("Content-Length over the limit on a bad path",
             T.head("POST", "/json-api/../x", [("Content-Length", "9999")]), *B413, close=True)

    T.twin("head just under the limit", T.get(GOOD, [("X-Pad", "a" * 700)]), V1)
    body = "api.version=1&search=" + "a" * (4096 - 21)
    T.twin("body of exactly max_body_bytes", T.post(P, body), dict(V1, search="a" * 4075),
           method="POST")
    T.twin("chunked body of exactly max_body_bytes", T.chunked(P, T.chunks(body[:2000],
                                                                           body[2000:])),
           dict(V1, search="a" * 4075), method="POST")
    T.finish()


def test_attack_slow(t):
    """Slow clients with header_timeout_ms and idle_timeout_ms of 1000: a
    slowloris head, a stalled body and a stalled second request get 408
    with a deny record, while other clients are served meanwhile."""
    g, T = table(t, "slow", dict(LIMITS))
    slow = t.session.slow
    head = T.get(GOOD)
    stalled = {
        "slowloris (a byte every 200 ms)": None,
        "slowloris, second connection": None,
        "head without its final CRLF": head[:-2],
        "body stops half-way": T.head("POST", "/json-api/listaccts",
                                      [("Content-Length", "100")]) + b"api.version=1&se",
        "chunked body stops mid-chunk": T.chunked("/json-api/listaccts", b"40\r\napi.vers"),
        "chunked body stops before the last chunk": T.chunked("/json-api/listaccts",
                                                              T.chunks("api.version=1",
                                                                       last=b"")),
    }
    socks = {}
    t0 = time.monotonic()
    for name, data in stalled.items():
        s = socket.create_connection(("127.0.0.1", g.port), timeout=5 * slow)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if data:
            s.sendall(data)
        socks[name] = s
    # A keep-alive connection whose second request stalls.
    ka = socket.create_connection(("127.0.0.1", g.port), timeout=5 * slow)
    ka.sendall(head)
    r = read_response(ka)
    T.twins += 1
    try:
        eq(r.status, 200, "first request on the keep-alive connection")
    except AssertionError as e:
        T.fail("keep-alive first request", e)
    t.standin.reset()
    ka.sendall(head[:20])
    socks["second request on a kept-alive connection stalls"] = ka

    drip = {n: 0 for n in stalled if stalled[n] is None}
    answers = {}
    served = 0
    deadline = time.monotonic() + 6 * slow
    while len(answers) < len(socks) and time.monotonic() < deadline:
        waiting = [s for n, s in socks.items() if n not in answers]
        rd, _, _ = select.select(waiting, [], [], 0.2)
        for n, s in socks.items():
            if s in rd and n not in answers:
                try:
                    answers[n] = (read_response(s), time.monotonic() - t0, s)
                except (AssertionError, OSError) as e:
                    answers[n] = (e, time.monotonic() - t0, s)
        for n in drip:
            if n not in answers and drip[n] < len(head):
                try:
                    socks[n].send(head[drip[n]:drip[n] + 1])
                    drip[n] += 1
                except OSError:
                    pass
        # Other clients are served while the slow ones hold connections.
        if time.monotonic() - t0 < 0.9 and served < 3:
            T.twin(f"served during slowloris ({served + 1})", T.get(GOOD), V1)
            served += 1
    for n, s in socks.items():
        T.attacks += 1
        try:
            if n not in answers:
                raise AssertionError("no answer within 6 s")
            r, at, s = answers[n]
            if isinstance(r, Exception):
                raise r
            rid = check_error(r, *B408)
            assert 0.9 <= at <= 3.0 * slow, f"answered after {at:.2f} s (limit 1 s)"
            eq(T.rest_until_eof(s, bytearray(), 2 * slow)[:100], b"",
               "bytes after the 408 (connection closed)")
            check_deny(T.g, rid, *B408)
        except (AssertionError, OSError) as e:
            T.fail(n, e)
        finally:
            s.close()
    # Under valgrind the one-second window is gone before a call fits in.
    if not t.session.wrapper:
        eq(served, 3, "requests served while slow clients held connections")
    try:
        eq(t.standin.requests(), [], "requests WHM received from slow clients")
    except AssertionError as e:
        T.fail("slow clients reached WHM", e)
    T.finish()


# ---------------------------------------------------------------- auth

def test_attack_auth(t):
    """Authentication edge cases: two Authorization fields 400; anything
    but a valid key for the named client 401; too long 431."""
    g, T = table(t, "auth")
    key = t.key("billing")
    other = t.key("support")
    T.attack("two Authorization fields", T.get(GOOD, [("Authorization", f"Bearer {key}")]),
             *B400)
    T.attack("two Authorization fields, one bad", T.get(GOOD, [("Authorization", "Bearer x")]),
             *B400)
    T.attack("two Authorization fields, one empty", T.get(GOOD, ["Authorization:"]), *B400)
    T.attack("two Authorization fields, other case",
             T.get(GOOD, [("authorization", f"whm billing:{key}")]), *B400)
    for auth in ("Bearer", "Bearer ", "bearer  ", "Bearer" + key, "Bearer " + key + "x",
                 "Bearer " + key[:-1], "Bearer " + key + " " + key, "Bearer " + key.upper(),
                 "Bearer billing:" + key, f"whm support:{key}", f"whm billing:{other}",
                 f"whm stranger:{key}", f"whm :{key}", f"whm billing:", "whm billing",
                 f"whm billing {key}", f"whm billing:{key}:x", f"whm billing:{key}x",
                 f"whm Billing:{key}", f"whm billing%3A{key}",
                 f"whm billing:{t.session.token}", "whm root:" + t.session.token,
                 f"Basic {key}", "Basic YmlsbGluZzp4", f"Token {key}", f"{key}",
                 "Bearer " + "A" * 10000, "whm " + "b" * 5000 + ":" + key,
                 "Bearer " + key + "\t" + "x" * 8000, "Negotiate " + "Y" * 12000):
        T.attack(f"Authorization {auth[:40]!r}", T.get(GOOD, auth=auth), *B401)
    T.attack("no Authorization", T.get(GOOD, auth=False), *B401)
    T.attack("Authorization: empty", T.get(GOOD, ["Authorization:"], auth=False), *B401)
    T.attack("key in the query", T.get(GOOD + "&api_token=" + key, auth=False), *B401)
    T.attack("key in a cookie", T.get(GOOD, [("Cookie", "whostmgrsession=" + key)], auth=False),
             *B401)
    T.attack("Authorization over max_header_bytes", T.get(GOOD, auth="Bearer " + "A" * 17000),
             *B431, close=True)
    r = T.attack("401 reason", T.get(GOOD, auth="Bearer nope"), *B401)
    if r is not None and r.header("WWW-Authenticate") != 'Bearer realm="whmgate"':
        T.fail("WWW-Authenticate", r.header("WWW-Authenticate"))

    T.twin("Bearer", T.get(GOOD), V1)
    T.twin("whm scheme", T.get(GOOD, auth=f"whm billing:{key}"), V1)
    T.twin("WHM scheme, upper case", T.get(GOOD, auth=f"WHM billing:{key}"), V1)
    T.twin("BEARER", T.get(GOOD, auth=f"BEARER {key}"), V1)
    T.twin("support's own key", T.get(GOOD, auth=f"whm support:{other}"), V1)
    T.finish()


# ---------------------------------------------------------------- pipelining

def test_attack_pipelining(t):
    """Pipelining: after a refusal without a body, a keep-alive connection
    answers the next request in order; after a refusal with an unread body
    (or a framing error, or Connection: close) it closes and the next
    request is never answered nor forwarded."""
    g, T = table(t, "pipelining")
    key = t.key("billing")
    good = T.get(GOOD + "&search=cust1")
    good_post = T.post("/json-api/listaccts", "api.version=1&search=cust2")

    CODES = {st: (st, code) for st, code in (B400, B401, B403F, B404, B405, B413, B415)}

    def run(name, parts, want, closed, forwarded):
        """parts are sent in one packet; want: expected statuses in order
        (ints; 200 = forwarded). closed: the connection must close after
        the answers in want, with nothing more."""
        s = T.connect()
        try:
            s.sendall(b"".join(parts))
            buf = bytearray()
            for i, st in enumerate(want):
                T.attacks += st != 200
                T.twins += st == 200
                r = read_response(s, buf)
                if st == 200:
                    eq(r.status, 200, f"answer {i + 1} status ({r.body[:120]!r})")
                    check_forwarded(T.g, r.header("X-Request-Id"))
                else:
                    check_deny(T.g, check_error(r, *CODES[st]), *CODES[st])
            if closed:
                eq(T.rest_until_eof(s, buf, 3 * t.session.slow)[:200], b"",
                   "bytes after the last answer")
            else:
                s.settimeout(0.3)
                try:
                    extra = s.recv(100)
                except socket.timeout:
                    extra = b""
                eq(extra, b"", "bytes after the last answer")
            reqs = t.standin.requests()
            eq([q["params"].get("search") for q in reqs], forwarded, "requests WHM received")
        except (AssertionError, OSError, ValueError) as e:
            T.fail(name, e)
        finally:
            s.close()
            t.standin.reset()

    run("403 then good", [T.get("/json-api/removeacct?user=cust1"), good], [403, 200],
        False, ["cust1"])
    run("404 then good", [T.get("/foo"), good], [404, 200], False, ["cust1"])
    run("400 path then good", [T.get("/json-api/../listaccts"), good], [400, 200], False,
        ["cust1"])
    run("405 without body then good", [T.head("PUT", GOOD, [("Content-Length", "0")]), good],
        [405, 200], False, ["cust1"])
    run("401 then good", [T.get(GOOD, auth="Bearer nope"), good], [401, 200], False, ["cust1"])
    run("400 parameters then good", [T.get(GOOD + "&search=%zz"), good], [400, 200], False,
        ["cust1"])
    run("400 api.version then good POST", [T.get("/json-api/listaccts?api.version=0"),
                                           good_post], [400, 200], False, ["cust2"])
    run("three refusals then good", [T.get("/foo"), T.get("/json-api/removeacct"),
                                     T.get(GOOD + "&x=%00"), good],
        [404, 403, 400, 200], False, ["cust1"])
    run("good, refusal, good", [good, T.get("/json-api/removeacct"), good_post],
        [200, 403, 200], False, ["cust1", "cust2"])
    # Refused before the body was read: closed, the rest never answered.
    run("415 with an unread body then good",
        [T.post("/json-api/listaccts", '{"api.version":1}', ctype="application/json"), good],
        [415], True, [])
    run("405 with an unread body then good",
        [T.head("PUT", GOOD, [("Content-Length", "13")]) + b"api.version=1", good],
        [405], True, [])
    run("404 with an unread body then good",
        [T.post("/foo", "api.version=1"), good], [404], True, [])
    run("401 with an unread body then good",
        [T.post("/json-api/listaccts", "api.version=1", auth="Bearer nope"), good],
        [401], True, [])
    run("400 path with an unread chunked body then good",
        [T.chunked("/json-api/ListAccts", T.chunks("api.version=1")), good], [400], True, [])
    run("413 then good", [T.head("POST", "/json-api/listaccts",
                                 [("Content-Length", "2000000")]), good], [413], True, [])
    run("body that is a request, after 415",
        [T.post("/json-api/listaccts", good.decode("latin-1"), ctype="text/plain")],
        [415], True, [])
    run("framing error then good", [T.get(GOOD, [("Host", "x")]), good], [400], True, [])
    run("refusal with Connection: close then good",
        [T.get("/json-api/removeacct", [("Connection", "close")]), good], [403], True, [])
    run("HTTP/1.0 refusal then good", [T.get("/json-api/removeacct", version="HTTP/1.0"), good],
        [403], True, [])
    run("good with Connection: close then good",
        [T.get(GOOD + "&search=cust1", [("Connection", "close")]), good_post], [200], True,
        ["cust1"])
    T.count_check = lambda: None      # the counts are checked per sequence above
    T.finish()


# ---------------------------------------------------------------- order

def test_attack_order(t):
    """SPEC's order of refusals: framing -> target -> method -> 401 ->
    415 -> parameters 400 -> policy 403."""
    g, T = table(t, "order")
    P = "/json-api/listaccts"
    rows = [
        ("framing before target", T.get("/foo", [("Host", "x")]), B400, True),
        ("framing before 413? (two CLs, one too large)",
         T.head("POST", P, [("Content-Length", "5"), ("Content-Length", "9999999")]), B400, True),
        ("target before method", T.head("DELETE", "/json-api/LISTACCTS",
                                        [("Content-Length", "0")]), B400, False),
        ("404 before method", T.head("PATCH", "/nothing", [("Content-Length", "0")]), B404, False),
        ("target before auth", T.get("/json-api/listaccts/", auth=False), B400, False),
        ("404 before auth", T.get("/foo", auth=False), B404, False),
        ("method before auth", T.head("PUT", GOOD, [("Content-Length", "0")], auth=False), B405,
         False),
        ("auth before 415", T.post(P, "{}", ctype="application/json", auth="Bearer x"), B401,
         True),
        ("auth before parameters", T.get(GOOD + "&x=%zz", auth=False), B401, False),
        ("auth before policy", T.get("/json-api/removeacct", auth=False), B401, False),
        ("415 before parameters", T.post(P + "?x=%zz", "{}", ctype="application/json"), B415,
         True),
        ("415 before policy", T.post("/json-api/removeacct", "{}", ctype="text/plain"), B415,
         True),
        ("parameters before policy (escape)", T.get("/json-api/removeacct?user=%zz"), B400,
         False),
        ("parameters before policy (duplicate)", T.get("/json-api/removeacct?user=a&user=b"),
         B400, False),
        ("parameters before policy (api.version)", T.get("/json-api/removeacct?api.version=2"),
         B400, False),
        ("parameters before policy (batch list form)",
         T.get("/json-api/batch?command-1=removeacct&command-01=removeacct"), B400, False),
        ("parameters before parameter policy",
         T.get("/json-api/accountsummary?user=root&user=root"), B400, False),
    ]
    for name, raw, exp, close in rows:
        T.attack(name, raw, *exp, close=close)
    T.finish()


# ---------------------------------------------------------------- bounds (issue 16)

def test_attack_bounds(t):
    """Parameter and sub-call counts over limits.max_params and
    limits.max_batch_calls: 413 before anything is decoded, whatever else
    is wrong with the parameters (but after 401 and 415); at the limits,
    forwarded exactly."""
    g, T = table(t, "bounds", {"max_params": 16, "max_batch_calls": 4})
    P = "/json-api/listaccts"
    bt = "/json-api/batch?"

    def many(n, prefix="p"):
        return "&".join(f"{prefix}{i}=v" for i in range(n))

    rows = [
        ("17 in the query", T.get(P + "?" + many(17)), B413),
        ("17 with api.version", T.get(P + "?api.version=1&" + many(16)), B413),
        ("8 in the query, 9 in the body", T.post(P + "?" + many(8, "q"), many(9, "b")), B413),
        ("17 in the body", T.post(P, many(17)), B413),
        ("17 valueless", T.get(P + "?" + "&".join(f"f{i}" for i in range(17))), B413),
        ("over, with a bad escape first", T.get(P + "?x=%zz&" + many(16)), B413),
        ("over, with a duplicate", T.get(P + "?" + many(16) + "&p0=v"), B413),
        ("over, with api.version=0", T.get(P + "?api.version=0&" + many(16)), B413),
        ("over, on a function not allowed", T.get("/json-api/removeacct?" + many(17)), B413),
        ("over, on cpanel without a module", T.get("/json-api/cpanel?" + many(17)), B413),
        ("5 commands", T.get(bt + "&".join(["command=listaccts"] * 5)), B413),
        ("5 command-N", T.get(bt + "&".join(f"command-{i}=listaccts" for i in range(5))),
         B413),
        ("5 commands, query and body", T.post(bt + "command=listaccts&command=listaccts",
                                              "&".join(["command=listaccts"] * 3)), B413),
        ("5 commands mixed forms", T.get(bt + "command=a&command=b&command-1=c&command-2=d"
                                         "&command-3=e"), B413),
        ("sub-call arguments over",
         T.get(bt + "command=" + enc("listaccts?" + many(14)) + "&command=listaccts&x=1")),
        ("sub-call arguments over, bad escape in the first sub-call",
         T.get(bt + "command=" + enc("listaccts?x=%zz") + "&command=" +
               enc("listaccts?" + many(14)))),
        ("sub-call arguments over, nested batch",
         T.get(bt + "command=" + enc("batch?" + many(16)))),
        ("5 commands, disallowed sub-call", T.get(bt + "&".join(["command=removeacct"] * 5)),
         B413),
    ]
    for row in rows:
        name, raw = row[0], row[1]
        exp = row[2] if len(row) > 2 else B413
        T.attack(name, raw, *exp)
    # The count is a parameters step: authentication and media type first.
    T.attack("401 before the count", T.get(P + "?" + many(17), auth=False), *B401)
    T.attack("415 before the count", T.post(P, many(17), ctype="application/json"), *B415,
             close=True)
    # An empty piece is not a parameter.
    T.twin("16 with empty pieces", T.get(P + "?&&" + many(15) + "&&&api.version=1&"),
           dict({f"p{i}": "v" for i in range(15)}, **V1))
    T.twin("16 across query and body", T.post(P + "?api.version=1&" + many(7, "q"),
                                              many(8, "b")),
           dict(V1, **{f"q{i}": "v" for i in range(7)}, **{f"b{i}": "v" for i in range(8)}),
           method="POST")
    T.twin("4 commands, 16 in all",
           T.get(bt + "api.version=1&command=" + enc("listaccts?" + many(11)) +
                 "&command=listaccts&command=listaccts&command=listaccts"),
           dict(V1, **{"command-0": "listaccts?" + many(11), "command-1": "listaccts",
                       "command-2": "listaccts", "command-3": "listaccts"}),
           function="batch")
    T.finish()


def test_attack_xmlapi(t):
    """cpanel_xmlapi_* (WHM's other spelling of the cpanel selectors, issue
    16 item 6): a 400 wherever it appears, since whmgate checks and
    forwards only cpanel_jsonapi_*."""
    g, T = table(t, "xmlapi")
    C = "/json-api/cpanel?api.version=1&cpanel_jsonapi_module=Email&" \
        "cpanel_jsonapi_func=listpops&cpanel_jsonapi_user=cust1"
    U = "/json-api/uapi_cpanel?api.version=1&cpanel.module=Email&" \
        "cpanel.function=list_pops&cpanel.user=cust1"
    cp = "cpanel?cpanel_jsonapi_module=Email&cpanel_jsonapi_func=listpops&" \
         "cpanel_jsonapi_user=cust1"
    bt = "/json-api/batch?api.version=1&"
    for name in ("user", "module", "func", "apiversion"):
        x = f"cpanel_xmlapi_{name}"
        T.attack(f"cpanel + {x}", T.get(C + f"&{x}=root"), *B400)
        T.attack(f"cpanel + {x}-1", T.get(C + f"&{x}-1=root"), *B400)
        T.attack(f"cpanel + {x.upper()}", T.get(C + f"&{x.upper()}=root"), *B400)
        T.attack(f"cpanel + {x} escaped", T.get(C + "&" + x.replace("_", "%5F") + "=root"),
                 *B400)
        T.attack(f"cpanel + {x} in the body", T.post(C, f"{x}=root"), *B400)
        T.attack(f"uapi_cpanel + {x}", T.get(U + f"&{x}=root"), *B400)
        T.attack(f"listaccts + {x}", T.get(GOOD + f"&{x}=root"), *B400)
        T.attack(f"batch sub-call cpanel + {x}",
                 T.get(bt + "command=" + enc(cp + f"&{x}=root")), *B400)
        T.attack(f"batch second sub-call + {x}",
                 T.get(bt + "command=listaccts&command=" + enc(f"listaccts?{x}=root")), *B400)
        T.attack(f"batch outer + {x}", T.get(bt + f"command=listaccts&{x}=root"), *B400)
    T.attack("xmlapi alone, no jsonapi",
             T.get("/json-api/cpanel?cpanel_xmlapi_module=Email&cpanel_xmlapi_func=listpops"
                   "&cpanel_xmlapi_user=cust1"), *B400)
    # Before the policy: a disallowed target with the xmlapi user is a 400.
    T.attack("before policy", T.get("/json-api/cpanel?cpanel_jsonapi_module=Email&"
                                    "cpanel_jsonapi_func=addpop&cpanel_xmlapi_user=root"),
             *B400)
    T.twin("cpanel without xmlapi", T.get(C),
           {"api.version": "1", "cpanel_jsonapi_module": "Email",
            "cpanel_jsonapi_func": "listpops", "cpanel_jsonapi_user": "cust1"},
           function="cpanel")
    T.twin("batch cpanel without xmlapi", T.get(bt + "command=" + enc(cp)),
           dict(V1, **{"command-0": cp}), function="batch")
    T.finish()


# ---------------------------------------------------------------- round 2

def test_attack_round2(t):
    """The classes of the second outside attack (issue "Hostile input,
    round 2") that the tables above do not hold: deep pipelining answered
    in order, a key percent-encoded in a refused path, a password in a
    cPanel API 1 call's arg-N, U+2028 in a value, a body trickled under
    the idle timeout. (The slow reader, the long last line and batch
    amplification have their own tests: test_request_path.py,
    test_audit_bounds.py, test_bounds.py.)"""
    limits = dict(LIMITS, idle_timeout_ms=1000, body_timeout_ms=1500)
    g, T = table(t, "round2", limits)
    key = t.key("billing")

    def send_one(raw):
        c = T.connect()
        try:
            c.sendall(raw)
            return read_response(c)
        finally:
            c.close()

    # 3000 pipelined refusals in one write: every one answered, in order.
    T.attacks += 1
    s = T.connect()
    try:
        data = b"".join(T.get(f"/p{i}") for i in range(3000))
        sender = threading.Thread(target=s.sendall, args=(data,))
        sender.start()
        buf, ids = bytearray(), []
        for i in range(3000):
            r = read_response(s, buf)
            eq(r.status, 404, f"pipelined answer {i + 1}")
            ids.append(r.header("X-Request-Id"))
        sender.join()
        g.wait_audit(lambda rs: sum(x["type"] == "deny" for x in rs) >= 3000,
                     timeout=20 * t.session.slow, what="3000 deny records")
        paths = {x["id"]: x["http"]["path"] for x in g.audit() if x["type"] == "deny"}
        eq([paths.get(i) for i in ids[:5] + ids[-5:]],
           [f"/p{i}" for i in list(range(5)) + list(range(2995, 3000))],
           "deny records in the order of the answers")
    except (AssertionError, OSError) as e:
        T.fail("3000 pipelined refusals", e)
    finally:
        s.close()

    # The key, percent-encoded, in a refused path: 400 and not in the trail.
    T.attack("key percent-encoded in the path",
             T.get("/json-api/%77" + key[1:]), *B400)

    # A cPanel API 1 call's positional arguments are recorded redacted.
    secret = "ApiOnePassw0rd"
    r = send_one(T.get("/json-api/cpanel?api.version=1&cpanel_jsonapi_module=Email"
                         "&cpanel_jsonapi_func=listpops&cpanel_jsonapi_user=cust1"
                         f"&cpanel_jsonapi_apiversion=1&arg-0=box&arg-1={secret}"))
    T.twins += 1
    # U+2028 in a value: escaped in the trail, never raw.
    r2 = send_one(T.get(GOOD + "&search=a%E2%80%A8b%E2%80%A9c"))
    T.twins += 1
    try:
        eq((r.status, r2.status), (200, 200), "the API 1 call and the U+2028 call")
        g.wait_audit(lambda rs: any(x.get("id") == r2.header("X-Request-Id") and
                                    x["type"] == "response" for x in rs),
                     what="the U+2028 call's response record")
        with open(g.audit_path, "rb") as f:
            trail = f.read()
        for what, needle in (("the key", key[5:25].encode()), ("the API 1 password", secret.encode()),
                             ("a raw U+2028", "\u2028".encode()), ("a raw U+2029", "\u2029".encode())):
            assert needle not in trail, f"{what} in the audit trail"
    except (AssertionError, OSError) as e:
        T.fail("redaction and line separators in the trail", e)

    # A body trickled a byte at a time, each pause under idle_timeout_ms:
    # cut at body_timeout_ms with 408.
    T.attacks += 1
    s = T.connect()
    try:
        s.sendall(T.head("POST", "/json-api/listaccts", [("Content-Length", "1000")]))
        r = read_while_trickling(s)
        check_deny(g, check_error(r, *B408), *B408)
    except (AssertionError, OSError) as e:
        T.fail("body trickled under the idle timeout", e)
    finally:
        s.close()
    T.finish()
