"""Balancing across an upstream pool: round_robin (smooth weighted),
least_conn and random2 (in flight across all workers), hash (client_ip,
header, cookie; missing key falls back to round robin)."""
import threading

import ferrytest as ft
from ferrytest import Ferry, ScriptedUpstream, Client, eq, check


def config(balance, extra="", workers=1, weights=(1, 1)):
    return f"""
listeners:
  - address: 127.0.0.1:{{port:http}}
workers: {workers}
access_log: {{path: "-"}}
upstreams:
  api:
    servers:
      - address: 127.0.0.1:{{port:a}}
        weight: {weights[0]}
      - address: 127.0.0.1:{{port:b}}
        weight: {weights[1]}
    balance: {balance}
{extra}
routes:
  - upstream: api
"""


def who(r):
    return r.body.decode().rsplit(" ", 1)[-1]


def test_round_robin_weight_3_gets_3_of_4_interleaved():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("round_robin", weights=(3, 1)), ports={"a": a.port, "b": b.port}) as f:
        seq = ""
        with Client(f.port) as c:
            for i in range(40):
                r = c.request(target=f"/r{i}")
                eq(r.status, 200, f"request {i}")
                seq += who(r)
        eq(seq.count("a"), 30, f"requests to the weight-3 server in {seq}")
        eq(seq.count("b"), 10, f"requests to the weight-1 server in {seq}")
        check("aaaa" not in seq, f"weight-3 server got 4 in a row (a burst): {seq}")
        eq(seq[:8], "aabaaaba", "smooth weighted order")


def _hold_one_request_on(f, slow, fast):
    """Sends one request that `slow` holds (stall); returns the thread."""
    slow.mode = "stall"
    fast.mode = "stall"
    done = {}

    def run():
        try:
            done["r"] = ft.request(f.port, target="/held")
        except Exception as e:  # released at the end of the test
            done["e"] = e

    arrived = threading.Event()
    slow.arrived = fast.arrived = arrived
    t = threading.Thread(target=run, daemon=True)
    t.start()
    check(arrived.wait(ft.IO_TIMEOUT), "the held request did not reach a server")
    eq(slow.count() + fast.count(), 1, "requests held")
    holder, other = (slow, fast) if slow.count() == 1 else (fast, slow)
    other.mode = "ok"
    return t, holder, other


def _in_flight_steers_to_the_idle_server(balance):
    # Two workers: connections land on either; the in-flight count is per
    # process, so every new request avoids the server holding one.
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config(balance, workers=2), ports={"a": a.port, "b": b.port}) as f:
        t, holder, other = _hold_one_request_on(f, a, b)
        for i in range(20):
            r = ft.request(f.port, target=f"/n{i}")  # a new connection each: both workers
            eq(r.status, 200, f"request {i}")
            eq(who(r), other.name, f"request {i} while {holder.name} holds one in flight")
        eq(holder.count(), 1, f"requests to {holder.name}, which holds one")
        holder.release()
        t.join(ft.IO_TIMEOUT)


def test_least_conn_avoids_the_server_with_requests_in_flight_across_workers():
    _in_flight_steers_to_the_idle_server("least_conn")


def test_random2_avoids_the_server_with_requests_in_flight_across_workers():
    _in_flight_steers_to_the_idle_server("random2")


def test_least_conn_idle_pool_follows_weights():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("least_conn", weights=(3, 1)), ports={"a": a.port, "b": b.port}) as f:
        seq = ""
        with Client(f.port) as c:
            for i in range(40):
                seq += who(c.request(target=f"/r{i}"))
        eq((seq.count("a"), seq.count("b")), (30, 10), f"picks with nothing in flight: {seq}")


def test_hash_header_sticks_each_key_to_one_server_and_missing_key_round_robins():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("hash", "    hash_key: header:X-User"), ports={"a": a.port, "b": b.port}) as f:
        seen = {}
        with Client(f.port) as c:
            for rnd in range(3):
                for u in range(20):
                    r = c.request(headers=(("Host", "x.test"), ("X-User", f"user-{u}")))
                    eq(r.status, 200)
                    seen.setdefault(u, set()).add(who(r))
            for u, s in seen.items():
                eq(len(s), 1, f"servers for user-{u}")
            used = set().union(*seen.values())
            eq(used, {"a", "b"}, "20 keys spread over both servers")
            # no key: round robin
            seq = "".join(who(c.request()) for _ in range(10))
            eq(seq, "ab" * 5, "requests without the header alternate")


def test_hash_cookie_and_client_ip():
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("hash", "    hash_key: cookie:session"), ports={"a": a.port, "b": b.port}) as f:
        with Client(f.port) as c:
            per = {}
            for rnd in range(3):
                for u in range(20):
                    r = c.request(headers=(("Host", "x.test"), ("Cookie", f"theme=dark; session=s{u}")))
                    per.setdefault(u, set()).add(who(r))
            check(all(len(s) == 1 for s in per.values()), f"cookie keys moved: {per}")
            eq(set().union(*per.values()), {"a", "b"}, "20 cookies spread over both servers")
    with ScriptedUpstream("a") as a, ScriptedUpstream("b") as b, \
            Ferry(config("hash", "    hash_key: client_ip"), ports={"a": a.port, "b": b.port}) as f:
        got = {who(ft.request(f.port)) for _ in range(10)}
        eq(len(got), 1, "one client address, one server")


ft.main(globals())
