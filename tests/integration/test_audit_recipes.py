"""The README's auditor recipes (issue "Audit trail: what auditors read must
be true"): each jq command is taken from README.md as written and run over
a trail this test makes, and its answer is checked against the calls made."""
import json
import os
import re
import shutil
import subprocess
import urllib.parse

from lib import eq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recipes():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    found = dict(re.findall(r"<!-- recipe: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S))
    eq(sorted(found), ["client-account", "join", "refused", "removeacct"],
       "recipes in README.md")
    return found


def run(recipe, trail):
    cmd = recipe.replace("audit.jsonl", trail)
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{cmd}\n{r.stderr}"
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def test_audit_recipes(t):
    assert shutil.which("jq"), "jq is missing (make deps installs it)"
    rs = recipes()
    conf = t.conf()
    conf["clients"]["billing"]["allow"]["removeacct"] = {
        "user": {"pattern": "^cust[0-9]+$", "required": True}}
    conf["clients"]["billing"]["allow"]["listaccts"] = {}
    g = t.gate(conf)
    billing, support = f"Bearer {t.key('billing')}", f"Bearer {t.key('support')}"
    batch = ("/json-api/batch?api.version=1&command="
             + urllib.parse.quote("removeacct?user=cust2", safe="")
             + "&command=" + urllib.parse.quote("listaccts", safe=""))
    calls = [("/json-api/removeacct?api.version=1&user=cust1", billing, 200),
             (batch, billing, 200),
             ("/json-api/removeacct?api.version=1&user=cust1", support, 403),
             ("/json-api/listaccts?api.version=1", billing, 200),
             ("/json-api/listaccts?api.version=1", f"Bearer {t.key('stranger')}", 401)]
    ids = []
    for url, auth, want in calls:
        r = g.curl(url, auth=auth)
        eq(r.status, want, f"status of {url}")
        ids.append(r.header("X-Request-Id"))
    g.wait_audit(lambda recs: sum(x["type"] in ("deny", "response") for x in recs) >= 5,
                 what="final records")
    trail = g.audit_path

    got = run(rs["removeacct"], trail)
    eq([(x["id"], x["client"], x["via"], x["account"]) for x in got],
       [(ids[0], "billing", "removeacct", "cust1"), (ids[1], "billing", "batch", "cust2")],
       "who called removeacct, batch included")

    got = run(rs["refused"], trail)
    eq([(x["client"], x["status"], x["code"]) for x in got],
       [("support", 403, "function_not_allowed"), (None, 401, "unauthenticated")],
       "refused calls and why")
    assert all(x["reason"] and x["ip"] == "127.0.0.1" for x in got), got

    got = run(rs["client-account"], trail)
    eq([(x["id"], x["function"], x["allowed"]) for x in got],
       [(ids[0], "removeacct", True)], "what billing did to cust1")

    got = run(rs["join"], trail)
    joined = {x["id"]: x for x in got}
    eq(sorted(joined), sorted([ids[0], ids[1], ids[3]]), "calls joined to their results")
    for i in (0, 1, 3):
        eq(joined[ids[i]]["status"], 200, f"status of call {i}")
        assert joined[ids[i]]["result"] in (0, 1), joined[ids[i]]
    eq(joined[ids[3]]["result"], 1, "listaccts' WHM result")
