"""No key, token or Authorization value in the audit trail or in whmgate's
diagnostics (SPEC sections 2 and 7)."""
from urllib.parse import quote

from lib import eq


def find_leaks(t, g, secrets):
    """(where, what) for every secret found in the audit file or stderr."""
    with open(g.audit_path, encoding="utf-8", errors="replace") as f:
        audit = f.read()
    places = {"audit file": audit, "stderr": g.stderr()}
    leaks = []
    for what, value in secrets.items():
        for where, text in places.items():
            if value in text:
                leaks.append(f"{what} in the {where}")
    return leaks


def test_no_secrets_logged(t):
    """16. After allowed, refused and failed calls (debug logging on), no
    client key, WHM token or Authorization value is in the audit file or
    stderr, and secret-looking parameters are recorded redacted."""
    g = t.gate(env={"WHMGATE_DEBUG": "1"})
    s = t.session
    billing, support, stranger = t.key("billing"), t.key("support"), t.key("stranger")
    wrong = billing[:-2] + ("AA" if billing[-2:] != "AA" else "BB")
    password = "Pw-" + s.token[:6].lower() + "-x7"
    calls = [
        # (curl args, Authorization, want status)
        (["/json-api/listaccts?api.version=1"], f"Bearer {billing}", 200),
        (["/json-api/listaccts", "--data", "api.version=1&search=cust1"],
         f"whm billing:{billing}", 200),
        (["/json-api/createacct?api.version=1&username=abc&domain=abc.example"],
         f"Bearer {support}", 403),
        (["/json-api/listaccts?api.version=1"], f"Bearer {wrong}", 401),
        (["/json-api/listaccts?api.version=1"], f"whm support:{billing}", 401),
        (["/json-api/listaccts?api.version=1"], f"Bearer {stranger}", 401),
        # Secrets pasted into values: redacted whatever the parameter's name.
        ([f"/json-api/listaccts?api.version=1&search={billing}"], f"Bearer {billing}", 200),
        ([f"/json-api/listaccts?api.version=1&search={s.token}"], f"Bearer {billing}", 200),
        ([f"/json-api/listaccts?api.version=1&searchtype=user&search={quote('x ' + stranger)}"],
         f"Bearer {billing}", 200),
        # A password, redacted by its name.
        ([f"/json-api/createacct?api.version=1&username=sec1&domain=sec1.example"
          f"&password={password}"], f"Bearer {billing}", 200),
        ([f"/json-api/createacct?api.version=1&username=Sec2&domain=sec2.example"
          f"&password={password}"], f"Bearer {billing}", 403),
    ]
    for args, auth, want in calls:
        r = g.curl(*args, auth=auth)
        eq(r.status, want, f"status of {args[0][:60]}")
    g.wait_audit(lambda rs: len([x for x in rs if x["type"] in ("deny", "response")])
                 >= len(calls), what="a final record per call")
    recs = g.audit()
    # The redacted values are present as markers, so the calls were audited.
    searches = [x["whm"]["params"].get("search") for x in recs
                if x["type"] == "request" and "search" in x["whm"].get("params", {})]
    eq(searches, ["cust1", "[REDACTED]", "[REDACTED]", "[REDACTED]"],
       "recorded search values")
    pw = [x["whm"]["params"].get("password") for x in recs
          if x["type"] in ("request", "deny") and x.get("whm", {}).get("function") == "createacct"
          and "password" in x["whm"].get("params", {})]
    eq(pw, ["[REDACTED]", "[REDACTED]"], "recorded passwords")
    rc = g.stop()
    eq(rc, 0, "exit code after SIGTERM")
    secrets = {"the billing key": billing, "the support key": support,
               "an unknown key": stranger, "a wrong key": wrong,
               "part of the billing key": billing[5:25],
               "the WHM token": s.token, "part of the WHM token": s.token[:16],
               "a whm Authorization value": f"root:{s.token}",
               "the password": password}
    leaks = find_leaks(t, g, secrets)
    assert not leaks, "secrets leaked: " + ", ".join(leaks)


def test_no_key_logged_from_path(t):
    """16b. A key pasted into the URL path (a misconfigured client's base
    URL) is not written to the audit trail either."""
    g = t.gate()
    key = t.key("billing")
    r = g.raw(b"GET /%s/json-api/listaccts HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer %s\r\n\r\n" % (key.encode(), key.encode()))
    eq(r.status, 404, "status of a key in the path")
    g.records(r.header("X-Request-Id"))
    leaks = find_leaks(t, g, {"the billing key": key, "part of the billing key": key[5:25]})
    assert not leaks, "secrets leaked: " + ", ".join(leaks)


def test_no_key_logged_from_param_name(t):
    """16c. A key sent as a parameter name (`...&whmg_KEY`, a client that
    put the key where a name belongs) is not written to the audit trail."""
    g = t.gate()
    key = t.key("billing")
    r = g.raw(b"GET /json-api/listaccts?api.version=1&%s HTTP/1.1\r\nHost: x\r\n"
              b"Authorization: Bearer %s\r\n\r\n" % (key.encode(), key.encode()))
    assert r.status in (200, 400, 403), f"status of a key as a parameter name: {r.status}"
    g.records(r.header("X-Request-Id"))
    leaks = find_leaks(t, g, {"the billing key": key, "part of the billing key": key[5:25]})
    assert not leaks, "secrets leaked: " + ", ".join(leaks)
