"""The deployment files: Prometheus config and alert unit tests (promtool), the Grafana
dashboard against TOM's metrics, the monitoring compose file and the systemd units."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import calls.metrics
import tomsite.metrics
import toolhub.metrics
import voice.metrics
from conftest import REPO

DEPLOY = REPO / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
# Metrics of other exporters the dashboard and alerts use on purpose.
EXTERNAL = {"up", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_GPU_UTIL"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "and", "on",
                "le", "without", "avg", "min", "count", "offset", "bool", "or", "unless"}
_MODULES = (calls.metrics, tomsite.metrics, toolhub.metrics, voice.metrics)  # registered


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: deploy/local/test.sh installs it (Debian package)")
    return path


def tom_metrics() -> set[str]:
    """Names TOM exports, as a scrape shows them (counters end in _total)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("tom_"):
            names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def referenced(expr: str) -> set[str]:
    labels_removed = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", labels_removed))
    names = {w for w in words
             if (w not in PROMQL_WORDS and not re.fullmatch(r"[a-z]+", w)) or w == "up"}
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith("tom_") else n
            for n in names}


def dashboard() -> dict[str, object]:
    return json.loads((DEPLOY / "grafana/dashboards/tom_v3_ops.json").read_text())


def alert_rules() -> list[dict[str, object]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_alerts_use_only_real_metrics_and_cover_every_tom_metric() -> None:
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]  # type: ignore[union-attr,index]
    on_dashboard = {n for p in panels for t in p["targets"] for n in referenced(t["expr"])}
    in_alerts = {n for r in alert_rules() for n in referenced(str(r["expr"]))}
    used, exported = on_dashboard | in_alerts, tom_metrics()
    assert {n for n in used if n.startswith("tom_")} - exported == set()
    assert {n for n in used if not n.startswith("tom_")} <= EXTERNAL
    assert exported - used == set(), "TOM metrics on neither the dashboard nor an alert"
    for name in ("tom_pipeline_e2e_latency_seconds", "tom_stt_latency_seconds",
                 "tom_llm_latency_seconds", "tom_tts_latency_seconds",
                 "tom_pipeline_backpressure_total", "tom_telephony_active_calls_total",
                 "tom_telephony_calls_total", "tom_telephony_calls_failed_total",
                 "tom_telephony_call_duration_seconds",
                 "tom_telephony_barge_in_latency_seconds", "tom_tool_calls_total",
                 "tom_tool_latency_ms", "tom_tool_calls_failed_total", "tom_errors_total",
                 "tom_rl_reward", "tom_rl_blacklisted_variants", "tom_rl_exploration_ratio"):
        assert name in exported, name


def test_dashboard_has_twelve_panels_in_the_six_rows() -> None:
    panels = dashboard()["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]  # type: ignore[union-attr,index]
    assert rows == ["Telephony", "Latency", "GPU", "RL", "ToolHub", "Errors"]
    assert len([p for p in panels if p["type"] != "row"]) == 12  # type: ignore[union-attr,index]
    datasources = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/tom.yml").read_text())["datasources"]
    uids = {d["uid"] for d in datasources}
    assert all(p["datasource"]["uid"] in uids for p in panels if p["type"] != "row")  # type: ignore[union-attr,index]


def test_alert_thresholds_are_the_products() -> None:
    expressions = {str(r["alert"]): str(r["expr"]) for r in alert_rules()}
    expected = {"TomE2ELatencyHigh": "> 0.8", "TomSttLatencyHigh": "> 0.3",
                "TomLlmLatencyHigh": "> 0.5", "TomTtsLatencyHigh": "> 0.2",
                "TomGpuMemoryHigh": "> 0.9", "TomGpuUtilisationHigh": "> 95",
                "TomPipelineBackpressure": "> 0", "TomRlRewardLow": "< -0.2",
                "TomRlBlacklistedVariants": "> 2", "TomRlExplorationLow": "< 0.05",
                "TomTargetDown": "up == 0", "TomCallFailureRateHigh": "> 0.1",
                "TomBargeInSlow": "> 0.12", "TomToolLatencyHigh": "> 2000",
                "TomToolFailureRateHigh": "> 0.05", "TomLinesBusy": "> 0"}
    for alert, threshold in expected.items():
        assert threshold in expressions[alert], alert


def test_promtool_checks_config_and_rules_and_the_alert_unit_tests_pass(
        tmp_path: Path) -> None:
    promtool = _tool("promtool")
    config = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, config)
    (config / "secrets" / "tom_metrics_token").write_text("token\n")  # git-ignored secret
    for args in (["check", "config", str(config / "prometheus.yml")],
                 ["check", "rules", str(config / "alerts.yml")],
                 ["test", "rules", str(config / "alerts_test.yml")]):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    scraped = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    assert len(scraped) >= 10
    # Every alert has a firing and a silent case.
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    cases = [(c["alertname"], bool(c["exp_alerts"])) for t in tests
             for c in t["alert_rule_test"]]
    for rule in alert_rules():
        assert (rule["alert"], True) in cases and (rule["alert"], False) in cases


def test_the_monitoring_compose_file(tmp_path: Path) -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.monitoring.yml").read_text())
    services = compose["services"]
    assert {"prometheus", "grafana", "loki", "promtail", "dcgm-exporter", "node-exporter",
            "cadvisor", "chroma"} <= set(services)
    for name, service in services.items():
        image = service["image"]
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), image
        assert service["network_mode"] == "host", name
        flat = json.dumps(service)
        assert "0.0.0.0" not in flat, f"{name} listens on every address"  # noqa: S104
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            elif not source.startswith("/"):
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    listens = {"prometheus": "127.0.0.1:9090", "node-exporter": "127.0.0.1:9100",
               "cadvisor": "-listen_ip=127.0.0.1", "chroma": "127.0.0.1",
               "grafana": "127.0.0.1", "dcgm-exporter": "127.0.0.1:9400"}
    for name, needle in listens.items():
        assert needle in json.dumps(services[name]), name


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    units = sorted((DEPLOY / "systemd").glob("tom-*"))
    names = {u.name for u in units}
    assert {"tom-web.service", "tom-worker.service", "tom-beat.service",
            "tom-selfcheck.service", "tom-selfcheck.timer", "tom-nightly-synthetic.service",
            "tom-nightly-synthetic.timer"} <= names
    for unit in units:  # verify needs the programs to exist: point at this checkout's
        text = unit.read_text().replace("/opt/tom/.venv/bin/python", sys.executable)
        (tmp_path / unit.name).write_text(text)
        if unit.suffix == ".service":
            for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=tom",
                              "ProtectHome=yes", "CapabilityBoundingSet="):
                assert hardening in text, (unit.name, hardening)
    done = subprocess.run([analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    assert "OnCalendar=minutely" in (DEPLOY / "systemd/tom-selfcheck.timer").read_text()
    assert "OnCalendar=*-*-* 03:15:00" in (
        DEPLOY / "systemd/tom-nightly-synthetic.timer").read_text()
