#!/usr/bin/env python3
"""A small stand-in for systemctl and journalctl, for the README
walk-through test (systemd is not PID 1 where the tests run). Installed as
both names; state (main pid, captured stderr) lives in $FAKE_SYSTEMD.

It runs the installed unit the way systemd would for the settings
whmgate.service uses: User=/Group=, EnvironmentFile= (a leading '-': may be
missing), StateDirectory=/LogsDirectory= (created, owned by User=, with
their *Mode=), WorkingDirectory=, UMask=, ExecStartPre= (must succeed),
ExecStart= with Type=notify (started once READY=1 arrives on
NOTIFY_SOCKET; stderr is "the journal": JOURNAL_STREAM names it),
ExecReload= ($MAINPID), and `kill --signal=SIG`. Anything else exits 2.

  systemctl enable --now UNIT | start UNIT | reload UNIT | stop UNIT
  systemctl kill [--kill-who=main] --signal=SIGNAL UNIT
  systemctl daemon-reload
  journalctl -u UNIT [-p PRIORITY]
"""
import os
import pwd
import grp
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

STATE = os.environ.get("FAKE_SYSTEMD", "/run/fake-systemd")
UNITDIR = "/lib/systemd/system"
PRIOS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]


def unit_name(arg):
    return arg if arg.endswith(".service") else arg + ".service"


def parse_unit(name):
    out = {}
    with open(os.path.join(UNITDIR, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def one(u, k, default=None):
    return u.get(k, [default])[-1]


def environment(u, pw):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
           "LANG": "C.UTF-8"}
    for ef in u.get("EnvironmentFile", []):
        optional = ef.startswith("-")
        path = ef[1:] if optional else ef
        try:
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#") and "=" in line:
                        k, _, v = line.partition("=")
                        env[k.strip()] = v.strip().strip('"')
        except FileNotFoundError:
            if not optional:
                raise
    return env


def dropper(pw, gid, umask):
    def run():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(pw.pw_uid)
        os.umask(umask)
    return run


def setup(u):
    pw = pwd.getpwnam(one(u, "User", "root"))
    gid = grp.getgrnam(one(u, "Group", pw.pw_name)).gr_gid
    for key, base in (("StateDirectory", "/var/lib"), ("LogsDirectory", "/var/log")):
        mode = int(one(u, key + "Mode", "0755"), 8)
        for d in u.get(key, []):
            path = os.path.join(base, d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, pw.pw_uid, gid)
            os.chmod(path, mode)
    umask = int(one(u, "UMask", "0022"), 8)
    return pw, environment(u, pw), dropper(pw, gid, umask), one(u, "WorkingDirectory", "/")


def run_exec(line, env, drop, cwd, mainpid=None):
    ignore = line.startswith("-")
    if ignore:
        line = line[1:]
    if mainpid is not None:
        line = line.replace("$MAINPID", str(mainpid))
    r = subprocess.run(shlex.split(line), env=env, preexec_fn=drop, cwd=cwd,
                       capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return 0 if ignore else r.returncode


def mainpid():
    with open(os.path.join(STATE, "mainpid")) as f:
        return int(f.read())


def start(name):
    u = parse_unit(name)
    pw, env, drop, cwd = setup(u)
    for line in u.get("ExecStartPre", []):
        rc = run_exec(line, env, drop, cwd)
        if rc != 0:
            print(f"fake systemctl: ExecStartPre failed ({rc}): {line}", file=sys.stderr)
            return 1
    os.makedirs(STATE, exist_ok=True)
    name_ = f"fake-systemd-{os.getpid()}"
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind("\0" + name_)
    journal = os.path.join(STATE, "journal")
    with open(journal, "ab") as jf:
        st = os.fstat(jf.fileno())
        env = dict(env, NOTIFY_SOCKET="@" + name_,
                   JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        p = subprocess.Popen(shlex.split(one(u, "ExecStart")), env=env, preexec_fn=drop,
                             cwd=cwd, stdin=subprocess.DEVNULL, stdout=jf, stderr=jf,
                             start_new_session=True)
    with open(os.path.join(STATE, "mainpid"), "w") as f:
        f.write(str(p.pid))
    if one(u, "Type", "simple") != "notify":
        return 0
    deadline = time.monotonic() + 20
    ns.settimeout(0.2)
    while time.monotonic() < deadline:
        if p.poll() is not None:
            print(f"fake systemctl: {name} exited {p.returncode} before READY=1",
                  file=sys.stderr)
            return 1
        try:
            msg = ns.recv(4096).decode()
        except socket.timeout:
            continue
        with open(os.path.join(STATE, "notify"), "a") as f:
            f.write(msg.replace("\n", " ") + "\n")
        if "READY=1" in msg.split("\n"):
            return 0
    print(f"fake systemctl: no READY=1 from {name}", file=sys.stderr)
    return 1


def systemctl(argv):
    args = [a for a in argv if not a.startswith("--") or a.startswith("--signal")]
    if args[:1] == ["daemon-reload"]:
        return 0
    if args[:1] == ["enable"] and "--now" in argv:
        return start(unit_name(args[1]))
    if args[:1] == ["start"]:
        return start(unit_name(args[1]))
    if args[:1] == ["reload"]:
        u = parse_unit(unit_name(args[1]))
        pw, env, drop, cwd = setup(u)
        rc = 0
        for line in u.get("ExecReload", []):
            rc = rc or run_exec(line, env, drop, cwd, mainpid=mainpid())
        return rc
    if args[:1] == ["kill"]:
        sig = next(a.split("=", 1)[1] for a in args if a.startswith("--signal="))
        os.kill(mainpid(), getattr(signal, sig if sig.startswith("SIG") else "SIG" + sig))
        return 0
    if args[:1] == ["stop"]:
        pid = mainpid()
        os.kill(pid, signal.SIGTERM)
        for _ in range(400):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return 0
            time.sleep(0.05)
        return 1
    print(f"fake systemctl: not understood: {argv}", file=sys.stderr)
    return 2


def journalctl(argv):
    level = 7
    if "-p" in argv:
        p = argv[argv.index("-p") + 1]
        level = int(p) if p.isdigit() else PRIOS.index(p)
    try:
        with open(os.path.join(STATE, "journal"), errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in lines:
        m = re.match(r"<([0-7])>(.*)", line)
        prio, text = (int(m.group(1)), m.group(2)) if m else (6, line)
        if prio <= level:
            print(text)
    return 0


if __name__ == "__main__":
    me = os.path.basename(sys.argv[0])
    sys.exit(journalctl(sys.argv[1:]) if me == "journalctl" else systemctl(sys.argv[1:]))
