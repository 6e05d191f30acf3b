#!/usr/bin/env python3
"""Small helpers for tests/bench/run.sh (Python 3 standard library only).

  helper.py ports N                 print N free TCP ports on 127.0.0.1
  helper.py bodies DIR              write the WHM-shaped JSON bodies under DIR/json-api/
  helper.py fsync DIR [N]           median time of fdatasync after appending a line in DIR
  helper.py probe [--reset] PID...  per process tree: "<cpu s> <sum of VmHWM kB> <processes>"
                                    (--reset: reset VmHWM with clear_refs 5 first)
  helper.py row --out F ...         parse one wrk --latency output into a JSON line in F
  helper.py table ROWS HEADER       print the markdown table (HEADER: a file of lines to put first)
"""
import argparse
import json
import os
import re
import socket
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cmd_ports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def account(i):
    return {
        "user": "cust%d" % i, "domain": "cust%d.example.com" % i,
        "email": "admin@cust%d.example.com" % i, "plan": "basic" if i % 3 else "pro",
        "ip": "192.0.2.%d" % (10 + i % 200), "owner": "root", "partition": "home",
        "diskused": "%dM" % (i * 7 % 900), "disklimit": "unlimited",
        "suspended": 0, "suspendreason": "not suspended", "theme": "jupiter",
        "startdate": "24 Jan 15 10:12", "unix_startdate": 1737713520 + i,
        "maxaddons": "unlimited", "maxsql": "unlimited", "shell": "/bin/bash",
    }


def whm_body(command, accts):
    return json.dumps({
        "data": {"acct": accts},
        "metadata": {"command": command, "reason": "OK", "result": 1, "version": 1},
    }, separators=(",", ":")).encode() + b"\n"


def cmd_bodies(a):
    d = os.path.join(a.dir, "json-api")
    os.makedirs(d, exist_ok=True)
    small = whm_body("listaccts", [account(1)])
    accts, size, i = [], 100, 0
    while size < 1 << 20:
        i += 1
        accts.append(account(i))
        size += len(json.dumps(account(i), separators=(",", ":"))) + 1
    big = whm_body("bigdump", accts)
    for name, body in (("listaccts", small), ("bigdump", big)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(body)
    print("listaccts %d bytes, bigdump %d bytes (%d accounts)" % (len(small), len(big), i))


def cmd_fsync(a):
    """Median fdatasync of one appended 700-byte line in DIR: what fsync=always pays."""
    path = os.path.join(a.dir, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ts = []
    try:
        for _ in range(a.n):
            os.write(fd, b"x" * 699 + b"\n")
            t = time.perf_counter()
            os.fdatasync(fd)
            ts.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.unlink(path)
    ts.sort()
    print("%.2f ms median, %.2f ms p90" % (ts[len(ts) // 2] * 1e3, ts[len(ts) * 9 // 10] * 1e3))


def tree(root):
    """root and its descendants, from /proc/PID/task/TID/children."""
    seen, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in seen or not os.path.isdir("/proc/%d" % p):
            continue
        seen.append(p)
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return seen


def cpu_ticks(pid):
    """utime+stime of a process, all its threads included."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return 0
    rest = st[st.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])     # fields 14 and 15


def hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_probe(a):
    """One line per root: cpu seconds, summed VmHWM kB, number of processes.
    With --reset, VmHWM of every process is reset (clear_refs 5) first."""
    for root in a.pids:
        pids = tree(root)
        if a.reset:
            for p in pids:
                try:
                    with open("/proc/%d/clear_refs" % p, "w") as f:
                        f.write("5")
                except OSError as e:
                    print("reset %d: %s" % (p, e), file=sys.stderr)
        cpu = sum(cpu_ticks(p) for p in pids) / CLK_TCK
        print("%.2f %d %d" % (cpu, sum(hwm_kb(p) for p in pids), len(pids)))


UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}


def ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNIT[m.group(2)]


def parse_wrk(text):
    r = {"requests": 0, "rps": 0.0, "p50": None, "p99": None, "non2xx": 0,
         "sock": {}}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+), ([0-9.]+\w+) read", text, re.M)
    if m:
        r["requests"] = int(m.group(1))
        r["read"] = m.group(3)
    m = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.M)
    if m:
        r["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s*%s(?:\.000)?%%\s+(\S+)" % pct, text, re.M)
        if m:
            r["p" + pct] = ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["sock"] = {k: int(v) for k, v in zip(("connect", "read", "write", "timeout"),
                                                m.groups()) if int(v)}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def cmd_row(a):
    with open(a.wrk) as f:
        w = parse_wrk(f.read())
    row = dict(vars(a))
    del row["func"]
    row.update(w)
    n = max(w["requests"], 1)
    row["cpu10k"] = (a.cpu1 - a.cpu0) / n * 1e4
    row["upcpu10k"] = (a.upcpu1 - a.upcpu0) / n * 1e4 if a.upcpu1 >= 0 else None
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    errs = w["non2xx"] + sum(w["sock"].values())
    print("   %-22s %-10s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  cpu/10k %.2f s  "
          "rss %d kB  errors %d" % (a.contender, a.body, a.conns, w["rps"], w["p50"] or 0,
                                    w["p99"] or 0, row["cpu10k"], a.rss, errs))
    # Exit 3 when every request failed (or none completed): run.sh counts it.
    sys.exit(3 if w["requests"] == 0 or errs >= w["requests"] else 0)


def errors_text(r):
    if r.get("note"):
        return r["note"]
    parts = []
    if r["non2xx"]:
        parts.append("%d HTTP >= 400" % r["non2xx"])
    for k, v in r["sock"].items():
        parts.append("%d %s" % (v, k))
    if r["requests"] == 0:
        parts.append("no responses")
    return ", ".join(parts) if parts else "0"


def median_rows(rows):
    """One row per (contender, body, conns), in first-seen order: the round
    with the median req/s (the lower middle of an even count), with the
    lowest and highest req/s of all its rounds."""
    groups = {}
    for r in rows:
        groups.setdefault((r["contender"], r["body"], r["conns"]), []).append(r)
    out = []
    for g in groups.values():
        g = sorted(g, key=lambda r: r["rps"])
        m = dict(g[(len(g) - 1) // 2])
        m["rounds"], m["rps_lo"], m["rps_hi"] = len(g), g[0]["rps"], g[-1]["rps"]
        out.append(m)
    return out


def goals(rows):
    """The ratios issue 6 asks for, from the medians of this run."""
    at = {(r["contender"], r["body"], r["conns"]): r for r in rows}

    def get(who, conns=64, body="listaccts"):
        for (c, b, n), r in at.items():
            if c.startswith(who) and b == body and n == conns and r["rps"] > 0:
                return r
        return None
    never, always = get("(b) whmgate fsync=never"), get("(b) whmgate fsync=always")
    ng, hp = get("(c) nginx"), get("(d) HAProxy")
    out = []
    if never and ng:
        out.append("- whmgate (never) / nginx, req/s at 64 connections: %.2f" % (never["rps"] / ng["rps"]))
    if never and hp:
        out.append("- whmgate (never) / HAProxy, req/s at 64 connections: %.2f" % (never["rps"] / hp["rps"]))
    if never and always:
        out.append("- whmgate always / never, req/s at 64 connections: %.2f" % (always["rps"] / never["rps"]))
    if never and ng and never["p99"] and ng["p99"]:
        out.append("- p99 at 64 connections: whmgate %.2f ms, nginx %.2f ms (ratio %.2f)" % (
            never["p99"], ng["p99"], never["p99"] / ng["p99"]))
    return out


def cmd_table(a):
    rows = median_rows([json.loads(line) for line in open(a.rows) if line.strip()])
    base = {(r["body"], r["conns"]): r["rps"] for r in rows if r["base"]}
    with open(a.header) as f:
        out = [f.read().rstrip("\n"), ""]
    out.append("| contender | body | conns | req/s | req/s range | vs (a) | p50 ms | p99 ms | "
               "CPU s/10k req | upstream CPU s/10k | peak RSS MB | log lines/req | errors |")
    out.append("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        b = base.get((r["body"], r["conns"]))
        ratio = "%.2f" % (r["rps"] / b) if b else "-"
        f2 = lambda v: "-" if v is None else ("%.2f" % v if v < 100 else "%.0f" % v)
        up = "-" if r["upcpu10k"] is None or r["base"] else "%.2f" % r["upcpu10k"]
        ll = "-" if r.get("loglines") is None else "%.2f" % (r["loglines"] / max(r["requests"], 1))
        spread = "%.0f-%.0f" % (r["rps_lo"], r["rps_hi"]) if r["rounds"] > 1 else "-"
        out.append("| %s | %s | %d | %.0f | %s | %s | %s | %s | %.2f | %s | %.1f | %s | %s |" % (
            r["contender"], r["body"], r["conns"], r["rps"], spread, ratio, f2(r["p50"]),
            f2(r["p99"]), r["cpu10k"], up, r["rss"] / 1024.0, ll, errors_text(r)))
    g = goals(rows)
    if g:
        out += ["", "Goals (medians of this run):", ""] + g
    print("\n".join(out))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(required=True)
    s = sub.add_parser("ports"); s.add_argument("n", type=int); s.set_defaults(func=cmd_ports)
    s = sub.add_parser("bodies"); s.add_argument("dir"); s.set_defaults(func=cmd_bodies)
    s = sub.add_parser("fsync"); s.add_argument("dir"); s.add_argument("n", type=int, nargs="?", default=50)
    s.set_defaults(func=cmd_fsync)
    s = sub.add_parser("probe"); s.add_argument("--reset", action="store_true")
    s.add_argument("pids", type=int, nargs="+"); s.set_defaults(func=cmd_probe)
    s = sub.add_parser("row")
    s.add_argument("--out", required=True); s.add_argument("--wrk", required=True)
    s.add_argument("--round", type=int, default=1)
    s.add_argument("--contender", required=True); s.add_argument("--body", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--base", action="store_true")
    s.add_argument("--cpu0", type=float, required=True)
    s.add_argument("--cpu1", type=float, required=True)
    s.add_argument("--upcpu0", type=float, default=-1)
    s.add_argument("--upcpu1", type=float, default=-1)
    s.add_argument("--rss", type=int, required=True)
    s.add_argument("--loglines", type=int, default=None)
    s.set_defaults(func=cmd_row)
    s = sub.add_parser("table"); s.add_argument("rows"); s.add_argument("header")
    s.set_defaults(func=cmd_table)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
