"""Reading and parsing generated schemas of 100, 1,000 and 5,000 models (20 fields each).

``read`` is the reader alone (text -> raw tree); ``parse`` is the whole of
``mfcore.language.parser.parse`` (reader + validation into a Schema). Each runs on the
compiled reader and on the Lark reader. The Lark reader takes about 15 s a round on
5,000 models, so that size runs only with MF_BENCH_SLOW=1. extra_info carries MB and
MB/s; test_parse_memory reports the peak memory of one parse of 5,000 models instead
of a time.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SLOW, models_text, record_throughput

from mfcore.language import lark_reader
from mfcore.language.parser import parse

SIZES = [100, 1000, 5000]
LARK_SIZES = SIZES if SLOW else [100, 1000]


def _rounds(n_models: int) -> dict:
    return {"rounds": 3 if n_models >= 1000 else 10, "iterations": 1, "warmup_rounds": 0}


@pytest.mark.parametrize("n_models", SIZES)
def test_read_compiled(benchmark, compiled_reader, n_models):
    text = models_text(n_models)
    benchmark.group = f"read {n_models} models"
    benchmark.pedantic(compiled_reader.read, args=(text,), rounds=20 if n_models < 5000 else 10,
                       warmup_rounds=1)
    record_throughput(benchmark, text)


@pytest.mark.parametrize("n_models", LARK_SIZES)
def test_read_lark(benchmark, n_models):
    text = models_text(n_models)
    benchmark.group = f"read {n_models} models"
    benchmark.pedantic(lark_reader.read, args=(text,), **_rounds(n_models))
    record_throughput(benchmark, text)


@pytest.mark.parametrize("n_models", SIZES)
def test_parse_compiled(benchmark, compiled_reader, n_models):
    text = models_text(n_models)
    benchmark.group = f"parse {n_models} models"
    benchmark.pedantic(parse, args=(text,), kwargs={"compiled": True}, rounds=10 if n_models < 5000 else 5,
                       warmup_rounds=1)
    record_throughput(benchmark, text)


@pytest.mark.parametrize("n_models", LARK_SIZES)
def test_parse_lark(benchmark, n_models):
    text = models_text(n_models)
    benchmark.group = f"parse {n_models} models"
    benchmark.pedantic(parse, args=(text,), kwargs={"compiled": False}, **_rounds(n_models))
    record_throughput(benchmark, text)


_MEASURE_MEMORY = """
import json, sys, tracemalloc
sys.path.insert(0, {benchmarks!r})
from generate import generate_models
from mfcore.language.parser import parse

def status(key):  # Linux: kB figures of /proc/self/status, in MB
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1e3

text = generate_models(5000)
parse(generate_models(2), compiled={compiled})  # imports and first-use caches, not measured
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # restart the peak (VmHWM) from the current size
schema = parse(text, compiled={compiled})
peak = status("VmHWM")
del schema
tracemalloc.start()
schema = parse(text, compiled={compiled})
print(json.dumps({{"rss_before_MB": before, "rss_peak_MB": peak,
                   "python_heap_peak_MB": tracemalloc.get_traced_memory()[1] / 1e6}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_parse_memory(benchmark, compiled_reader):
    """Peak memory of parsing 5,000 models, in a fresh process (the time is not the point).

    rss_peak_MB is the whole process at its peak during the parse (interpreter and
    text included), growth_MB what the parse added to it, python_heap_peak_MB what
    tracemalloc saw allocated at the peak.
    """
    script = _MEASURE_MEMORY.format(benchmarks=str(Path(__file__).resolve().parent), compiled=True)

    def measure():
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    benchmark.group = "memory"
    figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update({key: round(value, 1) for key, value in figures.items()})
    benchmark.extra_info["growth_MB"] = round(figures["rss_peak_MB"] - figures["rss_before_MB"], 1)
