"""Shared pieces of the benchmarks: generated schemas, cached per session, and MB/s.

Benchmarks measure and report; they never assert a time (SPEC §7). Run them with
``python -m pytest benchmarks --benchmark-only``; ``MF_BENCH_SLOW=1`` adds the runs
that take minutes (the Lark reader on 5,000 models).
"""
from __future__ import annotations

import asyncio
import functools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import generate_models  # noqa: E402

SLOW = os.environ.get("MF_BENCH_SLOW", "") not in ("", "0")

# Reports a benchmark module adds (a table of its figures), printed at the end of the run.
SUMMARIES: list = []


@functools.lru_cache(maxsize=None)
def models_text(n_models: int, seed: int = 0) -> str:
    """The generated schema of n_models models (20 fields each), made once per session."""
    return generate_models(n_models, seed=seed)


def record_throughput(benchmark, text: str) -> None:
    """Put the size of text and the MB/s of the benchmark's median round in extra_info."""
    megabytes = len(text.encode("utf-8")) / 1e6
    benchmark.extra_info["MB"] = round(megabytes, 3)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and stats.stats.median > 0:
        benchmark.extra_info["MB/s"] = round(megabytes / stats.stats.median, 2)


@pytest.fixture
def compiled_reader():
    """mfcore._parser, or a skip where it is not built."""
    try:
        from mfcore import _parser
    except ImportError:
        pytest.skip("mfcore._parser is not built")
    return _parser


@pytest.fixture(scope="module")
def loop():
    """An event loop for a module's benchmarks that run mf's async API."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
    """The reports benchmark modules left in SUMMARIES, after pytest-benchmark's tables."""
    for text in SUMMARIES:
        terminalreporter.write_sep("-", "benchmark report")
        terminalreporter.write(text)
