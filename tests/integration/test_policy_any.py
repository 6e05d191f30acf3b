"""SPEC section 12, on the daemon: "allow": "any" (every function, parameter,
batch sub-call and cpanel/uapi target; section 4's checks still apply; -t
warns) and a candidate tried in shadow (decision.candidate where it differs,
whmgate_candidate_mismatches_total, the decision taken is allow's). Each call
goes through the real binary to the stand-in with curl; the test checks what
curl got, what the stand-in received and the audit records."""
import json
import os
from urllib.parse import urlencode

from lib import check_deny, check_error, check_forwarded, eq
from opslib import admin_conf, mval, scrape

BASE = "/json-api/"


def call(t, g, fn, params, client="billing"):
    """GET fn?params with curl; returns the response."""
    return g.curl(BASE + fn + "?" + urlencode(params), auth=f"Bearer {t.key(client)}")


def forwarded(t, g, r, fn, params):
    """A 200 that reached WHM with exactly these parameters (plus the
    api.version whmgate adds); returns the request record."""
    eq(r.status, 200, f"status of {fn} ({r.body[:200]!r})")
    seen = t.standin.requests()
    eq(len(seen), 1, f"calls the stand-in received for {fn}")
    eq(seen[0]["path"], BASE + fn, "path the stand-in received")
    want = dict(params)
    want.setdefault("api.version", "1")
    eq(seen[0]["params"], want, f"parameters the stand-in received for {fn}")
    req, resp = check_forwarded(g, r.header("X-Request-Id"))
    eq(resp["http"]["status"], 200, "response record http.status")
    return req


def test_policy_allow_any(t):
    """A client on "any" calls what no allow entry names (removeacct, any
    parameter, a batch of anything, a uapi_cpanel target); decision.rule is
    $.clients.billing.allow. api.version=2, a repeated name and a nested
    batch are still refused, and nothing of them reaches WHM."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"] = "any"
    g = t.gate(conf)
    cases = [
        ("createacct", {"username": "newone", "domain": "newone.example",
                        "plan": "gold", "anything": "at all"}),
        ("removeacct", {"user": "newone"}),
        ("uapi_cpanel", {"cpanel.user": "cust1", "cpanel.module": "Email",
                         "cpanel.function": "add_pop", "email": "x",
                         "password": "s3cret-Pw"}),
    ]
    for fn, params in cases:
        t.standin.reset()
        req = forwarded(t, g, call(t, g, fn, params), fn, params)
        eq(req["decision"], {"allow": True, "rule": "$.clients.billing.allow",
                             "code": None, "reason": None}, f"{fn} decision")
    t.standin.reset()
    r = call(t, g, "batch", {"command-0": "listaccts", "command-1": "suspendacct?user=cust2"})
    eq(r.status, 200, "batch status")
    seen = t.standin.requests()
    eq(len(seen), 1, "batch calls the stand-in received")
    eq(seen[0]["params"]["command-1"], "suspendacct?user=cust2", "sub-call forwarded")
    req, _ = check_forwarded(g, r.header("X-Request-Id"))
    eq(req["decision"]["rule"], "$.clients.billing.allow", "batch decision.rule")
    eq([c["function"] for c in req["whm"]["calls"]], ["listaccts", "suspendacct"],
       "batch sub-calls recorded")
    # Section 4 still holds.
    t.standin.reset()
    for q, status, code in (
            ("listaccts?api.version=2", 400, "bad_request"),
            ("listaccts?search=a&search=b", 400, "bad_request"),
            ("batch?command=batch%3Fcommand%3Dlistaccts", 403, "function_not_allowed")):
        r = g.curl(BASE + q, auth=f"Bearer {t.key('billing')}")
        check_deny(g, check_error(r, status, code), status, code)
    eq(t.standin.requests(), [], "refused calls that reached WHM")
    # support keeps its own list.
    r = call(t, g, "removeacct", {"user": "cust1"}, client="support")
    check_deny(g, check_error(r, 403, "function_not_allowed"), 403, "function_not_allowed")


def test_policy_allow_any_check_warns(t):
    """-t accepts "any" with a warning naming the file and the path (exit 0);
    "all" is a config error."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"] = "any"
    path = os.path.join(t.dir, "any.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    r = t.run_bin("-t", "-c", path)
    eq(r.returncode, 0, f"-t exit ({r.stderr!r})")
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    eq(len(warn), 1, f"warnings ({r.stderr!r})")
    if not warn[0].startswith(f"warning: {path}: $.clients.billing.allow: "):
        raise AssertionError(f"warning line: {warn[0]!r}")
    conf["clients"]["billing"]["allow"] = {"listaccts": {}}
    with open(path, "w") as f:
        json.dump(conf, f)
    r = t.run_bin("-t", "-c", path)
    eq((r.returncode, r.stderr.count("warning: ")), (0, 0), "-t on a list: no warning")
    conf["clients"]["billing"]["allow"] = "all"
    with open(path, "w") as f:
        json.dump(conf, f)
    r = t.run_bin("-t", "-c", path)
    eq(r.returncode, 1, "-t exit for \"all\"")
    if f"{path}: $.clients.billing.allow: must be an object or \"any\"" not in r.stderr:
        raise AssertionError(f"-t stderr: {r.stderr!r}")


def test_policy_candidate_shadow(t):
    """allow: listaccts and createacct (plan basic or pro); candidate:
    listaccts, createacct with plan basic only, and suspendacct. A pro
    createacct goes through (allow decides) with decision.candidate
    refusing it and would_refuse counted; a suspendacct is refused with
    decision.candidate allowing it and would_allow counted; calls both
    decide alike carry no decision.candidate."""
    conf = admin_conf(t.conf())
    conf["clients"]["billing"]["allow"] = {
        "listaccts": {}, "createacct": {"plan": {"enum": ["basic", "pro"]}}}
    conf["clients"]["billing"]["candidate"] = {
        "listaccts": {}, "createacct": {"plan": {"enum": ["basic"]}}, "suspendacct": {}}
    g = t.gate(conf)
    base = "$.clients.billing.candidate"
    # Alike: no candidate in the records.
    t.standin.reset()
    p = {"username": "alike1", "domain": "alike1.example", "plan": "basic"}
    req = forwarded(t, g, call(t, g, "createacct", p), "createacct", p)
    eq("candidate" in req["decision"], False, "decision.candidate where both allow")
    r = call(t, g, "removeacct", {"user": "cust1"})
    d = check_deny(g, check_error(r, 403, "function_not_allowed"), 403, "function_not_allowed")
    eq("candidate" in d["decision"], False, "decision.candidate where both refuse")
    # would_refuse: allowed and forwarded, the candidate says no.
    t.standin.reset()
    p = {"username": "pro1", "domain": "pro1.example", "plan": "pro"}
    req = forwarded(t, g, call(t, g, "createacct", p), "createacct", p)
    eq(req["decision"]["allow"], True, "decision.allow (allow's)")
    eq(req["decision"]["rule"], "$.clients.billing.allow.createacct", "decision.rule")
    cand = req["decision"].get("candidate")
    eq((cand or {}).get("allow"), False, f"decision.candidate.allow ({cand})")
    eq(cand.get("rule"), base + ".createacct.plan", "decision.candidate.rule")
    eq(cand.get("code"), "parameter_not_allowed", "decision.candidate.code")
    if "plan" not in (cand.get("reason") or ""):
        raise AssertionError(f"decision.candidate.reason: {cand}")
    # would_allow: refused, nothing reaches WHM, the candidate says yes.
    t.standin.reset()
    r = call(t, g, "suspendacct", {"user": "cust2"})
    d = check_deny(g, check_error(r, 403, "function_not_allowed"), 403, "function_not_allowed")
    eq(d["decision"].get("candidate"), {"allow": True, "rule": base + ".suspendacct",
                                        "code": None, "reason": None},
       "deny record decision.candidate")
    eq(t.standin.requests(), [], "calls WHM received for a refused suspendacct")
    m, _ = scrape(conf)
    eq(mval(m, "whmgate_candidate_mismatches_total", client="billing", kind="would_refuse"),
       1.0, "would_refuse")
    eq(mval(m, "whmgate_candidate_mismatches_total", client="billing", kind="would_allow"),
       1.0, "would_allow")
    eq(mval(m, "whmgate_candidate_mismatches_total", client="support", kind="would_refuse"),
       0.0, "support has no candidate")
    # the function label knows candidate-only names
    eq(mval(m, "whmgate_requests_total", client="billing", function="suspendacct",
            decision="forbidden"), 1.0, "requests_total for a candidate-only function")
    recs = [x for x in g.audit() if x["type"] in ("request", "deny")]
    eq(sum(1 for x in recs if "candidate" in x["decision"]), 2,
       "records with decision.candidate")
