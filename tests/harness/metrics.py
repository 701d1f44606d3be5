"""Scraping ``GET /metrics`` of a test server and reading samples, with prometheus_client's own parser."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from harness.servers import ADMIN_TOKEN, RunningServer


@dataclass(frozen=True)
class Scrape:
    """Every sample of one scrape, by name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; KeyError when the server did not expose it."""
        return self.samples[(name, frozenset(labels.items()))]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        """The sample, or ``default`` when absent (a labelled series appears on first use)."""
        return self.samples.get((name, frozenset(labels.items())), default)

    def names(self) -> set[str]:
        """Every sample name exposed."""
        return {name for name, _ in self.samples}


def scrape(server: RunningServer, token: str = ADMIN_TOKEN) -> Scrape:
    """GET /metrics and parse it; fails unless it answers 200 in the Prometheus text format."""
    with server.client(token) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4"), response.headers
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, types)
