"""fork() and the Go runtime (issue 10, item 5): the library loads on first
use, not at import, so a process may fork before using gunmetal; a child
forked after the load fails every call at once with ForkError (saying what to
do) instead of hanging. Each case runs in a fresh interpreter with a timeout,
so a hang fails the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import SRC, Server

COMMON = r'''
import multiprocessing, os, sys
import gunmetal

PORT = int(sys.argv[1])

def loaded():
    with open("/proc/self/maps") as f:
        return any("libgunmetal" in line for line in f)

def fetch(n):
    with gunmetal.open("127.0.0.1", PORT, retry=0) as c:
        c.await_up(5)
        return c.await_body(c.get("/bytes/%d" % n), 5).body

def try_fetch(n):
    try:
        return fetch(n)
    except gunmetal.ForkError as e:
        return "ForkError: " + str(e)

def wait_child(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
'''

FORK_BEFORE_USE = COMMON + r'''
assert not loaded(), "import gunmetal loaded the library"
pid = os.fork()
if pid == 0:
    ok = fetch(3) == b"abc"
    os._exit(0 if ok else 3)
assert wait_child(pid) == 0
with multiprocessing.get_context("fork").Pool(2) as pool:
    assert pool.map(fetch, [1, 2, 3, 4]) == [b"a", b"ab", b"abc", b"abcd"]
assert not loaded()
assert fetch(2) == b"ab"  # and the parent uses it after its children
assert loaded()
print("OK")
'''

FORK_AFTER_USE = COMMON + r'''
conn = gunmetal.open("127.0.0.1", PORT, retry=0)
conn.await_up(5)
assert fetch(1) == b"a" and loaded()
pid = os.fork()
if pid == 0:
    # every call fails at once, with what to do
    for call in (lambda: fetch(1), lambda: conn.get("/"), lambda: conn.await_up(1),
                 lambda: conn.queue.poll(1, 1), gunmetal.Queue, gunmetal.version):
        try:
            call()
        except gunmetal.ForkError as e:
            assert 'set_start_method("spawn")' in str(e), str(e)
            assert "forkserver" in str(e) and "fork" in str(e)
        else:
            os._exit(4)
    conn.close()  # forgets the parent's handle; no call into the library
    sys.exit(0)   # the interpreter's own exit (finalizers) must not hang either
assert wait_child(pid) == 0
with multiprocessing.get_context("fork").Pool(2) as pool:
    out = pool.map(try_fetch, [1, 2])
assert all(o.startswith("ForkError: gunmetal cannot be used in a process forked") for o in out), out
assert conn.await_body(conn.get("/bytes/2"), 5).body == b"ab"  # the parent goes on
conn.close()
print("OK")
'''


def _run(script: str, server: Server) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    # A session of its own, so that a hung child (the bug) is killed with it.
    p = subprocess.Popen([sys.executable, "-c", script, str(server.http)], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("hung: no answer in 60 s")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # children left behind, if any
        except ProcessLookupError:
            pass
    assert p.returncode == 0 and out.strip() == "OK", f"rc {p.returncode}\n{out}\n{err}"


def test_import_then_fork_before_use_works(server: Server) -> None:
    _run(FORK_BEFORE_USE, server)


def test_use_then_fork_fails_at_once_in_the_child(server: Server) -> None:
    _run(FORK_AFTER_USE, server)
