"""Every metric the Grafana dashboard and the alert rules query is exported by a running service."""

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from .harness import Stack

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

NOT_FROM_PIXTOOLS = {
    "up": "Prometheus writes it for every scrape target itself",
    "rabbitmq_detailed_queue_messages_unacked": (
        "RabbitMQ's prometheus plugin, family queue_coarse_metrics of /metrics/detailed (the rabbitmq-queues scrape "
        "job); AMQP cannot count unacked messages, so no PixTools service can export it"
    ),
}
"""Metrics the dashboard or rules use that come from elsewhere, with where they come from."""

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    text = re.sub(r"\{[^}]*\}", "", expression)  # label matchers, with their quoted values
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function call or a keyword
        if re.fullmatch(r"\d+[smhdwy]", match.group()) or text[match.start() - 1 : match.start()].isdigit():
            continue  # part of a number or a duration
        names.add(match.group())
    return names


def queried_metrics() -> set[str]:
    """Every metric name in the dashboard's target expressions and the alert rules' expressions."""
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/pixtools-overview.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    groups = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())["groups"]
    expressions += [rule["expr"] for group in groups for rule in group["rules"]]
    return set().union(*(metric_names(expression) for expression in expressions))


def exported_metrics(exposition: str) -> set[str]:
    """The series names an exposition can carry, including families that have no sample yet."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in HISTOGRAM_SUFFIXES)
        else:
            names.add(family.name)
    return names


def test_metric_name_parser_skips_functions_labels_and_durations():
    expression = (
        'histogram_quantile(0.95, sum by (le, state) (rate(pixtools_job_duration_seconds_bucket{state!="x"}[5m])))'
        " > 300 and time() - max(pixtools_backlog_sampled_timestamp_seconds) > 1e3"
    )
    assert metric_names(expression) == {
        "pixtools_job_duration_seconds_bucket",
        "pixtools_backlog_sampled_timestamp_seconds",
    }


def test_every_metric_the_dashboard_and_alerts_query_is_exported_by_a_running_service(stack: Stack):
    scraped = {
        "gateway": f"{stack.gateway_url}/metrics",
        "ingest": f"http://127.0.0.1:{stack.ports['ingest']}/metrics",
        "aggregator": f"http://127.0.0.1:{stack.ports['aggregator']}/metrics",
    }
    exported: set[str] = set()
    for service, url in scraped.items():
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, f"{service}: {response.status_code}"
        exported |= exported_metrics(response.text)

    queried = queried_metrics()
    missing = sorted(queried - exported - NOT_FROM_PIXTOOLS.keys())
    assert not missing, f"queried but exported by no running service: {missing}"
    assert not NOT_FROM_PIXTOOLS.keys() & exported, (
        "an allowlisted metric is exported by PixTools; drop it from the list"
    )
    assert {
        "pixtools_queue_messages",
        "pixtools_step_seconds_bucket",
        "pixtools_job_duration_seconds_bucket",
    } <= queried
