import urllib.error
import urllib.request

import pytest

from metallb_py.metrics import Registry, format_value, parse_exposition
from metallb_py.metrics.metallb import (
    BgpPeerStats,
    K8sClientMetrics,
    PoolUsage,
    SpeakerMetrics,
    register_allocator_metrics,
)
from metallb_py.metrics.server import MetricsServer


def test_value_format_matches_go():
    assert format_value(1) == "1"
    assert format_value(0.0) == "0"
    assert format_value(9223372036854775807) == "9.223372036854776e+18"
    assert format_value(2.5) == "2.5"


def test_k8s_client_families_exact_names_and_initial_values():
    reg = Registry(process_metrics=False)
    m = K8sClientMetrics(reg)
    m.updates.inc()
    m.update_errors.inc()
    m.config_stale.set(1)
    text = reg.render()
    assert (
        "# TYPE metallb_k8s_client_updates_total counter\nmetallb_k8s_client_updates_total 1\n"
        in text
    )
    assert "metallb_k8s_client_update_errors_total 1\n" in text
    assert (
        "# TYPE metallb_k8s_client_config_loaded_bool gauge\nmetallb_k8s_client_config_loaded_bool 0\n"
        in text
    )
    assert "metallb_k8s_client_config_stale_bool 1\n" in text
    assert "_created" not in text


def test_allocator_gauges_follow_the_allocator():
    pools = [PoolUsage("a", 256, 3, 4), PoolUsage("b", 9223372036854775807, 0, 0)]
    reg = Registry(process_metrics=False)
    register_allocator_metrics(reg, lambda: pools)
    parsed = parse_exposition(reg.render())
    assert parsed[("metallb_allocator_addresses_total", frozenset({("pool", "a")}))] == 256
    assert parsed[("metallb_allocator_addresses_in_use_total", frozenset({("pool", "a")}))] == 3
    assert parsed[("metallb_allocator_services_allocated_total", frozenset({("pool", "a")}))] == 4
    pools.pop()
    assert 'pool="b"' not in reg.render()


def test_speaker_families_layer2_counters_have_no_total_suffix():
    counts = {
        "requests_received": {"192.0.2.10": 3},
        "responses_sent": {"192.0.2.10": 2},
        "gratuitous_sent": {"192.0.2.10": 10},
    }
    peers = [BgpPeerStats("[2001:db8::1]:179", True, 7, 5, 6)]
    reg = Registry(process_metrics=False)
    m = SpeakerMetrics(reg, lambda: counts, lambda: peers)
    m.announced.set(1, "ns/svc", "layer2", "node1", "192.0.2.10")
    text = reg.render()
    assert "# TYPE metallb_layer2_requests_received counter" in text
    assert 'metallb_layer2_requests_received{ip="192.0.2.10"} 3\n' in text
    assert 'metallb_layer2_gratuitous_sent{ip="192.0.2.10"} 10\n' in text
    assert "metallb_layer2_requests_received_total" not in text
    assert 'metallb_bgp_session_up{peer="[2001:db8::1]:179"} 1\n' in text
    assert "# TYPE metallb_bgp_updates_total counter" in text
    assert 'metallb_bgp_pending_prefixes_total{peer="[2001:db8::1]:179"} 6\n' in text
    assert (
        'metallb_speaker_announced{service="ns/svc",protocol="layer2",node="node1",ip="192.0.2.10"} 1\n'
        in text
    )
    m.announced.remove("ns/svc", "layer2", "node1", "192.0.2.10")
    peers.clear()
    text = reg.render()
    assert "metallb_speaker_announced{" not in text
    assert "metallb_bgp_session_up{" not in text
    # Prometheus' own parser accepts the whole exposition.
    parse_exposition(text)


def test_label_values_are_escaped():
    reg = Registry(process_metrics=False)
    g = reg.gauge("x", "h", ("l",))
    g.set(1, 'a"b\\c\nd')
    assert parse_exposition(reg.render())[("x", frozenset({("l", 'a"b\\c\nd')}))] == 1


def test_wrong_label_count_and_duplicate_registration_are_errors():
    reg = Registry(process_metrics=False)
    g = reg.gauge("x", "h", ("a",))
    with pytest.raises(ValueError):
        g.set(1)
    with pytest.raises(ValueError):
        reg.gauge("x", "h")


def test_http_server_metrics_readyz_and_pprof():
    reg = Registry()
    K8sClientMetrics(reg)
    state = {"ready": (False, "caches not synced")}
    srv = MetricsServer(reg, "127.0.0.1", 0, readiness=lambda: state["ready"], enable_pprof=True)
    srv.start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        body = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert "metallb_k8s_client_config_loaded_bool 0" in body
        assert "process_cpu_seconds_total" in body
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/readyz", timeout=5)
        assert err.value.code == 503
        assert b"caches not synced" in err.value.read()
        state["ready"] = (True, "")
        assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
        assert b"thread" in urllib.request.urlopen(base + "/debug/pprof/", timeout=5).read()
    finally:
        srv.stop()
