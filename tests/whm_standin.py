#!/usr/bin/env python3
"""WHM API 1 stand-in for whmgate's integration tests and `make run`.

A small TLS HTTP/1.1 server that answers /json-api/<function> the way cPanel WHM
does (see /work/shared/WHM.md), records every request it receives, and can be told
to misbehave through /__test/* control endpoints.  Standard library only.

  python3 tests/whm_standin.py --listen 127.0.0.1:2087 --cert C --key K \
      --token-file F [--user root] [--log FILE] [--verbose]
"""

import argparse
import json
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

WHM_VERSION = "11.120.0.16"
HOSTNAME = "whm.test"
SHARED_IP = "192.0.2.10"
PIECE = 64 * 1024                 # streaming / drip unit
MAX_BODY = 64 * 1024 * 1024       # larger request bodies get 400
JSON_TYPE = 'application/json; charset="utf-8"'
ACCESS_DENIED = {"cpanelresult": {"apiversion": "2", "error": "Access denied",
                                  "data": {"reason": "Access denied", "result": "0"},
                                  "type": "text"}}
BEHAVIOURS = {"delay_ms": int, "body_bytes": int, "drip_ms": int, "status": int,
              "reset_after_head": bool, "close_without_answer": bool,
              "not_json": bool, "metadata_first": bool, "chunked": bool,
              "idle_close_ms": int, "raw_answer": str}


def log(msg):
    """Terse diagnostics on stderr."""
    print(f"whm-standin: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- parameters

def whm_merge(pairs):
    """Merge (name, value) pairs WHM-style: a repeated name keeps its first value
    as `name`; later copies become `name-0`, `name-1`, ... (assigned in order)."""
    params, dups = {}, {}
    for k, v in pairs:
        if k not in params:
            params[k] = v
        else:
            n = dups.get(k, 0)
            dups[k] = n + 1
            params[f"{k}-{n}"] = v
    return params


def parse_form(text):
    return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace")


# ---------------------------------------------------------------- state

def make_account(user, domain, plan, owner="root", email="", diskused="0M"):
    now = int(time.time())
    return {"user": user, "domain": domain, "plan": plan, "owner": owner,
            "suspended": 0, "suspendreason": "not suspended", "suspendtime": None,
            "ip": SHARED_IP, "diskused": diskused, "disklimit": "unlimited",
            "email": email or f"admin@{domain}", "theme": "jupiter",
            "partition": "home", "shell": "/bin/bash", "unix_startdate": now,
            "startdate": time.strftime("%y %b %d %H:%M", time.gmtime(now))}


def seed_accounts():
    return {"cust1": make_account("cust1", "cust1.example", "basic", diskused="120M"),
            "cust2": make_account("cust2", "cust2.example", "pro", diskused="3M")}


class State:
    """Accounts, recorded requests and behaviours, shared by all threads."""

    def __init__(self, tokens, log_path):
        self.lock = threading.RLock()
        self.tokens = tokens            # set of "USER:TOKEN"
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.conns = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.accounts = seed_accounts()
            self.requests = []
            self.seq = 0
            self.behave = {}

    def next_conn(self):
        with self.lock:
            self.conns += 1
            return self.conns

    def record(self, rec):
        with self.lock:
            self.seq += 1
            rec = {"seq": self.seq, **rec}
            self.requests.append(rec)
            if self.log_file:
                self.log_file.write(json.dumps(rec) + "\n")
                self.log_file.flush()
            return rec

    def token_ok(self, values):
        """Exactly one Authorization header: `whm USER:TOKEN`, scheme any case."""
        if len(values) != 1:
            return False
        parts = values[0].strip().split(None, 1)
        return (len(parts) == 2 and parts[0].lower() == "whm"
                and parts[1].strip() in self.tokens)


# ---------------------------------------------------------------- envelopes

def envelope(fn, data=None, result=1, reason="OK", raw=None):
    """API 1 envelope, `data` (when present) before `metadata`."""
    meta = {"command": fn, "reason": reason, "result": result, "version": 1}
    if raw is not None:
        meta["output"] = {"raw": raw}
    env = {} if data is None else {"data": data}
    env["metadata"] = meta
    return env


def fail(fn, reason):
    return envelope(fn, result=0, reason=reason)


def metadata_first(obj):
    """Copy of obj with every `metadata` key moved to the front of its object."""
    if isinstance(obj, list):
        return [metadata_first(x) for x in obj]
    if isinstance(obj, dict):
        items = [(k, metadata_first(v)) for k, v in obj.items()]
        items.sort(key=lambda kv: kv[0] != "metadata")
        return dict(items)
    return obj


# ---------------------------------------------------------------- API functions

API = {}


def api(name):
    def register(f):
        API[name] = f
        return f
    return register


def call(st, fn, p, nested=False):
    """Run one API 1 function under the state lock; returns an envelope dict."""
    f = API.get(fn)
    if f is None:
        return fail(fn, f"Unknown app ({fn}) requested for this version (1) of the API.")
    if fn == "batch" and nested:
        return fail(fn, "A batch call cannot contain another batch call.")
    with st.lock:
        return f(st, fn, p)


def find_account(st, user=None, domain=None):
    if user:
        return st.accounts.get(user)
    if domain:
        return next((a for a in st.accounts.values() if a["domain"] == domain), None)
    return None


# Read-only functions with fixed answers.
STATIC = {"version": {"version": WHM_VERSION}, "gethostname": {"hostname": HOSTNAME},
          "systemloadavg": {"one": "0.10", "five": "0.05", "fifteen": "0.01"},
          "listpkgs": {"pkg": [{"name": n} for n in ("basic", "default", "pro")]},
          "myprivs": {"privileges": [{"all": 1}]}}
for _name, _data in STATIC.items():
    API[_name] = lambda st, fn, p, _data=_data: envelope(fn, _data)


@api("listaccts")
def _listaccts(st, fn, p):
    accts = list(st.accounts.values())
    search = p.get("search", "")
    if search:
        fields = {"user": ["user"], "domain": ["domain"], "owner": ["owner"],
                  "ip": ["ip"], "package": ["plan"]}.get(p.get("searchtype"),
                                                          ["user", "domain"])
        s = search.lower()
        if p.get("searchmethod") == "exact":
            hit = lambda v: v.lower() == s
        else:
            hit = lambda v: s in v.lower()
        accts = [a for a in accts if any(hit(str(a[f])) for f in fields)]
    if p.get("want"):
        keys = p["want"].split(",")
        accts = [{k: a[k] for k in keys if k in a} for a in accts]
    return envelope(fn, {"acct": [dict(a) for a in accts]})


@api("accountsummary")
def _accountsummary(st, fn, p):
    a = find_account(st, p.get("user"), p.get("domain"))
    if a is None:
        return fail(fn, "Account does not exist.")
    return envelope(fn, {"acct": [dict(a)]})


@api("createacct")
def _createacct(st, fn, p):
    user, domain = p.get("username", ""), p.get("domain", "")
    if not user:
        return fail(fn, 'No user name supplied: "username" is a required argument.')
    if not domain:
        return fail(fn, 'No domain supplied: "domain" is a required argument.')
    if user in st.accounts:
        return fail(fn, "Sorry, that username is taken.")
    if find_account(st, domain=domain):
        return fail(fn, f"Sorry, the domain {domain} is already in use.")
    plan = p.get("plan") or "default"
    st.accounts[user] = make_account(user, domain, plan, email=p.get("contactemail", ""))
    raw = ["Account Creation Ok", "+===================================+",
           "| New Account Info                  |",
           "+===================================+",
           f"| Domain: {domain}", f"| Ip: {SHARED_IP} (n)", f"| UserName: {user}"]
    if p.get("showpass", "y").lower() not in ("n", "no", "0"):
        raw.append(f"| PassWord: {p.get('password', '')}")
    raw += [f"| Package: {plan}", "+===================================+", ""]
    data = {"ip": SHARED_IP, "nameserver": "ns1.whm.test", "nameserver2": "ns2.whm.test",
            "nameserver3": None, "nameserver4": None, "package": plan}
    return envelope(fn, data, raw="\n".join(raw))


@api("removeacct")
def _removeacct(st, fn, p):
    user = p.get("user") or p.get("username") or ""
    if user not in st.accounts:
        return fail(fn, f'System user "{user}" does not exist!')
    del st.accounts[user]
    return envelope(fn, raw=f"Removing account {user}...\n{user} account removed\n")


@api("suspendacct")
def _suspendacct(st, fn, p):
    a = st.accounts.get(p.get("user", ""))
    if a is None or a["suspended"]:
        return fail(fn, "Failed to suspend account.")
    a.update(suspended=1, suspendreason=p.get("reason") or "Unknown",
             suspendtime=int(time.time()))
    return envelope(fn, raw=f"Changing Shell to /bin/false...Done\nLocking Password..."
                            f"Done\n{a['user']}'s account has been suspended\n")


@api("unsuspendacct")
def _unsuspendacct(st, fn, p):
    a = st.accounts.get(p.get("user", ""))
    if a is None or not a["suspended"]:
        return fail(fn, "Failed to unsuspend account.")
    a.update(suspended=0, suspendreason="not suspended", suspendtime=None)
    return envelope(fn, raw=f"{a['user']}'s account is now active\n")


@api("listsuspended")
def _listsuspended(st, fn, p):
    out = [{"user": a["user"], "reason": a["suspendreason"], "owner": a["owner"],
            "time": time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(a["suspendtime"])),
            "unixtime": a["suspendtime"], "is_locked": 0}
           for a in st.accounts.values() if a["suspended"]]
    return envelope(fn, {"account": out})


@api("batch")
def _batch(st, fn, p):
    """Sub-calls from `command`, then `command-N` in numeric order; each value is
    `fn` or `fn?a=b&c=d` (already form-decoded once; its args are decoded again)."""
    keys = [k for k in p if k == "command" or re.fullmatch(r"command-\d+", k)]
    keys.sort(key=lambda k: -1 if k == "command" else int(k[8:]))
    if not keys:
        return fail(fn, 'No commands given: "command" is a required argument.')
    abort = p.get("abort_on_error") == "1"
    results = []
    for i, k in enumerate(keys):
        sub_fn, _, args = p[k].partition("?")
        res = call(st, sub_fn, whm_merge(parse_form(args)), nested=True)
        results.append(res)
        if abort and not res.get("metadata", {"result": 1})["result"]:
            return envelope(fn, {"result": results}, result=0,
                            reason=f"Batch aborted: command {i} ({sub_fn}) failed.")
    return envelope(fn, {"result": results})


UAPI = {"Email": {"list_pops": lambda a, args: [{"email": f"info@{a['domain']}"}]}}
# Email::add_pop takes a password (the policy tools' redacted parameter).
UAPI["Email"]["add_pop"] = lambda a, args: f"{args.get('email', '')}+{a['domain']}"


@api("uapi_cpanel")
def _uapi_cpanel(st, fn, p):
    """UAPI as a user; the outer result is always 1, the outcome is data.uapi.status."""
    user, mod, func = (p.get("cpanel." + k, "") for k in ("user", "module", "function"))
    error, data = None, None
    if user not in st.accounts:
        error = f'The user "{user}" does not exist.'
    elif mod not in UAPI:
        error = f'Failed to load module "{mod}": Can\'t locate Cpanel/API/{mod}.pm'
    elif func not in UAPI[mod]:
        error = f'Could not find function "{func}" in module "{mod}"'
    else:
        data = UAPI[mod][func](st.accounts[user], p)
    uapi = {"status": 0 if error else 1, "data": data,
            "errors": [error] if error else None, "messages": None,
            "warnings": None, "metadata": {}}
    return envelope(fn, {"uapi": uapi})


def cpsrvd_error(msg, apiversion):
    """cpsrvd's own refusal of a cpanel call (Whostmgr::XMLUI::cPanel's
    _format_error): wrapped in cpanelresult only when apiversion is "2"."""
    body = {"data": {"reason": msg, "result": "0"}, "type": "text", "error": msg}
    return {"cpanelresult": body} if apiversion == "2" else body


def pops(a):
    """An account's mail addresses: the stand-in keeps one, info@ its domain."""
    return [f"info@{a['domain']}"]


def _api2_addpop(a, p):
    email = f"{p.get('email', '')}@{p.get('domain') or a['domain']}"
    if email in pops(a):
        why = f"The account {email} already exists!"
        return [{"result": 0, "reason": why}], why
    return [{"result": 1, "reason": ""}], None


def _api2_delpop(a, p):
    email = f"{p.get('email', '')}@{p.get('domain') or a['domain']}"
    if email not in pops(a):
        # a failed item without cpanelresult.error, as some API 2 calls answer
        return [{"result": 0, "reason": f"The email account {email} does not exist."}], None
    return [{"result": 1, "reason": ""}], None


# cPanel API 2 through WHM's cpanel function: (data, error) per call.
API2 = {"Email": {
    "listpops": lambda a, p: ([{"email": e, "login": e} for e in pops(a)], None),
    "addpop": _api2_addpop,
    "delpop": _api2_delpop}}
# cPanel API 1: data.result is the function's output (text), not a verdict.
API1 = {"Email": {
    "listpops": lambda a, p: " ".join(pops(a)),
    "getdiskusage": lambda a, p: "0"}}


@api("cpanel")
def _cpanel(st, fn, p):
    """cPanel API 1/2/UAPI as a user, the way cpsrvd answers it: no WHM
    metadata; API 2 in a cpanelresult envelope, API 1 and UAPI bare."""
    user = p.get("cpanel_jsonapi_user", p.get("user", ""))
    mod, func = p.get("cpanel_jsonapi_module", ""), p.get("cpanel_jsonapi_func", "")
    ver = p.get("cpanel_jsonapi_apiversion")
    if user == "root":
        return cpsrvd_error("The user \u201croot\u201d is not associated with a cPanel "
                            "account and cannot call cPanel API 2", ver)
    if user not in st.accounts:
        return cpsrvd_error("User parameter is invalid or was not supplied", ver)
    a = st.accounts[user]
    if ver == "3":
        res = {"status": 1, "errors": None, "messages": None, "warnings": None,
               "metadata": {}, "data": None}
        f = UAPI.get(mod, {}).get(func)
        if f is None:
            res.update(status=0, errors=[f'Could not find function "{func}" in module "{mod}"'])
        else:
            res["data"] = f(a, p)
        return {"apiversion": 3, "module": mod, "func": func, "result": res}
    if ver == "1":
        f = API1.get(mod, {}).get(func)
        out = f(a, p) if f else ""
        return {"apiversion": "1", "module": mod, "func": func, "type": "event",
                "source": "module", "data": {"result": out},
                "event": {"result": 1 if f else 0}}
    f = API2.get(mod, {}).get(func)
    res = {"apiversion": 2, "module": mod, "func": func}
    if f is None:
        why = f"Could not find function \u201c{func}\u201d in module \u201c{mod}\u201d"
        res.update(data=[], event={"result": 0, "reason": why}, error=why)
    else:
        data, error = f(a, p)
        res.update(data=data, event={"result": 1})
        if error:
            res["error"] = error
    return {"cpanelresult": res}


# ---------------------------------------------------------------- big listaccts

def big_listaccts(total, meta_first):
    """(length, piece iterator) for a listaccts envelope of exactly `total` bytes
    (when total is not tiny), generated on the fly from fixed-width fake accounts."""
    meta = json.dumps(envelope("listaccts")["metadata"], separators=(",", ":"))
    rec = ('{"user":"fk%09d","domain":"fk%09d.example","plan":"basic","owner":"root",'
           '"suspended":0,"ip":"' + SHARED_IP + '","diskused":"0M",'
           '"email":"admin@fk%09d.example"}')
    rec_len = len(rec % (0, 0, 0))
    if meta_first:
        head, tail = '{"metadata":' + meta + ',"data":{"acct":[', "]%s}}"
    else:
        head, tail = '{"data":{"acct":[', ']%s},"metadata":' + meta + "}"
    fixed = len(head) + len(tail) - 2
    n = max(0, (total - fixed + 1) // (rec_len + 1))
    used = fixed + n * rec_len + max(n - 1, 0)
    pad = " " * max(0, total - used)

    def pieces():
        buf = bytearray(head.encode())
        for i in range(n):
            if i:
                buf += b","
            buf += (rec % (i, i, i)).encode()
            if len(buf) >= PIECE:
                yield bytes(buf[:PIECE])
                del buf[:PIECE]
        buf += (tail % pad).encode()
        while buf:
            yield bytes(buf[:PIECE])
            del buf[:PIECE]
    return used + len(pad), pieces()


# ---------------------------------------------------------------- HTTP handler

class Handler(BaseHTTPRequestHandler):
    """One TLS connection; many keep-alive requests."""
    protocol_version = "HTTP/1.1"
    server_version = "cpsrvd/" + WHM_VERSION
    timeout = 120

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.conn_id = self.server.state.next_conn()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            super().log_message(fmt, *args)

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def read_body(self):
        """Request body by Content-Length or chunked; ValueError when malformed."""
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te:
            if len(te) != 1 or te[0].strip().lower() != "chunked" or cl:
                raise ValueError("unsupported framing")
            body = bytearray()
            while True:
                size = int(self.rfile.readline(1100).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline(8)
                if len(body) > MAX_BODY:
                    raise ValueError("body too large")
        if len(cl) > 1 or (cl and not cl[0].strip().isdigit()):
            raise ValueError("bad Content-Length")
        n = int(cl[0]) if cl else 0
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        path, _, query = self.path.partition("?")
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            return self.send_plain(400, f"bad request: {e}\n")
        if path.startswith("/__test/"):
            return self.control(path, query, body)
        st = self.server.state
        pairs = parse_form(query)
        if self.command == "POST":
            pairs += parse_form(body.decode("utf-8", "replace"))
        params = whm_merge(pairs)
        st.record({"method": self.command, "path": path, "query": query,
                   "headers": [[k, v] for k, v in self.headers.raw_items()],
                   "body": body.decode("latin-1"), "params": params,
                   "time": time.time(), "conn": self.conn_id,
                   "tls": self.connection.version()})
        with st.lock:
            beh = dict(st.behave)
        if beh.get("close_without_answer"):
            self.close_connection = True
            return
        if beh.get("raw_answer") is not None:
            # Exactly these bytes (latin-1) as the answer, then the close:
            # malformed heads and bodies for the client's parser.
            self.wfile.write(beh["raw_answer"].encode("latin-1"))
            self.wfile.flush()
            self.close_connection = True
            return
        self.answer(*self.api_response(path, dict(params), beh), beh)
        if beh.get("idle_close_ms"):
            # Keep the connection for the next request only this long, then
            # close it (close_notify and FIN), as WHM's own keep-alive does.
            self.connection.settimeout(beh["idle_close_ms"] / 1000)

    def api_response(self, path, params, beh):
        """(status, body bytes or (length, pieces), content type) for /json-api."""
        st = self.server.state
        m = re.fullmatch(r"/json-api/([^/]+)", path)
        if not m:
            return 404, b"Not Found\n", "text/plain"
        if self.command not in ("GET", "POST"):
            return 405, b"", "text/plain"
        if not st.token_ok(self.headers.get_all("Authorization") or []):
            return 403, ACCESS_DENIED, JSON_TYPE
        if params.get("api.version") != "1":
            v = params.get("api.version") or "0"
            return 200, {"error": f"api.version {v} not supported by stand-in"}, JSON_TYPE
        fn = m.group(1)
        if beh.get("not_json"):
            return 200, b"<html>cPanel login</html>", "text/html"
        if fn == "listaccts" and beh.get("body_bytes") is not None:
            return 200, big_listaccts(beh["body_bytes"], beh.get("metadata_first")), JSON_TYPE
        res = call(st, fn, params)
        return 200, metadata_first(res) if beh.get("metadata_first") else res, JSON_TYPE

    def answer(self, status, body, ctype, beh):
        """Send a /json-api response, applying delay/status/chunked/reset/drip."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
            body = body.encode("utf-8", "replace")
        if isinstance(body, bytes):
            length, pieces = len(body), (body[i:i + PIECE] for i in range(0, len(body), PIECE))
        else:
            length, pieces = body
        time.sleep(beh.get("delay_ms", 0) / 1000)
        self.send_response(beh.get("status", status))
        self.send_header("Content-Type", ctype)
        self.send_header("Set-Cookie", "cpsession=should-not-leak; path=/; secure; HttpOnly")
        self.send_header("X-Standin", "1")
        chunked = bool(beh.get("chunked"))
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if beh.get("reset_after_head"):
            return self.reset_connection()
        if self.command == "HEAD":
            return
        drip = beh.get("drip_ms", 0) / 1000
        for i, piece in enumerate(pieces):
            if i and drip:
                time.sleep(drip)
            if chunked:
                piece = b"%x\r\n%s\r\n" % (len(piece), piece)
            self.wfile.write(piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    def reset_connection(self):
        """Close with RST (SO_LINGER 0), no TLS close_notify, once the head is out."""
        time.sleep(0.1)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()     # the real close happens when rfile is closed

    def send_plain(self, status, text, ctype="text/plain"):
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, status, obj):
        self.send_plain(status, json.dumps(obj) + "\n", "application/json")

    # ------------------------------------------------------------ /__test

    def control(self, path, query, body):
        """Test-control endpoints; never recorded, never subject to behaviours."""
        st = self.server.state
        route = (self.command, path)
        if route == ("GET", "/__test/health"):
            return self.send_plain(200, "ok")
        if route == ("GET", "/__test/requests"):
            since = int(dict(parse_qsl(query)).get("since", "0") or 0)
            with st.lock:
                out = [r for r in st.requests if r["seq"] > since]
            return self.send_json(200, out)
        if route == ("POST", "/__test/reset"):
            st.reset()
            return self.send_json(200, {"ok": True})
        if route == ("GET", "/__test/behave"):
            with st.lock:
                return self.send_json(200, st.behave)
        if route == ("POST", "/__test/behave"):
            try:
                new = json.loads(body or b"{}")
                if not isinstance(new, dict):
                    raise ValueError("body must be a JSON object")
                for k, v in new.items():
                    want = BEHAVIOURS.get(k)
                    if want is None:
                        raise ValueError(f"unknown behaviour {k!r}")
                    if type(v) is not want or (want is int and v < 0):
                        kind = "true/false" if want is bool else "an integer >= 0"
                        raise ValueError(f"{k} must be {kind}")
            except ValueError as e:
                return self.send_json(400, {"ok": False, "error": str(e)})
            with st.lock:
                st.behave.update(new)
                cur = dict(st.behave)
            return self.send_json(200, {"ok": True, "behave": cur})
        return self.send_json(404, {"ok": False, "error": "no such control endpoint"})


# ---------------------------------------------------------------- server

class Server(ThreadingHTTPServer):
    """Accepts plain TCP; each connection's thread does its own TLS handshake."""
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr, ctx, state, verbose):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.ctx, self.state, self.verbose = ctx, state, verbose
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        request.settimeout(15)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # no 40 ms stalls
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except OSError as e:    # port probes (EOF, reset) only shown with --verbose
            if self.verbose or not isinstance(e, (ssl.SSLEOFError, ConnectionError)):
                log(f"TLS handshake from {client_address[0]} failed: {e}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, ssl.SSLError, TimeoutError)):
            if self.verbose:
                log(f"{client_address[0]}: {type(e).__name__}: {e}")
        else:
            log(f"error on connection from {client_address[0]}: {type(e).__name__}: {e}")


def load_tokens(path, default_user):
    """`USER:TOKEN` per line (a bare TOKEN means --user); blanks and # ignored."""
    tokens = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, _, tok = line.rpartition(":")
            user = user or default_user
            if not re.fullmatch(r"[0-9A-Z]{32}", tok):
                log(f"warning: token for {user} is not 32 characters of [0-9A-Z]")
            tokens.add(f"{user}:{tok}")
    if not tokens:
        raise SystemExit(f"whm-standin: no tokens in {path}")
    return tokens


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"whm-standin: --listen wants HOST:PORT, got {s!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(description="WHM API 1 stand-in for whmgate tests")
    ap.add_argument("--listen", default="127.0.0.1:2087", help="HOST:PORT (port 0: any)")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--user", default="root", help="user for bare-token lines")
    ap.add_argument("--log", help="append each recorded request as a JSON line")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    state = State(load_tokens(args.token_file, args.user), args.log)
    srv = Server(parse_listen(args.listen), ctx, state, args.verbose)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = srv.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"whm-standin listening on {shown}:{port}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
