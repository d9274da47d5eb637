"""`mf --help` as a process (SPEC §7: under 60 ms; nothing heavy is imported), beside
the bare interpreter's own start-up on the same machine for scale.

    python -m pytest benchmarks/test_bench_cli.py --benchmark-only
"""
from __future__ import annotations

import subprocess
import sys


def run(*args):
    subprocess.run([sys.executable, *args], check=True, capture_output=True)


def test_bare_interpreter_start(benchmark):
    benchmark.pedantic(run, args=("-c", "pass"), rounds=15, iterations=1)


def test_mf_help(benchmark):
    benchmark.pedantic(run, args=("-m", "mfcore.cli", "--help"), rounds=15, iterations=1)

