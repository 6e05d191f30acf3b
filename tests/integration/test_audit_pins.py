"""Redaction of parameters the config makes public (SPEC section 7;
issue 13 item 2): a parameter pinned by an `enum` in the allow entry that
decided is recorded as is when its value is one of the enum's, in the
outer call and in batch sub-calls by their own entries; a refused value
and an unpinned secret stay redacted."""
from urllib.parse import quote

from auditlib import call
from lib import check_deny, check_error, eq


def test_audit_pins_enum_recorded(t):
    """13.2 createacct with showpass pinned to "n": the request record says
    showpass "n" (its name contains "pass", so it was [REDACTED]), the
    password stays redacted; a refused showpass=y is redacted in the deny
    record; a batch sub-call follows createacct's entry, and a sub-call
    whose entry pins nothing keeps the name rule."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"].update({
        "createacct": {"username": {"pattern": "^[a-z][a-z0-9]{0,7}$", "required": True},
                       "showpass": {"enum": ["n"], "required": True}},
        "passwd": {}})
    g = t.gate(conf)
    key = t.key("billing")
    pw = "Pin-Secret-77"
    r = call(g, "/json-api/createacct?api.version=1&username=pin1&domain=pin1.example"
             f"&showpass=n&password={pw}", key)
    eq(r.status, 200, "status of createacct")
    req = next(x for x in g.records(r.header("X-Request-Id")) if x["type"] == "request")
    eq((req["whm"]["params"].get("showpass"), req["whm"]["params"].get("password")),
       ("n", "[REDACTED]"), "recorded showpass, password")

    r = call(g, "/json-api/createacct?api.version=1&username=pin2&domain=pin2.example"
             "&showpass=y", key)
    rid = check_error(r, 403, "parameter_not_allowed")
    d = check_deny(g, rid, 403, "parameter_not_allowed")
    eq(d["whm"]["params"].get("showpass"), "[REDACTED]", "a refused showpass")

    body = "api.version=1&command=" + quote(
        "createacct?username=pin3&domain=pin3.example&showpass=n", safe="") + \
        "&command=" + quote("passwd?user=pin1&showpass=n&password=" + pw, safe="")
    r = call(g, "/json-api/batch", key, method="POST", body=body)
    eq(r.status, 200, "status of the batch")
    req = next(x for x in g.records(r.header("X-Request-Id")) if x["type"] == "request")
    subs = req["whm"]["calls"]
    eq([s["params"].get("showpass") for s in subs], ["n", "[REDACTED]"],
       "showpass in createacct's and passwd's sub-calls")
    eq(subs[1]["params"].get("password"), "[REDACTED]", "passwd's password")
    reqs = t.standin.requests()
    eq(reqs[0]["params"].get("showpass"), "n", "showpass WHM received")
    eq(g.stop(), 0, "exit code")
    with open(g.audit_path, "rb") as f:
        assert pw.encode() not in f.read(), "the password is in the trail"
