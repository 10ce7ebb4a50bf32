"""A large image table is evaluated by `evalkit evaluate --model` with bounded memory (the images are
streamed), and the streamed metrics equal the in-memory path's on the same pixels. The full
20,000-PNG run is benchmarks/bench_images_table.py (numbers in docs/drafts/images.md); here a smaller
table keeps the test quick, with the same 1.5 GB bound."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_images_table.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_images_table", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_large_table_is_evaluated_in_bounded_memory_with_the_in_memory_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(BENCH.parents[1]))
    r = _bench().run(1500, 200, 0, tmp_path)
    assert r["evaluated_rows"] == 1500
    assert 0 < r["peak_rss_mb"] < 1500
    assert r["max_difference"] <= 1e-6
