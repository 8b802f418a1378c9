"""The benchmark's modes: data sizes, run lengths, connection and worker counts (`--mode`)."""

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
        "depths": [1, 100, 10_000],
        "workers": [1, 2],
        "calls": 5,
    },
    "quick": {
        "duration": 5,
        "warmup": 1,
        "connections": 32,
        # (label, products, orders, users)
        "datasets": [("10k", 10_000, 20_000, 100), ("100k", 100_000, 200_000, 500)],
        "main": "100k",
        "depths": [1, 100, 1_000, 10_000],
        "workers": sorted({1, 2, CORES, 2 * CORES + 1}),
        "calls": 30,
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
        "depths": [1, 100, 10_000],
        "workers": list(range(1, 2 * CORES + 2)),
        "calls": 100,
    },
}
