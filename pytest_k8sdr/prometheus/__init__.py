"""Prometheus: the client the steady state and `assert_promql` ask, and a managed local server."""
