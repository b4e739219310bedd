"""Blast-radius arithmetic on records made by hand."""

from __future__ import annotations

from testbed.measure.blast import Window, blast_radius, long_lived, timeline


def records(flow, ok_until=None, fail_from=None, fail_to=None, seconds=20, rate=10, latency=1.0):
    src, dst = flow
    out = []
    for i in range(seconds * rate):
        t = i / rate
        failed = fail_from is not None and fail_from <= t < fail_to
        out.append({"t": t, "src": src, "dst": dst, "pod": None if failed else f"{dst}-0",
                    "status": None if failed else 200, "latency_ms": latency, "error": "reset" if failed else None})
    return out


def test_a_fault_on_one_of_three_flows():
    flows = [("a-0", "b"), ("a-0", "c"), ("d-0", "c")]
    recs = records(flows[0], fail_from=10, fail_to=14) + records(flows[1]) + records(flows[2])
    r = blast_radius(recs, flows, Window(1, 10), Window(10, 15), revert_at=12, end=20)
    assert r["flows_total"] == 3 and r["flows_affected"] == 1
    assert r["pods_affected"] == ["a-0"] and r["services_affected"] == ["b"]
    assert r["requests_failed"] == 40 and r["time_to_detect"] == 0.0
    assert r["time_to_recover"] == 2.0  # failures went on until t=14, 2 s after the revert at 12


def test_recovery_is_not_blamed_for_the_next_faults_failures():
    flows = [("a-0", "b")]
    recs = [dict(r, status=None) if 10 <= r["t"] < 13 or 16 <= r["t"] < 18 else r for r in records(flows[0])]
    first = blast_radius(recs, flows, Window(1, 10), Window(10, 12), revert_at=12, end=16)
    assert first["time_to_recover"] == 1.0  # back at 13; the failures from 16 on are the next fault's
    assert blast_radius(recs, flows, Window(1, 10), Window(10, 12), revert_at=12, end=20)["time_to_recover"] == 6.0


def test_slow_but_successful_requests_count_as_affected():
    flows = [("a-0", "b")]
    recs = [dict(r, latency_ms=10.0 if 10 <= r["t"] < 15 else 1.0) for r in records(flows[0])]
    r = blast_radius(recs, flows, Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["flows_affected"] == 1 and r["requests_failed"] == 0 and r["time_to_recover"] == 0.0


def test_nothing_affected():
    flows = [("a-0", "b")]
    r = blast_radius(records(flows[0]), flows, Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["flows_affected"] == 0 and r["time_to_detect"] is None and r["time_to_recover"] is None


def test_timeline_buckets_per_second_and_flow():
    rows = timeline(records(("a-0", "b"), fail_from=2, fail_to=3, seconds=4))
    assert [(row["second"], row["requests"], row["failed"]) for row in rows] == [(0, 10, 0), (1, 10, 0), (2, 10, 10),
                                                                                  (3, 10, 0)]


def test_long_lived_connections_broken_inside_the_window_by_kind():
    def brk(t, src, event):
        return {"t": t, "src": src, "dst": "db", "event": event, "served": 3, "error": None}

    events = [brk(1.5, "a", "reset"), brk(5.2, "a", "drained"), brk(5.3, "c", "closed"), brk(5.4, "b", "reset"),
              brk(6.9, "b", "timeout"),
              brk(9.0, "a", "closed"), {"t": 10, "src": "a", "dst": "db", "event": "end", "opened": 3}]
    got = long_lived(events, [("a", "db"), ("b", "db"), ("c", "db")], Window(1, 3), Window(5, 7))
    assert got == {"connections": 3, "broken": 4, "cut": 3, "drained": 1, "closed": 1, "reset": 1, "timeout": 1,
                   "flows_broken": ["a->db", "b->db", "c->db"], "broken_in_baseline": 1}
