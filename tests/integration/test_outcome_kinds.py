"""whm.result / whm.reason of cpanel and uapi_cpanel calls (SPEC section 7,
issue 13 item 1): the verdict of the call that ran, not of WHM's wrapper.
Each call goes through the real binary to the stand-in with curl; the test
checks what curl got, what the stand-in received and the response record.

The shapes the stand-in answers (tests/whm_standin.py) are cPanel's:
uapi_cpanel in WHM's envelope with metadata.result 1 and the UAPI verdict in
data.uapi; cpanel with no WHM metadata: API 2 in {"cpanelresult": ...}
(per-item result/reason, event, error), API 1 and UAPI-through-cpanel bare,
and cpsrvd's own refusal {"data":{"reason","result":"0"},"type":"text",
"error"} (wrapped in cpanelresult only for cpanel_jsonapi_apiversion=2)."""
from urllib.parse import urlencode

from lib import check_forwarded, eq

BASE = "/json-api/"


def gate_for(t, *targets):
    """A gate whose billing client may call exactly these cpanel targets."""
    conf = t.conf()
    conf["clients"]["billing"]["allow"] = {k: {} for k in targets}
    return t.gate(conf)


def run_call(t, g, fn, params):
    """One call with curl; returns (the JSON curl got, the stand-in's record
    of the call, the response record's whm)."""
    t.standin.reset()
    r = g.curl(BASE + fn + "?" + urlencode(params), auth=f"Bearer {t.key('billing')}")
    eq(r.status, 200, f"status of {fn} {params} ({r.body[:200]!r})")
    rid = r.header("X-Request-Id")
    seen = t.standin.requests()
    eq(len(seen), 1, f"calls the stand-in received for {fn} {params}")
    eq(seen[0]["path"], BASE + fn, "path the stand-in received")
    want = dict(params)
    want["api.version"] = "1"
    eq(seen[0]["params"], want, "parameters the stand-in received")
    _, resp = check_forwarded(g, rid)
    eq(resp["http"]["status"], 200, "response record http.status")
    eq(resp["upstream"]["status"], 200, "response record upstream.status")
    return r.json(), resp["whm"]


def verdict(w):
    return w.get("result"), w.get("reason")


def target(w):
    """The cpanel/uapi target the record lists in calls."""
    calls = w.get("calls") or []
    eq(len(calls), 1, f"whm.calls {calls}")
    return calls[0]


def test_outcome_uapi_cpanel(t):
    """uapi_cpanel: WHM says result 1 "OK" even when the UAPI call failed;
    the record says data.uapi.status and the first errors entry."""
    g = gate_for(t, "uapi_cpanel:Email::list_pops", "uapi_cpanel:Email::nosuch")
    p = {"cpanel.user": "cust1", "cpanel.module": "Email", "cpanel.function": "list_pops"}
    body, w = run_call(t, g, "uapi_cpanel", p)
    eq((body["metadata"]["result"], body["data"]["uapi"]["status"]), (1, 1), "client got")
    eq(body["data"]["uapi"]["data"], [{"email": "info@cust1.example"}], "client got the data")
    eq(verdict(w), (1, "OK"), "verdict of a UAPI call that worked")
    eq(target(w), {"function": "uapi_cpanel", "module": "Email", "func": "list_pops",
                   "user": "cust1"}, "whm.calls target")

    # the issue's own example: WHM's wrapper says OK, the call failed
    body, w = run_call(t, g, "uapi_cpanel", dict(p, **{"cpanel.user": "root"}))
    eq((body["metadata"]["result"], body["metadata"]["reason"]), (1, "OK"),
       "WHM's outer verdict the client got")
    eq(body["data"]["uapi"]["errors"], ['The user "root" does not exist.'], "client got")
    eq(verdict(w), (0, 'The user "root" does not exist.'), "verdict of a failed UAPI call")

    body, w = run_call(t, g, "uapi_cpanel", dict(p, **{"cpanel.function": "nosuch"}))
    eq(body["data"]["uapi"]["status"], 0, "client got")
    eq(verdict(w), (0, 'Could not find function "nosuch" in module "Email"'),
       "verdict of an unknown UAPI function")


def test_outcome_cpanel_api2(t):
    """cpanel, API 2: the answer is {"cpanelresult": ...} with no WHM
    metadata; an error, a failed item or a failed event is result 0 with
    cPanel's reason."""
    g = gate_for(t, "cpanel:Email::listpops", "cpanel:Email::addpop",
                 "cpanel:Email::delpop", "cpanel:Email::nosuch")

    def p(func, **kw):
        return dict({"cpanel_jsonapi_user": "cust1", "cpanel_jsonapi_apiversion": "2",
                     "cpanel_jsonapi_module": "Email", "cpanel_jsonapi_func": func}, **kw)

    body, w = run_call(t, g, "cpanel", p("listpops"))
    eq(body["cpanelresult"]["event"], {"result": 1}, "client got")
    eq("metadata" in body, False, "no WHM metadata in a cpanel answer")
    eq(verdict(w), (1, None), "verdict of an API 2 call that worked")
    eq(target(w), {"function": "cpanel", "module": "Email", "func": "listpops",
                   "user": "cust1"}, "whm.calls target")

    why = "The account info@cust1.example already exists!"
    body, w = run_call(t, g, "cpanel", p("addpop", email="info", domain="cust1.example"))
    eq((body["cpanelresult"]["error"], body["cpanelresult"]["data"][0]["result"]), (why, 0),
       "client got")
    eq(verdict(w), (0, why), "verdict of a failed addpop (error and failed item)")

    body, w = run_call(t, g, "cpanel", p("addpop", email="sales", domain="cust1.example"))
    eq(body["cpanelresult"]["data"], [{"result": 1, "reason": ""}], "client got")
    eq(verdict(w), (1, None), "verdict of an addpop that worked")

    why = "The email account nobody@cust1.example does not exist."
    body, w = run_call(t, g, "cpanel", p("delpop", email="nobody"))
    eq(("error" in body["cpanelresult"], body["cpanelresult"]["data"]),
       (False, [{"result": 0, "reason": why}]), "client got")
    eq(verdict(w), (0, why), "verdict of a failed item without an error")

    why = "Could not find function \u201cnosuch\u201d in module \u201cEmail\u201d"
    body, w = run_call(t, g, "cpanel", p("nosuch"))
    eq(body["cpanelresult"]["event"]["result"], 0, "client got")
    eq(verdict(w), (0, why), "verdict of an unknown API 2 function")

    why = "User parameter is invalid or was not supplied"
    body, w = run_call(t, g, "cpanel", p("listpops", cpanel_jsonapi_user="nosuch"))
    eq(body, {"cpanelresult": {"data": {"reason": why, "result": "0"}, "type": "text",
                               "error": why}}, "client got cpsrvd's refusal")
    eq(verdict(w), (0, why), "verdict of cpsrvd's refusal (API 2)")


def test_outcome_cpanel_api1(t):
    """cpanel, API 1 and UAPI through cpanel: bare answers. API 1's
    data.result is the function's output (a "0" too), never a verdict."""
    g = gate_for(t, "cpanel:Email::listpops", "cpanel:Email::getdiskusage",
                 "cpanel:Email::list_pops", "cpanel:Email::nosuch")

    def p(func, ver="1", **kw):
        return dict({"cpanel_jsonapi_user": "cust2", "cpanel_jsonapi_apiversion": ver,
                     "cpanel_jsonapi_module": "Email", "cpanel_jsonapi_func": func}, **kw)

    body, w = run_call(t, g, "cpanel", p("listpops"))
    eq((body["data"], body["event"]), ({"result": "info@cust2.example"}, {"result": 1}),
       "client got")
    eq(verdict(w), (1, None), "verdict of an API 1 call that worked")

    body, w = run_call(t, g, "cpanel", p("getdiskusage"))
    eq(body["data"], {"result": "0"}, "client got an output of 0")
    eq(verdict(w), (1, None), "an API 1 output of 0 is not a failure")

    why = "User parameter is invalid or was not supplied"
    body, w = run_call(t, g, "cpanel", p("listpops", cpanel_jsonapi_user="nosuch"))
    eq(body, {"data": {"reason": why, "result": "0"}, "type": "text", "error": why},
       "client got cpsrvd's bare refusal")
    eq(verdict(w), (0, why), "verdict of cpsrvd's refusal (API 1)")

    body, w = run_call(t, g, "cpanel", p("list_pops", ver="3"))
    eq((body["apiversion"], body["result"]["status"]), (3, 1), "client got")
    eq(verdict(w), (1, None), "verdict of a UAPI call through cpanel that worked")

    body, w = run_call(t, g, "cpanel", p("nosuch", ver="3"))
    eq(body["result"]["status"], 0, "client got")
    eq(verdict(w), (0, 'Could not find function "nosuch" in module "Email"'),
       "verdict of a failed UAPI call through cpanel")


def test_outcome_batch_uapi_subcalls(t):
    """A uapi_cpanel sub-call of a batch: its calls[i].result is the UAPI
    verdict, not WHM's per-sub-call metadata.result (1 for both here)."""
    g = gate_for(t, "batch", "uapi_cpanel:Email::list_pops", "listaccts")
    up = "uapi_cpanel?cpanel.module=Email&cpanel.function=list_pops&cpanel.user="
    cmds = {"command-0": up + "cust1", "command-1": up + "root", "command-2": "listaccts"}
    body, w = run_call(t, g, "batch", cmds)
    subs = body["data"]["result"]
    eq([s["metadata"]["result"] for s in subs], [1, 1, 1], "WHM's sub-call results curl got")
    eq([s["data"]["uapi"]["status"] for s in subs[:2]], [1, 0], "UAPI statuses curl got")
    eq([(c["function"], c["result"]) for c in w["calls"]],
       [("uapi_cpanel", 1), ("uapi_cpanel", 0), ("listaccts", 1)], "whm.calls results")
    eq(verdict(w), (1, "OK"), "the batch's own verdict")
