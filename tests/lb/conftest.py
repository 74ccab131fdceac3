"""Fixtures for the load-balancer tests: see lb_helpers."""

from __future__ import annotations

from lb_helpers import cluster, haproxy, nginx, undo

__all__ = ["cluster", "haproxy", "nginx", "undo"]
