"""The run's HTML page is self-contained and draws lanes; two runs' summaries compare."""

from __future__ import annotations

from pytest_k8sdr.report_html import compare, render_html

PHASE = {
    "phase": "drain LB",
    "slo_seconds": 15.0,
    "started": "2026-12-02T08:00:01+00:00",
    "ended": "2026-12-02T08:00:03+00:00",
    "seconds": 2.0,
    "verdict": "ok",
}
T0 = 1796198400.0  # 2026-12-02T08:00:00Z
SUMMARY = {
    "experiments": [
        {
            "test": "t.py::test_drain",
            "worker": None,
            "phases": [PHASE],
            "marks": [],
            "events": [{"t": T0 + 2, "lane": "lb", "label": "LB reloaded: drain w1", "detail": ""}],
            "traffic": [
                {
                    "url": "http://127.0.0.1/",
                    "requests": 4,
                    "errors": 0,
                    "error_window": None,
                    "to_outage_nodes": 0,
                    "share_by_node": {"w1": 0.5, "w2": 0.5},
                    "per_second": [
                        {"t": T0 + 1, "requests": 2, "errors": 0, "by_node": {"w1": 1, "w2": 1}},
                        {"t": T0 + 3, "requests": 2, "errors": 0, "by_node": {"w2": 2}},
                    ],
                }
            ],
            "series": {"up": [[T0 + 1, 3], ["2026-12-02T08:00:03+00:00", 2]]},
        }
    ]
}


def test_page_is_self_contained_with_table_event_traffic_and_series_lanes() -> None:
    page = render_html(SUMMARY)
    # Nothing is fetched: no src, no stylesheet link, no URL but the SVG namespace's.
    assert "src=" not in page
    assert "<link" not in page
    assert "https://" not in page
    assert '<td class="ok">2.0s / 15s ok</td>' in page
    for lane in ("lb", "requests-w1", "requests-w2", "errors", "latency", "series-up"):
        assert f'data-lane="{lane}"' in page
    assert 'class="drain"' in page
    assert 'data-tip="+0s requests/s on w1: 1"' in page


def test_compare_flags_only_phases_clearly_slower() -> None:
    slow = {"experiments": [{"test": "t.py::test_drain", "phases": [{**PHASE, "seconds": 3.0}]}]}
    noise = {"experiments": [{"test": "t.py::test_drain", "phases": [{**PHASE, "seconds": 2.3}]}]}
    (slower,) = compare(SUMMARY, slow)
    assert slower.describe() == "t.py::test_drain: drain LB 2.00s -> 3.00s (+50%)"
    assert compare(SUMMARY, noise) == []
    assert compare(slow, SUMMARY) == []
