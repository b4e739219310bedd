"""The report from journals alone: the scorecard's figures and ranks, the page holding every
table and plot, repeats and comparisons, and refusals of what is not a journal. The
journals here are written by hand, so every expected figure is known."""

from __future__ import annotations

import json
import re

import pytest

from testbed.atomic import write_json
from testbed.journal import JournalError
from testbed.report import html
from testbed.report.model import build
from testbed.report.scorecard import terminal

ARCHS = ("sidecar", "node", "node-sa", "ambient")


def fault(kind, flows, failed, *, ids=0, pairs=0, cut=0, band=None):
    return {"kind": kind, "target": {"kind": "pod", "name": "cart-0", "proxy": None}, "at": 5.0, "duration": 3.0,
            "injected_at": 5.01, "reverted_at": 8.02, "ended_at": 8.02, "measured": True, "proxies_hit": 1,
            "pods_served": 1, "flows_total": 5, "flows_affected": flows, "requests_failed": failed,
            "requests_failed_band": band or [max(failed - 2, 0), failed + 2], "time_to_detect": 0.1,
            "time_to_recover": 1.0, "fault_window": [5.01, 8.02], "identities_exposed": [f"id{i}" for i in range(ids)],
            "reachable_pairs": [[f"id{i}", "s"] for i in range(pairs)], "long_lived": {"drained": 0, "cut": cut},
            "details": {}, "flows": {}}


def cost(pss_per_pod, vcpu_krps, p99=2.0):
    return {"load": {"total_rate": 300, "per_flow_rate": 60, "flows": 5, "window_s": 6.0, "measured_rps": 299.0,
                     "requests": 1794, "failed": 0, "not_sent": 0},
            "idle": {"seconds": 2, "proxies": 0.01, "workloads": 0.01, "per_proxy": {}},
            "steady": {"seconds": 6, "proxies": 1.0, "workloads": 2.0, "per_proxy": {}},
            "vcpu": {"proxies": 0.17, "workloads": 0.33, "proxies_idle": 0.005},
            "vcpu_per_krps": {"proxies": vcpu_krps, "workloads": 1.1}, "proxy_share": 0.33,
            "memory": {"pss_mib": pss_per_pod * 6, "rss_mib": 400.0, "pods": 6, "pss_per_pod_mib": pss_per_pod},
            "proxies_count": 6, "proxies": [], "config_totals": {"bytes": 1, "listeners": 1, "clusters": 12,
                                                                 "endpoints": 1, "routes": 1, "secrets": 1,
                                                                 "per_proxy_bytes_max": 20480, "proxies_read": 6},
            "latency_ms": {"p50": 1.0, "p90": 1.5, "p99": p99, "n": 1794},
            "latency_added_ms": {"p99": {"estimate": 1.2, "low": 0.9, "high": 1.5, "significant": True}},
            "hops": {"frontend-0->cart": {"hops": 2, "roles": ["sidecar", "sidecar"]}}}


FIGURES = {  # arch: crash flows, crash failed, wasm flows, ids, pairs, upgrade failed, cut, pss/pod, vcpu
    "sidecar": (3, 317, 3, 1, 2, 9, 2, 87.4, 0.21),
    "node": (5, 449, 5, 3, 3, 19, 5, 19.1, 0.12),
    "node-sa": (3, 319, 3, 1, 2, 1, 0, 40.5, 0.15),
    "ambient": (3, 314, 2, 1, 2, 9, 1, 95.2, 0.30),
}


def journal(path, figures=FIGURES, experiment="demo"):
    path.mkdir(parents=True, exist_ok=True)
    archs = {}
    for a, (cf, cfail, wf, ids, pairs, uf, cut, pss, cpu) in figures.items():
        archs[a] = {"status": "completed", "error": None, "run": "x1", "requests": 1000, "not_sent": 0,
                    "faults": [fault("proxy-crash", cf, cfail), fault("wasm", wf, 100),
                               fault("identity-compromise", 0, 0, ids=ids, pairs=pairs),
                               fault("upgrade", 0, uf, cut=cut)],
                    "cost": cost(pss, cpu), "clean_after": {"requests": 10, "failed": 0, "p99_ms": 2.0},
                    "files": {"timeline": f"timeline-{a}.csv"}}
        (path / f"timeline-{a}.csv").write_text(
            "second,src,dst,requests,failed,p50_ms,p99_ms\n" + "".join(
                f"{s},frontend-0,cart,10,{10 if 5 <= s < 8 else 0},1.0,2.0\n" for s in range(12)))
    archs["none"] = {"status": "completed", "error": None, "faults": [], "cost": cost(0.0, 0.0, p99=0.8)}
    j = {"journal": 2, "kind": "experiment", "engine": "namespaces", "simulated": False, "status": "completed",
         "experiment": experiment, "started": "2026-11-27T10:00:00+00:00", "seconds": 300.0,
         "command": "testbed run experiments/demo.yaml", "environment": {"git": "abc", "kernel": "6.18",
                                                                          "envoy": "1.40.0", "cpus": 2},
         "affected": {"errorPoints": 5.0, "latencyFactor": 3.0}, "cost_settings": {"idle": 2, "warmup": 1},
         "architectures": archs, "sweep": None}
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "journal.json", j)
    return path


def row(rows, key):
    return next(r for r in rows if r.key == key)


def test_every_scorecard_figure_is_the_journals_and_ranks_follow_the_figures(tmp_path):
    rows = build([journal(tmp_path / "a")]).scorecard
    col = {"failure": 0, "feature": 2, "security": 3, "upgrade": 5, "memory": 7, "cpu": 8}
    for key, k in col.items():
        r = row(rows, key)
        assert set(r.cells) == set(ARCHS)  # `none` is the baseline, not a column
        for a in ARCHS:
            assert r.cells[a].value == FIGURES[a][k], (key, a)
        for a in ARCHS:
            better = sum(FIGURES[b][k] < FIGURES[a][k] for b in ARCHS)
            assert r.cells[a].rank == better + 1, (key, a)
    assert row(rows, "failure").cells["node"].text == "5 flows, 449 failed"
    assert row(rows, "security").cells["node"].text == "3 ids, 3 pairs reached"
    assert row(rows, "upgrade").cells["sidecar"].text == "9 failed, 2 cut"
    assert [row(rows, "failure").cells[a].rank for a in ARCHS] == [1, 4, 1, 1]  # ties share a rank


def test_a_row_without_data_says_which_experiment_to_run(tmp_path):
    figures = {a: f for a, f in FIGURES.items()}
    path = journal(tmp_path / "a", figures)
    j = json.loads((path / "journal.json").read_text())
    for r in j["architectures"].values():
        r["faults"] = [f for f in r["faults"] if f["kind"] != "wasm"]
    write_json(path / "journal.json", j)
    rows = build([path]).scorecard
    assert row(rows, "feature").missing == "run `testbed run experiments/wasm.yaml`"
    assert "no data: run `testbed run experiments/wasm.yaml`" in "\n".join(terminal(rows))


def test_the_page_holds_the_scorecard_every_table_and_every_plot(tmp_path):
    path = journal(tmp_path / "a")
    page, md = html.write([path], tmp_path / "out")
    text = page.read_text()
    assert '<table id="scorecard">' in text
    for k in range(4):
        assert f'id="fault-0-{k}"' in text
    # links from cells to their source, and a plot per fault and cost (bars, timelines)
    assert 'href="#fault-0-0"' in text and 'href="#cost-0"' in text
    assert text.count("<svg") >= 3 + 4 * 2 + 3
    assert "Istio 1.24 sidecar" in text and "theirs" in text
    assert "testbed run experiments/demo.yaml" in text and "--out" in text  # rerun commands
    mdt = md.read_text()
    assert "| Failure isolation | 3 flows, 317 failed (#1) | 5 flows, 449 failed (#4) |" in mdt


def test_repeats_give_medians_and_ranges(tmp_path):
    a = journal(tmp_path / "r1")
    b = journal(tmp_path / "r2", {k: (v[0] + 1,) + v[1:] for k, v in FIGURES.items()})
    c = journal(tmp_path / "r3", {k: (v[0] + 1,) + v[1:] for k, v in FIGURES.items()})
    cell = row(build([a, b, c]).scorecard, "failure").cells["sidecar"]
    assert cell.value == 4 and cell.spread == (3, 4) and cell.text.startswith("4 flows (3-4)")


def test_two_runs_are_compared_beyond_the_noise(tmp_path):
    a = journal(tmp_path / "a")
    moved = {k: v[:1] + (v[1] + 200,) + v[2:] for k, v in FIGURES.items()}
    b = journal(tmp_path / "b", moved)
    cmp = build([a, b]).comparison
    assert cmp["same_experiment"]
    crash = [c for c in cmp["changes"] if c["what"] == "fault 0 (proxy-crash) requests_failed"]
    assert {c["arch"] for c in crash} == set(ARCHS) and all(c["beyond_noise"] for c in crash)
    same = build([a, journal(tmp_path / "c")]).comparison
    assert not same["beyond_noise"]


@pytest.mark.parametrize("content, words", [("{", "not valid JSON"), ('{"benchmark": 1}', "not a testbed journal")])
def test_report_refuses_a_broken_or_foreign_journal(tmp_path, content, words):
    (tmp_path / "journal.json").write_text(content)
    with pytest.raises(JournalError, match=re.escape(words)):
        html.write([tmp_path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


ISOLATION = {  # arch: config beyond, reject pods left, plaintext paths, failed-upgrade failed, rollback s, noisy hurt
    "sidecar": (0, 1, 0, 12, 0.4, 1),
    "node": (2, 3, 2, 40, 0.5, 4),
    "node-sa": (1, 2, 2, 25, 0.45, 3),
    "ambient": (1, 3, 0, 12, 0.6, 2),
}


def isolation_journal(path, figures=ISOLATION):
    """A journal with one fault of each isolation kind, and a good upgrade beside the failed one."""
    j_path = journal(path)
    j = json.loads((j_path / "journal.json").read_text())
    for a, (beyond, left, plain, failed, rollback, hurt) in figures.items():
        config = dict(fault("config", 3, 30), flows_beyond_target=[f"f{i}" for i in range(beyond)])
        reject = dict(fault("config-reject", 2, 5), details={"left_without_update": [f"p{i}" for i in range(left)]})
        bypass = dict(fault("bypass", 0, 0), details={"reached_plaintext": plain})
        bad = dict(fault("upgrade", 2, failed), options={"outcome": "fails", "strategy": "restart"},
                   details={"rollback_s_max": rollback})
        flows = {f"x{i}->s": {"affected": True} for i in range(hurt)}
        flows["noisy-0->s"] = {"affected": True}  # the noisy pod's own flow: not a neighbour
        noisy = dict(fault("noisy-neighbour", hurt + 1, 0), target_pods=["noisy-0"], flows=flows)
        j["architectures"][a]["faults"] += [config, reject, bypass, bad, noisy]
    write_json(j_path / "journal.json", j)
    return j_path


def test_the_isolation_rows_take_their_figures_from_the_new_kinds(tmp_path):
    rows = build([isolation_journal(tmp_path / "a")]).scorecard
    col = {"config": 0, "conflict": 1, "bypass": 2, "failed-upgrade": 3, "noisy": 5}
    for key, k in col.items():
        r = row(rows, key)
        assert r.missing is None and set(r.cells) == set(ARCHS), key
        for a in ARCHS:
            assert r.cells[a].value == ISOLATION[a][k], (key, a)
            assert r.cells[a].rank == 1 + sum(ISOLATION[b][k] < ISOLATION[a][k] for b in ARCHS), (key, a)
    assert row(rows, "failed-upgrade").cells["node"].text == "40 failed, 0.50 s to roll back"
    assert row(rows, "conflict").cells["node"].text == "3 pods, 5 failed"
    assert row(rows, "bypass").cells["node-sa"].text == "2 paths"
    # the good upgrade's row is not moved by the failed one
    assert {a: row(rows, "upgrade").cells[a].value for a in ARCHS} == {a: FIGURES[a][5] for a in ARCHS}


def test_the_isolation_rows_say_which_experiment_to_run(tmp_path):
    rows = build([journal(tmp_path / "a")]).scorecard
    for key in ("config", "conflict", "bypass", "failed-upgrade", "noisy"):
        assert row(rows, key).missing == "run `testbed run experiments/isolation.yaml`", key
    assert "Failed upgrade          no data: run `testbed run experiments/isolation.yaml`" in "\n".join(terminal(rows))
