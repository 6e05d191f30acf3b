#!/usr/bin/env python3
"""whmgate integration tests.

  python3 tests/integration/run.py --bin build/whmgate [-k SUBSTRING]

Discovers the test_* functions of tests/integration/test_*.py (in file and
definition order), runs each with a fresh lib.Ctx, prints `ok NAME` or
`FAIL NAME: reason` (plus the tail of whmgate's stderr), and ends with
`N passed, N failed`. Exit 1 if anything failed.

WHMGATE_WRAPPER (e.g. "valgrind --leak-check=full --error-exitcode=99
--errors-for-leak-kinds=definite") prefixes every whmgate command. Every
whmgate is stopped with SIGTERM at the end of its test and must exit 0.
WHMGATE_KEEP_TMP=1 keeps the temp dir (configs, audit files, stderr).
"""
import argparse
import atexit
import glob
import importlib.util
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lib  # noqa: E402


def discover(pattern):
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for fname, fn in vars(mod).items():
            if fname.startswith("test_") and callable(fn):
                if pattern is None or pattern in fname:
                    tests.append((fname, fn))
    return tests


def reason_of(exc):
    """One line: the message and where in a test file it was raised."""
    where = ""
    for fr in reversed(traceback.extract_tb(exc.__traceback__)):
        if os.path.basename(fr.filename).startswith("test_"):
            where = f" ({os.path.basename(fr.filename)}:{fr.lineno})"
            break
    msg = str(exc).strip().replace("\n", " | ")
    if not isinstance(exc, AssertionError) or not msg:
        msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    if len(msg) > 600:
        msg = msg[:600] + "..."
    return msg + where


def run_one(session, name, fn):
    """Returns (ok, line, extra lines)."""
    ctx = None
    reason = None
    try:
        session.standin.reset()
        ctx = lib.Ctx(session, name)
        fn(ctx)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:     # noqa: BLE001 - any failure is the test's
        reason = reason_of(e)
    finally:
        problems = ctx.close() if ctx else []
    if reason is None and problems:
        reason = "; ".join(problems)
    notes = f" ({'; '.join(ctx.notes)})" if ctx and ctx.notes else ""
    if reason is None:
        return True, f"ok {name}{notes}", []
    extra = ["    " + l for l in (ctx.stderr_tail() if ctx else [])]
    return False, f"FAIL {name}: {reason}{notes}", extra


def main():
    ap = argparse.ArgumentParser(description="whmgate integration tests")
    ap.add_argument("--bin", default="build/whmgate")
    ap.add_argument("-k", default=None, help="run only tests whose name contains this")
    a = ap.parse_args()

    atexit.register(lib.kill_all)
    # SIGTERM/SIGHUP to the runner: unwind through the finally blocks.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    tests = discover(a.k)
    passed = failed = 0
    t0 = time.monotonic()
    session = None
    try:
        try:
            session = lib.Session(a.bin, os.environ.get("WHMGATE_WRAPPER"))
        except Exception as e:  # noqa: BLE001
            for name, _ in tests:
                print(f"FAIL {name}: set-up failed: {reason_of(e)}", flush=True)
            failed = len(tests)
        else:
            for name, fn in tests:
                ok, line, extra = run_one(session, name, fn)
                print(line, flush=True)
                for x in extra:
                    print(x, flush=True)
                passed += ok
                failed += not ok
    except (KeyboardInterrupt, SystemExit):
        print("interrupted", flush=True)
        failed += 1
    finally:
        if session:
            session.close()
        lib.kill_all()
    print(f"# {time.monotonic() - t0:.1f} s", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
