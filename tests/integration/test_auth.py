"""Client authentication and source checks (SPEC section 3)."""
from lib import check_deny, check_error, check_forwarded, eq, header

REALM = 'Bearer realm="whmgate"'


def test_whm_scheme_and_wrong_client_name(t):
    """2. `whm client:key` in any case works as well as Bearer in any case;
    a valid key under another client's name is 401."""
    g = t.gate()
    key = t.key("billing")
    good = [f"whm billing:{key}", f"WHM billing:{key}", f"wHm billing:{key}",
            f"Bearer {key}", f"bearer {key}", f"BEARER {key}"]
    for auth in good:
        r = g.curl("/json-api/listaccts?api.version=1", auth=auth)
        eq(r.status, 200, f"status for scheme {auth.split()[0]!r} ({r.body[:160]!r})")
        req, _ = check_forwarded(g, r.header("X-Request-Id"))
        eq(req["client"]["id"], "billing", "client.id")
        eq(req["client"]["auth"], "whm" if auth[0] in "wW" else "bearer", "client.auth")
    reqs = t.standin.requests()
    eq(len(reqs), len(good), "requests WHM received")
    for q in reqs:
        eq(header(q, "Authorization"), [f"whm root:{t.session.token}"],
           "Authorization WHM received")

    # billing's key presented as support's, or as a client that does not exist.
    for auth in (f"whm support:{key}", f"whm nosuch:{key}", f"whm :{key}"):
        r = g.curl("/json-api/listaccts?api.version=1", auth=auth)
        rid = check_error(r, 401, "unauthenticated")
        eq(r.header("WWW-Authenticate"), REALM, "WWW-Authenticate")
        d = check_deny(g, rid, 401, "unauthenticated")
        eq(d["client"]["id"], None, f"deny client.id for {auth.split(':')[0]!r}")
    eq(len(t.standin.requests()), len(good), "requests WHM received after the 401s")


def test_unauthenticated_all_alike(t):
    """7. Unknown key, wrong key, no Authorization, expired key: the same
    401 with WWW-Authenticate; nothing reaches WHM; deny records."""
    conf = t.conf()
    conf["clients"]["old"] = t.client("old", expires="2020-01-01T00:00:00Z")
    g = t.gate(conf)
    billing = t.key("billing")
    wrong = billing[:-1] + ("A" if billing[-1] != "A" else "B")
    cases = [("unknown key", f"Bearer {t.key('stranger')}"),
             ("wrong key", f"Bearer {wrong}"),
             ("missing Authorization", None),
             ("expired key", f"Bearer {t.key('old')}"),
             ("expired key, whm form", f"whm old:{t.key('old')}"),
             ("garbage", "Basic dXNlcjpwYXNz")]
    reasons = {}
    for what, auth in cases:
        r = g.curl("/json-api/listaccts?api.version=1", auth=auth)
        rid = check_error(r, 401, "unauthenticated")
        eq(r.header("WWW-Authenticate"), REALM, f"WWW-Authenticate for {what}")
        d = check_deny(g, rid, 401, "unauthenticated")
        if what != "expired key" and what != "expired key, whm form":
            eq(d["client"]["id"], None, f"deny client.id for {what}")
        reasons[what] = r.json()["metadata"]["reason"]
    # An attacker must not learn that a key exists but expired.
    eq(reasons["expired key"], reasons["wrong key"], "reason: expired vs wrong key")
    eq(reasons["unknown key"], reasons["wrong key"], "reason: unknown vs wrong key")
    eq(t.standin.requests(), [], "requests WHM received")


def test_source_not_allowed(t):
    """8. A client limited to 10.0.0.0/8 calling from 127.0.0.1 gets 403
    source_not_allowed; one limited to 127.0.0.1/32 gets through."""
    conf = t.conf()
    conf["clients"]["remote"] = t.client("remote", source=["10.0.0.0/8"])
    conf["clients"]["support"]["source"] = ["10.0.0.0/8", "127.0.0.1/32"]
    g = t.gate(conf)
    r = g.curl("/json-api/listaccts?api.version=1", auth=f"Bearer {t.key('remote')}")
    rid = check_error(r, 403, "source_not_allowed")
    d = check_deny(g, rid, 403, "source_not_allowed")
    eq(d["client"]["id"], "remote", "deny client.id")
    eq(d["client"]["ip"], "127.0.0.1", "deny client.ip")
    eq(t.standin.requests(), [], "requests WHM received")

    r = g.curl("/json-api/listaccts?api.version=1", auth=f"Bearer {t.key('support')}")
    eq(r.status, 200, "status for the client whose source matches")
    check_forwarded(g, r.header("X-Request-Id"))
    eq(len(t.standin.requests()), 1, "requests WHM received")


def test_authorization_trailing_whitespace(t):
    """2b. Trailing whitespace is not part of a field value (RFC 9110
    section 5.5): `Authorization: Bearer KEY  ` is the same key."""
    g = t.gate()
    key = t.key("billing").encode()
    for auth in (b"Bearer " + key + b"  ", b"whm billing:" + key + b" \t"):
        r = g.raw(b"GET /json-api/listaccts?api.version=1 HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: " + auth + b"\r\n\r\n")
        eq(r.status, 200, f"status with trailing whitespace after {auth.split()[0]!r} "
           f"({r.body[:120]!r})")
        check_forwarded(g, r.header("X-Request-Id"))
    eq(len(t.standin.requests()), 2, "requests WHM received")
