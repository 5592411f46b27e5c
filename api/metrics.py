"""Prometheus metrics: request counts and latency per route, index size. One registry per app."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("lsr_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "lsr_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.documents = Gauge("lsr_index_documents", "Searchable documents", registry=self.registry)
        self.pending = Gauge("lsr_index_pending_updates", "Live updates not yet compacted", registry=self.registry)
        self.overloaded = Counter("lsr_overloaded_rejections", "Requests refused with 503", registry=self.registry)


# Label values come from fixed sets, so no request can add series: a made-up method is "other", a path no route
# matches is "unmatched", and a matched one is its route's template (never the path, which carries ids).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def route_label(scope: Scope) -> str:
    """The template of the route the router matched (set in the scope by the router), else "unmatched"; without
    converters ("/documents/{doc_id}", not "/documents/{doc_id:path}")."""
    route = scope.get("route")
    path = getattr(route, "path_format", getattr(route, "path", None))
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): labels by route template, so ids in paths do not explode the series."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            route, method = route_label(scope), method_label(scope["method"])
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
