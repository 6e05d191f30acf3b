"""`whmgate policy check` and `policy show` (SPEC section 12): the decision
the daemon would take, from the same config, parsed by section 4's rules.

test_policy_check_agrees_with_attack_suite runs the parameter-level classes
of the attack suite (test_attacks.py) against the daemon, then asks
`policy check` every row the daemon answered at or after the parameter step
(200, 400 for a target or parameter, 413 for a count, 403) and asserts the
same answer: allow for a twin, refuse with the same code for an attack."""
import json
import os
import re
import subprocess

import test_attacks
from attacklib import Table
from lib import eq

POLICY_CODES = {None, "bad_request", "payload_too_large", "function_not_allowed",
                "parameter_not_allowed"}
# Attack classes whose rows are about parameters, targets and policy.
CLASSES = ("test_attack_param_encoding", "test_attack_duplicates", "test_attack_api_version",
           "test_attack_batch", "test_attack_cpanel", "test_attack_body",
           "test_attack_bounds", "test_attack_xmlapi", "test_attack_path")


def check(t, conf_path, client, *req):
    """Runs policy check; (exit status, stdout lines)."""
    s = t.session
    r = subprocess.run([*s.wrapper, s.bin, "policy", "check", "-c", conf_path, client, *req],
                       capture_output=True, cwd=t.dir, timeout=60 * s.slow)
    return r.returncode, r.stdout.decode("utf-8", "replace").splitlines(), \
        r.stderr.decode("utf-8", "replace")


def as_check_args(raw, key):
    """The policy check arguments for a raw request, or None when the
    request is not a plain GET/POST of the billing client that check can
    express (framing, headers, other media types are the daemon's alone)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or parts[0] not in (b"GET", b"POST"):
        return None
    hdrs = {}
    for ln in lines[1:]:
        name, c, value = ln.partition(b": ")
        if not c or name.lower() in hdrs:
            return None
        hdrs[name.lower()] = value
    if set(hdrs) - {b"host", b"authorization", b"content-type", b"content-length"}:
        return None
    if hdrs.get(b"authorization") != b"Bearer " + key.encode():
        return None
    ct = hdrs.get(b"content-type", b"").lower()
    if ct and ct not in (b"application/x-www-form-urlencoded", b"application/octet-stream"):
        return None
    target = parts[1]
    if not target.startswith(b"/json-api/"):
        return None
    req = target[len(b"/json-api/"):]
    if parts[0] == b"GET":
        if body or b"content-length" in hdrs:
            return None
        return [req]
    if hdrs.get(b"content-length") != str(len(body)).encode():
        return None
    return [b"--post", req, body]


def test_policy_check_agrees_with_attack_suite(t):
    rows = []

    def observe(table, name, raw, status, code):
        rows.append((table.g.conf_path, table.label, name, raw, status, code))

    Table.observer = observe
    try:
        for name in CLASSES:
            getattr(test_attacks, name)(t)
    finally:
        Table.observer = None
    asked = agree = 0
    problems = []
    for conf_path, label, name, raw, status, code in rows:
        if code not in POLICY_CODES:
            continue
        args = as_check_args(raw, t.key("billing"))
        # (a NUL cannot be an argument; the daemon refuses it as framing)
        if args is None or any(b"\0" in a for a in args):
            continue
        asked += 1
        rc, out, err = check(t, conf_path, "billing", *args)
        want_rc = 0 if code is None else 1
        first = out[0] if out else ""
        ok = rc == want_rc and (first.startswith("allow ") if code is None
                                else first.startswith(f"refuse {code}: "))
        if ok:
            agree += 1
        else:
            problems.append(f"{label}: {name}: daemon {status} {code}, check exit {rc} "
                            f"{first!r} {err.strip()[:100]!r}")
    t.note(f"{asked} of {len(rows)} attack-suite rows asked, {agree} agree")
    if problems:
        raise AssertionError(f"{len(problems)} disagreements: " + " || ".join(problems[:20]))
    # the classes must have given check something real to answer
    if asked < 200 or sum(1 for r in rows if r[5] is None) < 20:
        raise AssertionError(f"only {asked} rows asked of {len(rows)}")


def write(t, name, conf):
    path = os.path.join(t.dir, name)
    with open(path, "w") as f:
        json.dump(conf, f, indent=1)
    return path


def policy_conf(t):
    conf = t.conf()
    b = conf["clients"]["billing"]
    b["allow"] = {"listaccts": {}, "batch": {},
                  "createacct": {"plan": {"enum": ["basic", "pro"]},
                                 "username": {"pattern": "^[a-z][a-z0-9]{0,7}$",
                                              "required": True}},
                  "uapi_cpanel:Email::list_pops": {"cpanel.user": {"pattern": "^cust[0-9]+$"}}}
    b["candidate"] = {"listaccts": {}, "createacct": {"plan": {"enum": ["basic"]}},
                      "suspendacct": {}}
    b["source"] = ["127.0.0.0/8"]
    b["rate"] = {"per_second": 5, "burst": 10}
    b["max_inflight"] = 4
    b["expires"] = "2030-01-01T00:00:00Z"
    conf["clients"]["legacy"] = t.client("remote", "any")
    conf["limits"] = {"max_params": 8}
    return conf


def test_policy_check_cli(t):
    """check: allow with the deciding rule, refuse with code and reason,
    the candidate's answer where it differs, section 4's refusals (400,
    413, nested batch), POST bodies, "any"; exit 0/1/2."""
    path = write(t, "p.json", policy_conf(t))
    R = "$.clients.billing.allow"
    C = "$.clients.billing.candidate"
    cases = [
        (["billing", "createacct?username=abc&plan=basic"], 0,
         [f"allow {R}.createacct"]),
        (["billing", "createacct?username=abc&plan=pro"], 0,
         [f"allow {R}.createacct",
          "candidate: refuse parameter_not_allowed: value of plan is not allowed"]),
        (["billing", "createacct?username=Abc&plan=basic"], 1,
         ["refuse parameter_not_allowed: value of username is not allowed",
          f"candidate: allow {C}.createacct"]),
        (["billing", "createacct?plan=basic"], 1,
         ["refuse parameter_not_allowed: parameter username is required",
          f"candidate: allow {C}.createacct"]),
        (["billing", "suspendacct?user=cust1"], 1,
         ["refuse function_not_allowed: suspendacct is not allowed for this client",
          f"candidate: allow {C}.suspendacct"]),
        (["billing", "removeacct?user=x"], 1,
         ["refuse function_not_allowed: removeacct is not allowed for this client"]),
        (["billing", "listaccts?api.version=2"], 1,
         ["refuse bad_request: api.version must be 1"]),
        (["billing", "listaccts?search=a&search=b"], 1, None),
        (["billing", "listaccts?" + "&".join(f"p{i}=1" for i in range(9))], 1, None),
        (["billing", "batch?command=batch%3Fcommand%3Dlistaccts"], 1,
         ["refuse function_not_allowed: nested batch is not allowed"]),
        (["billing", "batch?command=listaccts&command=createacct%3Fusername%3Dab"], 0,
         [f"allow {R}.batch",
          "candidate: refuse function_not_allowed: batch is not allowed for this client"]),
        (["billing", "listaccts?search=a%01b"], 0, [f"allow {R}.listaccts"]),
        (["billing", "/json-api/createacct?username=abc&plan=basic"], 0,
         [f"allow {R}.createacct"]),
        (["billing", "/json-api//createacct?username=abc"], 1, None),
        (["billing", "listaccts?search=a\x01b"], 1, None),
        (["billing", "listaccts?search=a#b"], 1, None),
        (["billing", "ListAccts"], 1, None),
        (["billing", "--post", "createacct", "username=abc&plan=pro"], 0, None),
        (["billing", "--post", "createacct?username=abc", "username=abd"], 1, None),
        (["billing", "--post", "createacct", "username=abc\r\n"], 1, None),
        (["billing", "uapi_cpanel?cpanel.module=Email&cpanel.function=list_pops"
          "&cpanel.user=root"], 1,
         ["refuse parameter_not_allowed: value of cpanel.user is not allowed"]),
        (["legacy", "removeacct?user=anyone&keepdns=1"], 0,
         ["allow $.clients.legacy.allow"]),
    ]
    for args, want_rc, want_out in cases:
        rc, out, err = check(t, path, *args)
        eq(rc, want_rc, f"exit of check {args} ({out} {err!r})")
        if want_out is not None:
            eq(out, want_out, f"output of check {args}")
        elif want_rc == 1:
            code = {"listaccts?search": "bad_request", "listaccts?p0": "payload_too_large",
                    "ListAccts": "bad_request"}
            for k, v in code.items():
                if args[1].startswith(k):
                    if not out or not out[0].startswith(f"refuse {v}: "):
                        raise AssertionError(f"check {args}: {out}")
    for args in (["nobody", "listaccts"], ["billing"], ["billing", "a", "b"]):
        rc, out, err = check(t, path, *args)
        eq((rc, out), (2, []), f"check {args}")
    rc, out, err = check(t, os.path.join(t.dir, "missing.json"), "billing", "listaccts")
    eq(rc, 2, "check with a missing config")
    if "missing.json" not in err:
        raise AssertionError(f"stderr: {err!r}")


def test_policy_show(t):
    """show: per client identities (counts, never hashes), source, expiry,
    limits, each function with its rules, the candidate's differences;
    --json the same normalised; one client by name."""
    conf = policy_conf(t)
    path = write(t, "p.json", conf)
    r = t.run_bin("policy", "show", "-c", path)
    eq(r.returncode, 0, f"show exit ({r.stderr!r})")
    text = r.stdout
    key_hash = conf["clients"]["billing"]["keys"][0]
    if key_hash.split(":")[1] in text or "sha256:" in text:
        raise AssertionError("show printed a key hash")
    for want in ("client billing\n", "  identities: 1 key, 0 certificates\n",
                 "  source: 127.0.0.0/8\n", "  expires: 2030-01-01T00:00:00Z\n",
                 "  rate: 5 per second, burst 10\n", "  max_inflight: 4\n",
                 "    createacct:\n      plan: one of \"basic\", \"pro\"\n"
                 "      username: required; matches \"^[a-z][a-z0-9]{0,7}$\"\n",
                 "    listaccts: any parameters\n",
                 "    drops batch\n", "    drops uapi_cpanel:Email::list_pops\n",
                 "    changes\n      createacct:\n        plan: one of \"basic\"\n",
                 "    adds\n      suspendacct: any parameters\n",
                 "client legacy\n", "  allow: any (every function and parameter)\n"):
        if want not in text:
            raise AssertionError(f"show lacks {want!r}:\n{text}")
    r = t.run_bin("policy", "show", "-c", path, "--json")
    eq(r.returncode, 0, "show --json exit")
    j = json.loads(r.stdout)
    b = j["clients"]["billing"]
    eq((b["keys"], b["certs"], b["source"], b["expires"], b["max_inflight"]),
       (1, 0, ["127.0.0.0/8"], "2030-01-01T00:00:00Z", 4), "show --json identities")
    eq(b["allow"], {"batch": {}, "listaccts": {},
                    "createacct": {"plan": {"enum": ["basic", "pro"]},
                                   "username": {"pattern": "^[a-z][a-z0-9]{0,7}$",
                                                "required": True}},
                    "uapi_cpanel:Email::list_pops": {"cpanel.user": {"pattern": "^cust[0-9]+$"}}},
       "show --json allow")
    eq(b["candidate"]["createacct"], {"plan": {"enum": ["basic"]}}, "show --json candidate")
    eq(j["clients"]["legacy"]["allow"], "any", "show --json any")
    eq(j["clients"]["support"]["candidate"], None, "no candidate")
    r = t.run_bin("policy", "show", "-c", path, "--json", "legacy")
    eq(list(json.loads(r.stdout)["clients"]), ["legacy"], "show one client")
    r = t.run_bin("policy", "show", "-c", path, "nobody")
    eq((r.returncode, r.stdout), (2, ""), "show an unknown client")
