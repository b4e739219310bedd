"""Blast-radius arithmetic on records made by hand: every expected number is worked out in the
comment beside it. Traffic is 10 requests per second per flow unless a test says otherwise."""

from __future__ import annotations

import json

import pytest

from testbed.measure.blast import Window, blast_radius, cutoff, definitions, fault_window, long_lived, timeline


def records(flow, ok_until=None, fail_from=None, fail_to=None, seconds=20, rate=10, latency=1.0):
    src, dst = flow
    out = []
    for i in range(seconds * rate):
        t = i / rate
        failed = fail_from is not None and fail_from <= t < fail_to
        out.append({"t": t, "src": src, "dst": dst, "pod": None if failed else f"{dst}-0",
                    "status": None if failed else 200, "latency_ms": latency, "error": "reset" if failed else None})
    return out


def failing(recs, when):
    """The same records, failed (connection reset) wherever when(t) holds."""
    return [dict(r, status=None, pod=None, error="reset") if when(r["t"]) else r for r in recs]


def slow(recs, when, latency):
    return [dict(r, latency_ms=latency) if when(r["t"]) else r for r in recs]


def test_a_fault_on_one_of_three_flows():
    flows = [("a-0", "b"), ("a-0", "c"), ("d-0", "c")]
    recs = records(flows[0], fail_from=10, fail_to=14) + records(flows[1]) + records(flows[2])
    r = blast_radius(recs, flows, Window(1, 10), Window(10, 15), revert_at=12, end=20)
    assert r["flows_total"] == 3 and r["flows_affected"] == 1
    assert r["pods_affected"] == ["a-0"] and r["services_affected"] == ["b"]
    assert r["requests_failed"] == 40 and r["time_to_detect"] == 0.0 and r["detect_basis"] == "errors"
    # windows of 3 s from the revert at 12: [12,15) holds 20 failures of 30, [13,16) 10, [14,17) none
    assert r["time_to_recover"] == 2.0
    assert r["not_sent"] == 0 and r["generator_overloaded"] is False
    json.dumps(r, allow_nan=False)  # a flow whose window failed entirely has no p99: null, not NaN
    assert r["flows"]["a-0->b"]["fault"]["p99_ms"] == 1.0 and r["flows"]["a-0->b"]["time_to_recover"] == 2.0


def test_recovery_is_not_blamed_for_the_next_faults_failures():
    flows = [("a-0", "b")]
    recs = failing(records(flows[0], seconds=25), lambda t: 10 <= t < 13 or 16 <= t < 18)
    first = blast_radius(recs, flows, Window(1, 10), Window(10, 12), revert_at=12, end=16)
    # [12,15) has 10 failures of 30; [13,16), the last window that fits before 16, none
    assert first["time_to_recover"] == 1.0
    # Measured on to 22, the failures at 16-18 are this fault's: [17,20) still has 10 of 30,
    # [18,21) and [19,22) none, so back at 18, 6 s after the revert.
    assert blast_radius(recs, flows, Window(1, 10), Window(10, 12), revert_at=12, end=22)["time_to_recover"] == 6.0
    # (Old behaviour, a defect: up to 20 it said 6.0, though only 2 s of health had been seen.
    # Now the last 3 s window, [17,20), is not healthy: not recovered by the cut-off.)
    assert blast_radius(recs, flows, Window(1, 10), Window(10, 12), revert_at=12, end=20)["time_to_recover"] is None


def test_slow_but_successful_requests_count_as_affected():
    flows = [("a-0", "b")]
    recs = slow(records(flows[0]), lambda t: 10 <= t < 15, 10.0)
    r = blast_radius(recs, flows, Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["flows_affected"] == 1 and r["requests_failed"] == 0 and r["time_to_recover"] == 0.0
    assert r["time_to_detect"] == 0.0 and r["detect_basis"] == "latency"


def test_nothing_affected():
    flows = [("a-0", "b")]
    r = blast_radius(records(flows[0]), flows, Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["flows_affected"] == 0 and r["time_to_detect"] is None and r["time_to_recover"] is None
    assert r["requests_failed"] == 0 and r["requests_failed_band"] == [0.0, 0.0] and r["detect_basis"] is None


# ---- thresholds: exact, and strictly "exceeds" ----

def verdict(base, window):
    flows = [("a-0", "b")]
    r = blast_radius(base + window, flows, Window(0, 10), Window(10, 20), revert_at=20, end=20)
    return r["flows_affected"] == 1


def errors_at(percent, start):
    """100 requests from `start`, the first `percent` of them failed."""
    recs = [dict(r, t=r["t"] + start) for r in records(("a-0", "b"), seconds=10)]
    return failing(recs, lambda t: t < start + percent / 10)


def latency_at(ms, start):
    return [dict(r, t=r["t"] + start) for r in records(("a-0", "b"), seconds=10, latency=ms)]


def test_a_rise_of_exactly_the_threshold_gets_the_same_verdict_whatever_the_base():
    # 9 -> 14 % and 10 -> 15 % both rise by exactly 5 points: neither exceeds 5 (in floats the
    # first rose by 5.000000000000001 and was affected, the second by 4.999999999999999)
    assert not verdict(errors_at(9, 0), errors_at(14, 10))
    assert not verdict(errors_at(10, 0), errors_at(15, 10))
    assert verdict(errors_at(9, 0), errors_at(15, 10))  # 6 points


def test_a_p99_of_exactly_three_times_the_baseline_gets_the_same_verdict_whatever_the_base():
    # 0.7 -> 2.1 and 1.0 -> 3.0 ms are both exactly x3 (3 * 0.7 is 2.0999999999999996 in floats)
    assert not verdict(latency_at(0.7, 0), latency_at(2.1, 10))
    assert not verdict(latency_at(1.0, 0), latency_at(3.0, 10))
    assert verdict(latency_at(1.0, 0), latency_at(3.001, 10))


# ---- requests_failed: the excess is summed over flows, then clipped ----

def test_requests_failed_does_not_count_background_noise():
    # 50 flows, 2 of 100 baseline requests failed on each; in the window (100 requests each) the
    # even flows had no failure, the odd ones 4. Excess: 25 * (0 - 2) + 25 * (4 - 2) = 0.
    # (Clipping each flow at zero before summing said 25 * 2 = 50.)
    flows = [(f"p-{i}", "s") for i in range(50)]
    recs = []
    for i, flow in enumerate(flows):
        recs += failing(records(flow), lambda t, odd=i % 2: t in (0.0, 5.0) or (odd and t in (10.0, 12.5, 15.0, 17.5)))
    r = blast_radius(recs, flows, Window(0, 10), Window(10, 20), revert_at=20, end=20)
    assert r["flows_affected"] == 0 and r["requests_failed"] == 0
    # noise: 50 flows * p(1-p) * (n_w + n_w^2 / n_b) = 50 * 0.0196 * (100 + 100) = 196, sigma 14, band 0 +- 28
    assert r["requests_failed_band"] == [0.0, 28.0]
    # a real fault on one more flow, 40 failures of 100 against a clean baseline: 40, band 40 +- 28
    flows.append(("q-0", "s"))
    recs += records(flows[-1], fail_from=10, fail_to=14)
    r = blast_radius(recs, flows, Window(0, 10), Window(10, 20), revert_at=20, end=20)
    assert r["flows_affected"] == 1 and r["requests_failed"] == 40 and r["requests_failed_band"] == [12.0, 68.0]


# ---- time_to_detect ----

def test_time_to_detect_ignores_noise_on_unaffected_flows_and_stray_failures():
    calm, hit = ("a-0", "b"), ("c-0", "d")
    # calm: one failure every 5 s (2 %), at 0, 5, 10, 15...: never affected, yet its failure at
    # t=10, the injection, made the old time_to_detect 0.0
    recs = failing(records(calm, seconds=30), lambda t: t % 5 == 0)
    # hit: a stray failure at the injection (10.0), then failing from 13.5 to 16. [10, 13) holds
    # the stray alone, 1 of 30: no burst. [13.5, 16.5) holds 25 failures of 30: detected at 13.5.
    recs += failing(records(hit, seconds=30), lambda t: t == 10.0 or 13.5 <= t < 16)
    r = blast_radius(recs, [calm, hit], Window(1, 10), Window(10, 20), revert_at=16, end=30)
    assert r["flows_affected"] == 1 and r["time_to_detect"] == 3.5 and r["detect_basis"] == "errors"
    assert r["flows"]["a-0->b"]["affected"] is False and "time_to_detect" not in r["flows"]["a-0->b"]


def test_time_to_detect_of_a_latency_only_fault_is_its_first_slow_request():
    flow = ("a-0", "b")
    recs = slow(records(flow), lambda t: 12 <= t < 15, 10.0)  # baseline p99 1.0 ms; slow: over 3.0 ms
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["requests_failed"] == 0 and r["time_to_detect"] == 2.0 and r["detect_basis"] == "latency"


# ---- time_to_recover ----

def test_seconds_without_requests_are_not_recovered():
    # failing from 10 to 14, then no requests at all: nothing shows the flow back (old: 2.0)
    flow = ("a-0", "b")
    recs = [r for r in records(flow, fail_from=10, fail_to=14) if r["t"] < 14]
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 14), revert_at=12, end=20)
    assert r["flows_affected"] == 1 and r["time_to_recover"] is None


def test_one_stray_failure_does_not_move_recovery():
    # back at 14, then one stray failure at 24: each 3 s window holding it has 1 of 30 (3.3 %,
    # within 5 points). The old per-second buckets saw 1 of 10 and said 13.0.
    flow = ("a-0", "b")
    recs = failing(records(flow, seconds=30), lambda t: 10 <= t < 14 or t == 24.0)
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 14), revert_at=12, end=30)
    assert r["time_to_recover"] == 2.0


def test_a_partial_last_second_does_not_make_one_failure_never_recovered():
    # cut-off at 20.5; one failure at 20.4, the last request. The old last bucket, [20, 20.5),
    # held 1 failure of 5 and said "never recovered". The last window now ends at the cut-off:
    # [17.5, 20.5) holds 1 of 30, healthy.
    flow = ("a-0", "b")
    recs = failing(records(flow, seconds=21), lambda t: 10 <= t < 14 or t == 20.4)
    r = blast_radius([r for r in recs if r["t"] < 20.5], [flow], Window(1, 10), Window(10, 14), revert_at=12,
                     end=20.5)
    assert r["time_to_recover"] == 2.0


def test_a_flow_still_slow_after_the_revert_has_not_recovered():
    # slow (10 ms against a 1 ms baseline p99) from 10 to 17; revert at 12. Windows from 12:
    # [15,18) has 20 slow of 30, [16,19) 10, [17,20) none: back 5 s after the revert (old: 0.0)
    flow = ("a-0", "b")
    recs = slow(records(flow, seconds=25), lambda t: 10 <= t < 17, 10.0)
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 15), revert_at=12, end=25)
    assert r["time_to_recover"] == 5.0


def test_too_few_requests_per_window_cannot_show_recovery():
    # 5 requests per second: a 3 s window holds 15, fewer than the 20 it takes
    flow = ("a-0", "b")
    recs = records(flow, fail_from=10, fail_to=12, seconds=30, rate=5)
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 12), revert_at=12, end=30)
    assert r["flows_affected"] == 1 and r["time_to_recover"] is None
    assert definitions(5.0, 3.0)["minRequests"] == 20


# ---- the fault window and overlapping faults ----

def test_the_fault_window_ends_with_the_revert():
    # a crash with no duration, restarted 5 s later: down from 10 to 15. The old window,
    # at + max(duration, 1) = [10, 11), saw 10 failures; the proxy was down for 50 requests.
    assert fault_window(10, 0, 15) == Window(10, 15)
    assert fault_window(10, 8, 15) == Window(10, 18)
    with pytest.raises(ValueError):
        fault_window(10, 0, 10)
    flow = ("a-0", "b")
    r = blast_radius(records(flow, fail_from=10, fail_to=15), [flow], Window(1, 10), fault_window(10, 0, 15),
                     revert_at=15, end=20)
    assert r["requests_failed"] == 50 and r["fault_window"] == [10, 15] and r["time_to_recover"] == 0.0


def test_a_fault_stops_at_the_next_injection_even_before_its_own_revert():
    # fault A at 10 for 10 s (reverted at 20) fails flow 1 from 10 to 12; fault B, injected at
    # 14, fails flow 2 from 14 to 18. A is measured up to 14: flow 2 is not A's, and A's
    # recovery, after B began, cannot be told apart from B's.
    one, two = ("a-0", "b"), ("c-0", "d")
    assert cutoff(10, [10, 14], 40) == 14
    assert cutoff(10, [10, 10, 30], 40) == 30  # injected at the same moment: no cut
    assert cutoff(30, [10, 30], 40) == 40
    recs = records(one, fail_from=10, fail_to=12, seconds=40) + records(two, fail_from=14, fail_to=18, seconds=40)
    r = blast_radius(recs, [one, two], Window(1, 10), fault_window(10, 10, 20), revert_at=20,
                     end=cutoff(10, [10, 14], 40))
    assert r["flows_affected"] == 1 and r["services_affected"] == ["b"] and r["requests_failed"] == 20
    assert r["fault_window"] == [10, 14] and r["until"] == 14 and r["time_to_recover"] is None
    # the old cut-off, the next injection after the revert (none: the end), took flow 2 in
    old = blast_radius(recs, [one, two], Window(1, 10), Window(10, 20), revert_at=20, end=40)
    assert old["flows_affected"] == 2


# ---- generator overload ----

def test_requests_never_sent_are_no_mesh_failure_but_flag_the_run():
    flow = ("a-0", "b")
    recs = [dict(r, status=None, pod=None, latency_ms=0.0, error="generator-overload") if 12 <= r["t"] < 13 else r
            for r in records(flow)]
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 15), revert_at=15, end=20)
    # 10 not sent out of 50: before, 10 failures (20 %) and an affected flow
    assert r["flows_affected"] == 0 and r["requests_failed"] == 0
    assert r["not_sent"] == 10 and r["generator_overloaded"] is True
    assert r["flows"]["a-0->b"]["fault"] == {"requests": 40, "failed": 0, "error_rate": 0.0, "p99_ms": 1.0,
                                             "not_sent": 10}
    per_second = {row["second"]: row["requests"] for row in timeline(recs)}
    assert (per_second[11], per_second.get(12), per_second[13]) == (10, None, 10)  # second 12: nothing sent


def test_a_window_whose_requests_all_went_unsent_is_not_judged():
    flow = ("a-0", "b")
    recs = [dict(r, status=None, latency_ms=0.0, error="generator-overload") if 10 <= r["t"] < 15 else r
            for r in records(flow)]
    r = blast_radius(recs, [flow], Window(1, 10), Window(10, 15), revert_at=15, end=20)
    assert r["flows_affected"] == 0 and r["not_sent"] == 50 and r["generator_overloaded"] is True


def test_timeline_buckets_per_second_and_flow():
    rows = timeline(records(("a-0", "b"), fail_from=2, fail_to=3, seconds=4))
    assert [(row["second"], row["requests"], row["failed"]) for row in rows] == [(0, 10, 0), (1, 10, 0), (2, 10, 10),
                                                                                  (3, 10, 0)]


# ---- long-lived connections ----

def brk(t, src, event, status=None):
    return {"t": t, "src": src, "dst": "db", "event": event, "served": 3, "status": status, "error": None}


def test_long_lived_connections_broken_inside_the_window_by_kind():
    events = [brk(1.5, "a", "reset"), brk(5.2, "a", "drained", 200), brk(5.3, "c", "closed"), brk(5.4, "b", "reset"),
              brk(6.9, "b", "timeout"),
              brk(9.0, "a", "closed"), {"t": 10, "src": "a", "dst": "db", "event": "end", "opened": 3}]
    got = long_lived(events, [("a", "db"), ("b", "db"), ("c", "db")], Window(1, 3), Window(5, 7))
    assert got == {"connections": 3, "broken": 4, "cut": 3, "drained": 1, "refused": 0, "closed": 1, "reset": 1,
                   "timeout": 1, "flows_broken": ["a->db", "b->db", "c->db"], "broken_in_baseline": 1}


def test_only_a_200_then_close_is_a_drain():
    # a 503 with Connection: close lost its request: refused (the agent's name for it), and an
    # older record that called it drained is read as refused too
    events = [brk(5.1, "a", "drained", 200), brk(5.2, "b", "refused", 503), brk(5.3, "c", "drained", 503)]
    got = long_lived(events, [("a", "db"), ("b", "db"), ("c", "db")], Window(1, 3), Window(5, 7))
    assert (got["broken"], got["drained"], got["refused"], got["cut"]) == (3, 1, 2, 2)
