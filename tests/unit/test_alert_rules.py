"""The alert rules: promtool accepts them and their unit tests pass, and every alert links a runbook that exists."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pixtools-overview.json"


def _promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is missing: install it (Debian: `apt-get install prometheus`; .ci/run does this) "
            "so that the alert rules can be checked"
        )
    return subprocess.run([promtool, *arguments], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_alert_rules():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alert_rules_pass():
    result = _promtool("test", "rules", "alerts.test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_at_least_three_alerts_have_promtool_unit_tests():
    tested = {
        case["alertname"]
        for group in yaml.safe_load((PROMETHEUS / "alerts.test.yaml").read_text())["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert len(tested) >= 3
    assert tested <= {rule["alert"] for rule in _alerts()}


def test_prometheus_loads_the_alert_rules_and_compose_mounts_them():
    assert RULES.name in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert "./deploy/prometheus/alerts.yaml:/etc/prometheus/alerts.yaml" in (ROOT / "docker-compose.yaml").read_text()


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_links_a_runbook_that_says_what_it_means_how_to_confirm_and_what_to_do(rule):
    annotations = rule["annotations"]
    assert isinstance(annotations, dict)
    runbook = ROOT / annotations["runbook_url"]
    assert runbook.is_file(), f"{rule['alert']} links {annotations['runbook_url']}, which does not exist"
    text = runbook.read_text()
    assert text.startswith(f"# {rule['alert']}\n")
    for section in ("**Meaning.**", "**Confirm.**", "**Act.**"):
        assert section in text, f"{runbook.name} lacks {section}"


def test_dashboard_shows_both_lanes_jobs_webhooks_outbox_dead_letters_and_step_durations():
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    for metric in (
        "pixtools_queue_messages",
        "pixtools_jobs_finished_total",
        "pixtools_job_duration_seconds_bucket",
        "pixtools_webhook_attempts_total",
        "pixtools_webhook_breakers_tripped",
        "pixtools_outbox_oldest_age_seconds",
        "pixtools_step_seconds_bucket",
    ):
        assert metric in expressions, f"the dashboard does not show {metric}"
    assert 'role="dead_letter"' in expressions
    # A queue regex that stops at the service name hides the .bulk lanes.
    for regex in re.findall(r"queue=~`([^`]*)`", expressions):
        assert re.fullmatch(regex, "pixtools.ingest.bulk"), f"{regex} hides the bulk lanes"
