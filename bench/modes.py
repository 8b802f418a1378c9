"""The benchmark's modes: data sizes, run lengths, connections, checkout and memory sizes
(`--mode`). The worker sweep's configurations: comparisons.worker_configs."""

from __future__ import annotations

import os

CORES = os.cpu_count() or 1

MODES = {
    # A fast self-check of the harness (tiny data, 1 s runs): figures mean little.
    "smoke": {
        "duration": 1,
        "warmup": 1,
        "connections": 8,
        "datasets": [("2k", 2_000, 1_000, 20), ("5k", 5_000, 2_000, 20)],
        "main": "5k",
        # Section 2: each page measured this many times between hello runs (median shown).
        "rounds": 1,
        "depths": [1, 100, 10_000],
        "calls": 5,
        # Concurrent buyers, orders each (checkout run).
        "checkout": {"buyers": 4, "orders": 3},
        # Worker RSS read after these many requests (the target compares last to first).
        "memory_checkpoints": [100, 600],
    },
    "quick": {
        "duration": 5,
        "warmup": 1,
        "connections": 32,
        # (label, products, orders, users)
        "datasets": [("10k", 10_000, 20_000, 100), ("100k", 100_000, 200_000, 500)],
        "main": "100k",
        "rounds": 3,
        "depths": [1, 100, 1_000, 10_000],
        "calls": 30,
        "checkout": {"buyers": 8, "orders": 25},
        "memory_checkpoints": [100, 1_000, 5_000, 10_000],
    },
    "full": {
        "duration": 10,
        "warmup": 2,
        "connections": 32,
        "datasets": [
            ("10k", 10_000, 20_000, 200),
            ("100k", 100_000, 1_000_000, 10_000),
            ("1M", 1_000_000, 1_000_000, 10_000),
        ],
        "main": "100k",
        "rounds": 3,
        "depths": [1, 100, 10_000],
        "calls": 100,
        "checkout": {"buyers": 16, "orders": 50},
        "memory_checkpoints": [100, 1_000, 5_000, 10_000],
    },
}
