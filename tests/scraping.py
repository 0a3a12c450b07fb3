"""A server's ``GET /metrics``, read as a Prometheus scraper reads it."""

from __future__ import annotations

from typing import Protocol

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.timing import seconds


class Served(Protocol):
    http_url: str


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(server: Served) -> Samples:
    """Every sample, by name and labels."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=seconds(5)) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))
