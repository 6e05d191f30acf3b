"""README's "Moving an integration behind whmgate": every command of its
walk-through run in order, as written (only the binary, the admin address
and the folder are this test's), with the exit status its comment states,
around a real daemon and the stand-in: any, traffic, suggest, the candidate
pasted in and reloaded with SIGHUP, show, check, the mismatch metric, and a
replay under a tighter file."""
import copy
import json
import os
import re
import subprocess

from lib import eq
from opslib import admin_conf, sighup
from test_policy_loop import mix, run_mix, suggestion_allow

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
CLIENT = "legacy-billing"


def walkthrough():
    """The sh block of the section: [(command, exit status)]."""
    with open(README) as f:
        text = f.read()
    sec = text.split("## Moving an integration behind whmgate", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", sec, re.S).group(1)
    out = []
    for line in block.splitlines():
        m = re.fullmatch(r"(.*?)\s+# exit (\d+)(?:,.*)?", line)
        if not m:
            raise AssertionError(f"README line without '# exit N': {line!r}")
        out.append((m.group(1), int(m.group(2))))
    return out


def test_policy_readme_walkthrough(t):
    steps = walkthrough()
    eq([c.split()[0] + " " + (c.split()[1] if c.startswith("build") else "")
        for c, _ in steps],
       ["build/whmgate -t", "build/whmgate policy", "build/whmgate policy",
        "build/whmgate policy", "curl ", "build/whmgate policy"], "walk-through commands")
    os.makedirs(os.path.join(t.dir, "conf"))
    os.makedirs(os.path.join(t.dir, "logs"))
    conf = admin_conf(t.conf())
    conf["audit"]["file"] = os.path.join(t.dir, "logs", "audit.jsonl")
    conf["clients"] = {CLIENT: t.client("billing", "any"),
                       "support": t.client("support", {"listaccts": {}})}
    conf_path = os.path.join(t.dir, "conf", "whmgate.json")

    def write(path, c):
        with open(path, "w") as f:
            json.dump(c, f, indent=1)

    def run(i):
        cmd, want = steps[i]
        cmd = cmd.replace("build/whmgate", t.session.bin, 1) if cmd.startswith("build/") \
            else cmd
        cmd = cmd.replace("127.0.0.1:9180", conf["admin"])
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                           cwd=t.dir, timeout=120 * t.session.slow)
        eq(r.returncode, want, f"exit of README step {i + 1}: {steps[i][0]} "
                               f"({r.stdout[-300:]!r} {r.stderr[-300:]!r})")
        return r

    write(conf_path, conf)
    g = t.gate(conf)
    calls = mix(t)
    run_mix(t, g, calls)
    r = run(0)                                          # -t
    if f'warning: conf/whmgate.json: $.clients["{CLIENT}"].allow: ' not in r.stderr:
        raise AssertionError(f"-t stderr: {r.stderr!r}")
    run(1)                                              # suggest > suggested.jsonc
    with open(os.path.join(t.dir, "suggested.jsonc")) as f:
        allow = suggestion_allow(f.read(), CLIENT)
    eq(allow["createacct"]["plan"]["enum"], ["basic", "pro"], "suggested plans")
    # the operator pastes it in as candidate and reloads
    conf2 = copy.deepcopy(conf)
    conf2["clients"][CLIENT]["candidate"] = allow
    write(conf_path, conf2)
    rec = sighup(g, conf2)
    eq(rec.get("ok", rec.get("result")) in (True, "ok"), True, f"reload record {rec}")
    run_mix(t, g, calls)
    r = run(2)                                          # show
    if f"client {CLIENT}\n" not in r.stdout or "  candidate (" not in r.stdout:
        raise AssertionError(r.stdout)
    r = run(3)                                          # check
    eq(r.stdout.splitlines(), [f'allow $.clients["{CLIENT}"].allow',
                               "candidate: refuse parameter_not_allowed: "
                               "value of plan is not allowed"], "check output")
    # the daemon takes the same call the same way
    q = steps[3][0].split("'")[1]
    resp = g.curl("/json-api/" + q, auth=f"Bearer {t.key('billing')}")
    eq(resp.status, 200, "the daemon lets it through (any)")
    run(4)                                              # curl /metrics | grep
    nxt = copy.deepcopy(conf)
    nxt["clients"][CLIENT]["allow"] = copy.deepcopy(allow)
    nxt["clients"][CLIENT]["allow"]["createacct"]["plan"]["enum"] = ["basic"]
    write(os.path.join(t.dir, "conf", "next.json"), nxt)
    r = run(5)                                          # replay
    pro = sum(1 for fn, p in calls if p.get("plan") == "pro")
    if f"would_refuse {CLIENT} createacct parameter_not_allowed: {2 * pro + 1} calls" \
            not in r.stdout:
        raise AssertionError(r.stdout)
