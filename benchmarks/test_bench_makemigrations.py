"""makemigrations on large schemas (SPEC §7): the diff alone, and `mf db makemigrations`
as a whole process, on a generated schema with 1% of its models changed.

    python -m pytest benchmarks/test_bench_makemigrations.py --benchmark-only
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mfcore
from mfcore import load_schema
from mfcore.differ import diff
from mfcore.snapshot import dump_schema, without_sources

sys.path.insert(0, str(Path(__file__).parent))
from generate import change_models, changed_model_names, generate_models  # noqa: E402

SIZES = [1000, 5000] + ([20000] if os.environ.get("MF_BENCH_SLOW", "") not in ("", "0") else [])


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n}_models")
def schemas(request, tmp_path_factory):
    """(n, old schema read back from schema.json, new schema with 1% changed, project dir)."""
    n = request.param
    text = generate_models(n)
    changed_text = change_models(text, 0.01)
    root = tmp_path_factory.mktemp(f"project{n}")
    (root / "language_config.yaml").write_text('database:\n  driver: sqlite\n  dsn: "./dev.db"\n')
    (root / "models.mp").write_text(text)
    subprocess.run([sys.executable, "-m", "mfcore.cli", "db", "makemigrations"], cwd=root, check=True,
                   capture_output=True)
    (root / "models.mp").write_text(changed_text)
    shutil.copytree(root / "migrations", root / "migrations.pristine")
    old = load_schema(str(root / "migrations" / "schema.json"))
    new = mfcore.parse(changed_text)
    return n, old, new, root, len(changed_model_names(text, 0.01))


def test_diff_one_percent_changed(benchmark, schemas):
    """diff() alone (it is pure Python on both paths)."""
    n, old, new, _root, changed = schemas
    operations = benchmark(diff, old, new)
    assert {op.model_name for op in operations} <= {m for m in new.models} | {m for m in old.models}
    benchmark.extra_info.update(models=n, changed_models=changed, operations=len(operations))


@pytest.mark.parametrize("sources", ["sources", "no_sources"])
def test_makemigrations_process_one_percent_changed(benchmark, schemas, sources):
    """The whole `mf db makemigrations` process: start-up, parse, snapshot, diff, write;
    its peak memory is in extra_info.

    ``sources``: schema.json as makemigrations wrote it, which is how the next run finds
    it in any clone (a fresh one, or after a pull brought a teammate's migration): only
    the edited models are read. ``no_sources``: a schema.json without them (written by
    an earlier mf, rebuilt by rebase, or edited by hand), so every model is read."""
    n, _old, _new, root, changed = schemas
    migrations = root / "migrations"
    pristine = root / "migrations.pristine"

    def restore():
        shutil.rmtree(migrations)
        shutil.copytree(pristine, migrations)
        if sources == "no_sources":
            snapshot = migrations / "schema.json"
            snapshot.write_bytes(without_sources(snapshot.read_bytes()))
        return (), {}

    peaks = []

    def run():
        done = subprocess.run([sys.executable, "-c", _REPORTING_PEAK, "db", "makemigrations", "-v"], cwd=root,
                              check=True, capture_output=True, text=True, env=_environment())
        peaks.append(int(done.stderr.rsplit("peak_kb=", 1)[1]))
        return done

    result = benchmark.pedantic(run, setup=restore, rounds=5, iterations=1, warmup_rounds=1)
    # One migration more (in two files at 20,000 models: it alters more tables than one file may lock).
    assert len(list(migrations.glob("*.json"))) > len(list(pristine.glob("*.json")))
    assert (f"Read {changed} of {n} models" in result.stdout) == (sources == "sources")
    benchmark.extra_info.update(models=n, changed_models=changed, sources=sources, peak_mb=round(max(peaks) / 1024),
                                models_mp_mb=round((root / "models.mp").stat().st_size / 1e6, 2))


def _environment() -> dict:
    """The environment of a user's shell: bytecode is cached as after `pip install`,
    even where the test run's environment says not to write it."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def test_schema_json_roundtrip(benchmark, schemas, tmp_path):
    n, _old, new, _root, _changed = schemas
    path = tmp_path / "schema.json"

    def roundtrip():
        path.write_bytes(dump_schema(new))
        return load_schema(str(path))

    assert benchmark(roundtrip) == new
    benchmark.extra_info.update(models=n, schema_json_mb=round(path.stat().st_size / 1e6, 2))


FIRST_SIZES = [1000, 5000] + ([20000] if os.environ.get("MF_BENCH_SLOW", "") not in ("", "0") else [])

# `mf db makemigrations` (or the mf command given after it) run as a process that reports its
# own peak memory on stderr: the high-water mark of its own memory (VmHWM). Not ru_maxrss,
# which Linux carries over an exec from the process that started it (here the benchmark's,
# holding the generated schemas).
_REPORTING_PEAK = ("import atexit, runpy, sys\n"
                   "def peak_kb():\n"
                   "    with open('/proc/self/status') as status:\n"
                   "        return int(next(line for line in status if line.startswith('VmHWM:')).split()[1])\n"
                   "atexit.register(lambda: sys.stderr.write('peak_kb=%d\\n' % peak_kb()))\n"
                   "sys.argv = ['mf'] + (sys.argv[1:] or ['db', 'makemigrations'])\n"
                   "runpy.run_module('mfcore.cli', run_name='__main__')\n")


@pytest.mark.parametrize("n", FIRST_SIZES, ids=lambda n: f"{n}_models")
def test_first_makemigrations_process(benchmark, tmp_path, n):
    """The first `mf db makemigrations` of a project: every model read, created and
    written twice (the migration and schema.json). Peak memory is in extra_info."""
    from conftest import models_text

    (tmp_path / "language_config.yaml").write_text('database:\n  driver: sqlite\n  dsn: "./dev.db"\n')
    (tmp_path / "models.mp").write_text(models_text(n))
    migrations = tmp_path / "migrations"
    peaks = []

    def restore():
        shutil.rmtree(migrations, ignore_errors=True)
        return (), {}

    def run():
        done = subprocess.run([sys.executable, "-c", _REPORTING_PEAK], cwd=tmp_path, check=True,
                              capture_output=True, text=True, env=_environment())
        peaks.append(int(done.stderr.rsplit("peak_kb=", 1)[1]))

    benchmark.pedantic(run, setup=restore, rounds=3 if n <= 5000 else 1, iterations=1)
    written = sum(path.stat().st_size for path in migrations.glob("*.json"))
    assert len(list(migrations.glob("001_*.json"))) == 1
    benchmark.extra_info.update(models=n, peak_mb=round(max(peaks) / 1024), written_mb=round(written / 1e6, 1))
