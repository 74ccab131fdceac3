"""What a test does to a node: API-level faults (node.py) and its machine (machines/)."""

from __future__ import annotations
