"""The Python runner of the scenario suite (tests/scenarios): one test per
scenario file, played through the binding's public API (gunmetal.open,
Connection.request/data/cancel/update_flow/ws_upgrade/ws_send/ping/
set_owner/shutdown/close, Queue.poll) against the scenario server
(tests/scenarios/server), compared by the rules of tests/scenarios/README.md
(the Go runner's, scenarios_test.go)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import socket
import subprocess
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import gunmetal
from conftest import REPO, _start_json_server, _stop

CASES = os.path.join(REPO, "tests", "scenarios", "cases")
WAIT = 10.0  # each expect block: generous, loaded machine

ERR_CLASS = {
    0: "ok", -1: "einval", -3: "eclosed", -4: "etimeout", -5: "eoption", -6: "enostream",
    -7: "enotup", -8: "ebadstate", -9: "eunsupported",
}
KINDS = {1: "up", 2: "down", 3: "exit", 4: "inform", 5: "response", 6: "data", 7: "trailers",
         8: "push", 9: "error", 10: "upgrade", 11: "ws", 12: "notify", 13: "tunnel_up", 14: "trace", 15: "sse"}
WS_OPS = {1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
WS_OP_CODES = {v: k for k, v in WS_OPS.items()}


def _load() -> List[Dict[str, Any]]:
    out = []
    for f in sorted(glob.glob(os.path.join(CASES, "*.json"))):
        with open(f) as fh:
            out.append(json.load(fh))
    return out


SCENARIOS = _load()


@pytest.fixture(scope="module")
def scen_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    # Always built (Go's cache makes it quick): a stale binary would play
    # old scripts.
    binary = str(tmp_path_factory.mktemp("scen") / "scenserver")
    subprocess.run(["go", "build", "-o", binary, "./tests/scenarios/server"], cwd=REPO, check=True)
    p, info = _start_json_server([binary, "-dir", CASES])
    yield info
    _stop(p)


class Unit:
    """One event as compared; DATA of a stream in a row merges into one."""

    def __init__(self, ev: gunmetal.Event) -> None:
        self.kind = KINDS.get(int(ev.kind), "?")
        self.conn = ev.conn
        self.ref = ev.ref
        self.new_ref = ev.new_ref
        self.fin = bool(ev.fin)
        self.status = ev.status if self.kind != "ws" else 0
        self.protocol = ev.protocol or ""
        self.reason = ev.reason or ""
        self.method = ev.method or ""
        self.uri = ev.uri or ""
        self.op = WS_OPS.get(ev.ws_opcode, "") if self.kind == "ws" else ""
        self.code = ev.status if self.op == "close" else 0
        self.headers = [(h[0], h[1]) for h in ev.headers]
        self.data = bytes(ev.data or b"")
        self.killed = list(ev.killed or [])


class Runner:
    def __init__(self, sc: Dict[str, Any], info: Dict[str, Any]) -> None:
        self.sc = sc
        self.info = info
        self.queues: Dict[str, gunmetal.Queue] = {}
        self.conns: Dict[str, gunmetal.Connection] = {}
        self.refs: Dict[str, int] = {}
        self.names: Dict[int, str] = {}
        self.authority = ""

    # ---- state

    def queue(self, name: Optional[str]) -> gunmetal.Queue:
        name = name or "main"
        if name not in self.queues:
            self.queues[name] = gunmetal.Queue()
        return self.queues[name]

    def conn(self, name: Optional[str]) -> gunmetal.Connection:
        return self.conns[name or "c"]

    def bind(self, name: Optional[str], ref: int) -> None:
        if name:
            self.refs[name] = ref
            self.names[ref] = name

    def ref(self, name: str) -> int:
        return 0 if name == "-" else self.refs[name]  # "-": the raw protocol's stream (ref 0)

    def ref_name(self, ref: int) -> str:
        return "-" if ref == 0 else self.names.get(ref, f"#{ref}")

    def port(self) -> int:
        kind = self.sc["server"]
        if kind == "http":
            return int(self.info["http"])
        if kind == "https":
            return int(self.info["https"])
        if kind == "script":
            return int(self.info["scripts"][self.sc["name"]])
        if kind == "closed":
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            s.close()
            return int(p)
        raise AssertionError(f"unknown server {kind}")

    def close_all(self) -> None:
        for c in self.conns.values():
            c.close()
        for q in self.queues.values():
            while q.poll(64, 0):
                pass
            q.close()

    # ---- calls

    def call(self, st: Dict[str, Any]) -> None:
        name = st["call"]
        hs = [(h[0], h[1]) for h in st.get("headers", [])]
        if name == "open":
            port = self.port()
            self.authority = f"127.0.0.1:{port}"
            opts = st.get("options", self.sc.get("options", {}))
            # "{ca}": the test CA's file, which the https server's certificate chains to
            opts = json.loads(json.dumps(opts).replace("{ca}", self.info["ca"]))
            self.conns[st.get("conn", "c")] = gunmetal.open(
                "127.0.0.1", port, owner=self.queue(st.get("queue")), **opts)
            return
        c = self.conn(st.get("conn"))
        if name == "request":
            body = st["body"].encode() if "body" in st else None
            timeout = st["timeout_ms"] / 1000 if "timeout_ms" in st else None
            reply_to = self.queue(st["reply_to"]) if "reply_to" in st else None
            ref = c.request(st.get("method", "GET"), st.get("path", ""), hs, body, stream=st.get("stream", False),
                            timeout=timeout, flow=st.get("flow"), reply_to=reply_to)
            self.bind(st.get("ref"), ref)
        elif name == "ws_upgrade":
            reply_to = self.queue(st["reply_to"]) if "reply_to" in st else None
            self.bind(st.get("ref"), c.ws_upgrade(st.get("path", ""), hs, reply_to=reply_to))
        elif name == "ping":
            self.bind(st.get("ref"), c.ping())
        elif name == "set_owner":
            c.set_owner(self.queue(st.get("queue")))
        elif name == "shutdown":
            c.shutdown()
        elif name == "close":
            c.close()
        elif name == "flush":  # a stream's events, or else the connection's
            n = self.queue(st.get("queue")).flush(self.ref(st["ref"]) if "ref" in st else c)
            assert "dropped" not in st or n == st["dropped"], f"flush dropped {n} events, want {st['dropped']}"
        elif name == "data":
            c.data(self.ref(st["ref"]), st.get("data", "").encode(), fin=st.get("fin", False))
        elif name == "cancel":
            c.cancel(self.ref(st["ref"]))
        elif name == "update_flow":
            c.update_flow(self.ref(st["ref"]), st.get("n", 0))
        elif name == "ws_send":
            frames = [gunmetal.WSFrame(gunmetal.WSOpcode(WS_OP_CODES[f["op"]]), f.get("data", "").encode(),
                                       f.get("code", 0)) for f in st["frames"]]
            c.ws_send(self.ref(st["ref"]), frames)
        else:
            raise AssertionError(f"unknown call {name}")

    # ---- expect

    @staticmethod
    def closed(units: List[Unit], exp: List[Dict[str, Any]], i: int) -> bool:
        u = units[i]
        if u.kind != "data" or u.fin or i < len(units) - 1:
            return True
        if i < len(exp):
            e = exp[i]
            return "size" in e and e.get("fin") is False and len(u.data) >= e["size"]
        return False

    def add(self, units: List[Unit], exp: List[Dict[str, Any]], u: Unit) -> None:
        if units and u.kind == "data" and units[-1].kind == "data" and units[-1].ref == u.ref \
                and not self.closed(units, exp, len(units) - 1):
            units[-1].data += u.data
            units[-1].fin = u.fin
            return
        units.append(u)

    def complete(self, units: List[Unit], exp: List[Dict[str, Any]]) -> bool:
        return len(units) > len(exp) or (len(units) == len(exp) and (not units or self.closed(units, exp, len(units) - 1)))

    def match_ref(self, name: Optional[str], ref: int) -> bool:
        if name is None:
            return True
        if name == "-":
            return ref == 0
        if name in self.refs:
            return self.refs[name] == ref
        if ref == 0 or ref in self.names:
            return False
        self.bind(name, ref)  # a ref the server made (push)
        return True

    def match(self, e: Dict[str, Any], u: Unit) -> bool:
        if "name" in e and (u.kind != "trace" or e["name"] != u.reason):
            return False
        if e["ev"] != u.kind or not self.match_ref(e.get("ref"), u.ref) or not self.match_ref(e.get("new_ref"), u.new_ref):
            return False
        if "conn" in e and self.conns.get(e["conn"]) is not u.conn:
            return False
        checks = [
            ("fin", lambda v: v == u.fin), ("status", lambda v: v == u.status),
            ("protocol", lambda v: v == u.protocol), ("reason", lambda v: u.reason.startswith(v)),
            ("method", lambda v: v == u.method), ("op", lambda v: v == u.op), ("code", lambda v: v == u.code),
            ("uri", lambda v: v.replace("{authority}", self.authority) == u.uri),
            ("headers", lambda v: all((k, x) in u.headers for k, x in v.items())),
            ("size", lambda v: v == len(u.data)), ("body", lambda v: v.encode() == u.data),
            ("sha256", lambda v: v == hashlib.sha256(u.data).hexdigest()),
            ("killed", lambda v: sorted(self.refs.get(n, -1) for n in v) == sorted(u.killed)),
        ]
        return all(f(e[k]) for k, f in checks if k in e)

    @staticmethod
    def render_exp(e: Dict[str, Any]) -> str:
        s = [e["ev"]]
        if "name" in e:
            s.append(e["name"])
        for k in ("ref", "new_ref"):
            if k in e:
                s.append(("new=" if k == "new_ref" else "") + e[k])
        if "fin" in e:
            s.append("fin" if e["fin"] else "nofin")
        for k in ("status", "protocol", "op", "code", "reason", "method", "uri", "size", "body", "sha256"):
            if k in e:
                s.append(f"{k}={e[k]!r}"[:60])
        for k, v in sorted(e.get("headers", {}).items()):
            s.append(f"{k}={v}")
        if "killed" in e:
            s.append("killed=[" + ",".join(e["killed"]) + "]")
        return " ".join(s)

    def render(self, u: Unit) -> str:
        s = [u.kind]
        if u.ref:
            s.append(self.ref_name(u.ref))
        if u.new_ref:
            s.append("new=" + self.ref_name(u.new_ref))
        if u.kind in ("response", "data", "inform", "trailers", "sse"):
            s.append("fin" if u.fin else "nofin")
        if u.status:
            s.append(str(u.status))
        for v in (u.protocol, u.op):
            if v:
                s.append(v)
        if u.op == "close":
            s.append(f"code={u.code}")
        if u.reason:
            s.append(f"reason={u.reason!r}")
        if u.method or u.uri:
            s += [u.method, u.uri]
        if u.kind == "down":
            s.append("killed=[" + ",".join(self.ref_name(k) for k in u.killed) + "]")
        s += [f"{k}={v}" for k, v in u.headers if not k.startswith("date")]
        if u.kind in ("data", "ws", "sse"):
            s.append(f"size={len(u.data)} {u.data[:32]!r} sha256={hashlib.sha256(u.data).hexdigest()[:12]}")
        return " ".join(s)

    def expect(self, i: int, st: Dict[str, Any]) -> None:
        q = self.queue(st.get("queue"))
        exp = st["expect"]
        anyo = bool(st.get("any_order"))
        groups: Dict[int, Tuple[List[Dict[str, Any]], List[Unit]]] = {}
        if anyo:
            for e in exp:
                key = self.refs[e["ref"]] if e.get("ref") else 0
                groups.setdefault(key, ([], []))[0].append(e)
        else:
            groups[0] = (list(exp), [])
        deadline = time.monotonic() + WAIT
        timed_out = False
        while not all(self.complete(us, ex) for ex, us in groups.values()):
            left = deadline - time.monotonic()
            evs = q.poll(1, max(left, 0)) if left > 0 else []
            if not evs:
                timed_out = True
                break
            u = Unit(evs[0])
            ex, us = groups.setdefault(u.ref if anyo else 0, ([], []))
            self.add(us, ex, u)
        ok = not timed_out
        lines = []
        for key, (ex, us) in groups.items():
            if anyo:
                lines.append(f"  ref {self.ref_name(key)}:")
            for j in range(max(len(ex), len(us))):
                same = j < len(ex) and j < len(us) and self.match(ex[j], us[j])
                ok = ok and same
                e = self.render_exp(ex[j]) if j < len(ex) else "(nothing)"
                a = self.render(us[j]) if j < len(us) else "(nothing)"
                lines.append(f"  {'  ' if same else '! '}expected {e:<50} got {a}")
        if not ok:
            why = f"incomplete after {WAIT:g} s" if timed_out else "mismatch"
            pytest.fail(f"step {i}: expect block: {why} (! marks a difference)\n" + "\n".join(lines), pytrace=False)

    def run(self) -> None:
        for i, st in enumerate(self.sc["steps"]):
            na = st.get("not_applicable", {}).get("python")
            if na is not None:
                print(f"step {i}: n/a: {na}")
                continue
            if "expect" in st:
                self.expect(i, st)
                continue
            want = st.get("error", "ok")
            try:
                self.call(st)
                got, msg = "ok", ""
            except gunmetal.Error as e:
                got, msg = ERR_CLASS.get(e.code, f"other {e.code}"), str(e)
            if got != want:
                pytest.fail(f"step {i} ({st['call']}): got {got} ({msg}), want {want}", pytrace=False)
        for name, q in self.queues.items():
            left = q.poll(64, 0)
            if left:
                pytest.fail(f"queue {name}: unexpected events after the last expect: "
                            + "; ".join(self.render(Unit(e)) for e in left), pytrace=False)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario(sc: Dict[str, Any], scen_server: Dict[str, Any]) -> None:
    na = sc.get("not_applicable", {}).get("python")
    if na is not None:
        pytest.skip(f"n/a: {na}")  # reported as skipped, never as passed
    r = Runner(sc, scen_server)
    try:
        r.run()
    finally:
        r.close_all()
    print(f"scenario {sc['name']}: passed")


def test_every_scenario_is_collected() -> None:
    assert len(SCENARIOS) == len(glob.glob(os.path.join(CASES, "*.json"))) > 0
