#!/usr/bin/env python3
"""Runs every test suite and prints the total as its last line:
'N passed, N failed'. Exit 0 only when nothing failed.

Suites: each build/test_* unit binary, then the integration suite
(tests/integration/run.py), then (--tsan-build) its multi-worker tests on
a ThreadSanitizer build. Each suite ends its output with its own
'N passed, N failed' line, which is summed here."""
import argparse
import glob
import os
import re
import subprocess
import sys

LINE = re.compile(r"^(\d+) passed, (\d+) failed")


def run(name, cmd, env=None):
    print(f"== {name}", flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env)
    out = proc.stdout
    sys.stdout.write(out)
    passed = failed = 0
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            passed, failed = int(m.group(1)), int(m.group(2))
    if proc.returncode != 0 and failed == 0:
        print(f"{name}: exited {proc.returncode} without reporting a failure")
        failed = 1
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--san-build", default=None,
                    help="also run the unit and integration tests of this "
                         "ASan/UBSan build")
    ap.add_argument("--tsan-build", default=None,
                    help="also run the multi-worker integration tests of "
                         "this ThreadSanitizer build")
    ap.add_argument("--unit-only", action="store_true")
    ap.add_argument("-k", default=None, help="integration tests matching this")
    ap.add_argument("--fuzz-seconds", type=int, default=0,
                    help="run each fuzz target this long (0: skip)")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    os.chdir(root)
    total_p = total_f = 0
    builds = [a.build] + ([a.san_build] if a.san_build else [])
    for build in builds:
        for binary in sorted(glob.glob(os.path.join(build, "test_*"))):
            if not os.access(binary, os.X_OK) or binary.endswith(".o"):
                continue
            p, f = run(binary, [binary])
            total_p += p
            total_f += f
    if a.fuzz_seconds and not a.unit_only:
        p, f = run("fuzz", ["tests/fuzz/run.sh", str(a.fuzz_seconds),
                            "http", "params", "policy", "conf", "outcome", "records"])
        total_p += p
        total_f += f
    if not a.unit_only:
        for build in builds:
            env = dict(os.environ)
            if build == a.san_build:
                env["WHMGATE_SANITIZED"] = "1"
            cmd = [sys.executable, "tests/integration/run.py", "--bin",
                   os.path.join(build, "whmgate")]
            if a.k:
                cmd += ["-k", a.k]
            p, f = run(f"integration ({build})", cmd, env)
            total_p += p
            total_f += f
    if a.tsan_build and not a.unit_only:
        # The tests where workers share the audit, the conf and the
        # process: TSan reports a race as a non-zero exit at stop.
        env = dict(os.environ, WHMGATE_SANITIZED="1", TSAN_OPTIONS=(
            f"suppressions={os.path.join(here, 'tsan.supp')} halt_on_error=0"))
        cmd = [sys.executable, "tests/integration/run.py", "--bin",
               os.path.join(a.tsan_build, "whmgate"), "-k", "workers"]
        p, f = run(f"integration, workers ({a.tsan_build})", cmd, env)
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
