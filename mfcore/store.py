"""The project's files: numbered migration files, the earlier tool's plans,
schema.json, .applied and the model cache (SPEC §3).

This is the one module that opens them. Documents are checked here and handed in
their current form to the codecs (operations/codec.py, snapshot.py); the earlier
tool's forms go through legacy.py first, so nothing past this reader knows them.
Numbering, names, checksums and atomic writes live here too. It knows nothing of
databases.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional

import orjson

from . import files, legacy
from .errors import MigrationFileError, SchemaFileError
from .operations import operation_from_json
from .schema import Schema
from .snapshot import FORMAT, dumps, schema_from_json, schema_to_json

MIGRATION_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_]*)\.json$")
SCHEMA_FILE = "schema.json"
APPLIED_FILE = ".applied"
CACHE_DIR = ".mf_cache"
_CACHE_GITIGNORE = b"# Created by mf: a cache that makemigrations rebuilds at will.\n*\n"
SUFFIX_LIMIT = 60


@dataclass(frozen=True)
class MigrationFile:
    number: int
    name: str      # the file name, e.g. 002_add_phone.json
    path: str

    @property
    def label(self) -> str:
        return f"{self.number:03d}"

    def read_bytes(self) -> bytes:
        data = self.read_bytes_if_present()
        if data is None:
            raise MigrationFileError(f"{self.name}: the file disappeared while mf was reading")
        return data

    def read_bytes_if_present(self) -> Optional[bytes]:
        """The file's bytes, or None when it is gone; MigrationFileError when it is not a
        regular file or cannot be read."""
        return files.read_file(self.path, MigrationFileError, shown=self.name, missing_ok=True)

    def checksum(self) -> str:
        return checksum(self.read_bytes())


@dataclass(frozen=True)
class Migration:
    """A migration file read and understood."""

    file: MigrationFile
    operations: tuple
    atomic: bool
    checksum: str
    legacy: bool  # written by the earlier tool (no "format" key)

    @property
    def name(self) -> str:
        return self.file.name


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- listing and numbering

def list_migration_files(directory: str) -> list[MigrationFile]:
    """The numbered files, in numeric order; two files with one number are an error."""
    found: dict[int, MigrationFile] = {}
    entries = files.list_directory(directory, MigrationFileError)
    if entries is None:
        return []
    for entry in entries:
        match = MIGRATION_FILE.match(entry)
        if not match:
            continue
        number = int(match.group(1))
        current = MigrationFile(number, entry, os.path.join(directory, entry))
        if number in found:
            first, second = sorted([found[number].name, entry])
            raise MigrationFileError(
                f"two migration files have the number {number:03d}: {first} and {second} "
                "(two branches merged?); renumber one of them to come after the other")
        found[number] = current
    return [found[n] for n in sorted(found)]


def next_number(files) -> int:
    return files[-1].number + 1 if files else 1


def file_name(number: int, suffix: str) -> str:
    return f"{number:03d}_{suffix}.json"


def suffix_for(operations, name: Optional[str] = None) -> str:
    """The file name suffix: --name, or the first two operations' names, lowercased."""
    if name is not None:
        text = name
    else:
        parts = [op.name_part() for op in list(operations)[:2]]
        text = "_".join(parts) if parts else "empty"
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "migration"
    if len(text) > SUFFIX_LIMIT:
        cut = text[:SUFFIX_LIMIT]
        boundary = cut.rfind("_")
        text = cut[:boundary] if boundary > 0 else cut
    return text


# ---------------------------------------------------------------- reading migrations

def read_migration(file: MigrationFile, state: Schema, data: Optional[bytes] = None,
                   doc=None) -> Migration:
    """Read one file. ``state`` is the schema before it, which only the earlier tool's
    files need (a file in the new form carries everything; pass Schema()). ``data``
    and ``doc`` spare reading and parsing again when the caller has them."""
    if data is None:
        data = file.read_bytes()
    if doc is None:
        doc = _parse(data, file.name, MigrationFileError)
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise MigrationFileError(f"{file.name}: a migration file is an object with an 'ops' list")
    fmt = doc.get("format")
    if "format" in doc and (type(fmt) is not int or fmt < 1):
        raise MigrationFileError(f"{file.name}: 'format' must be {FORMAT}, got {fmt!r:.40}")
    if fmt is not None and fmt != FORMAT:
        raise MigrationFileError(f"{file.name}: format {fmt!r} is newer than this mf understands")
    atomic = doc.get("atomic", True)
    if not isinstance(atomic, bool):
        raise MigrationFileError(f"{file.name}: 'atomic' must be true or false")
    legacy_form = fmt is None
    if legacy_form:
        operations = legacy.operations(doc["ops"], state, file.name)
    else:
        operations = [operation_from_json(op_doc, f"{file.name}: ops[{position}]")
                      for position, op_doc in enumerate(doc["ops"])]
    return Migration(file, tuple(operations), atomic, checksum(data), legacy_form)


def read_migrations(directory: str, files, wanted) -> dict:
    """{file name: Migration} for the files of ``wanted``; ``files`` is every migration
    file of the directory, whose history the earlier tool's files are read against."""
    raw = {}
    legacy_files = []
    for file in wanted:
        data = file.read_bytes()
        document = _parse(data, file.name, MigrationFileError)
        raw[file.name] = (data, document)
        if not isinstance(document, dict) or document.get("format") is None:
            legacy_files.append(file)
    migrations = {}
    if legacy_files:
        # The earlier tool's files need the schema before them: fold the history.
        last = max(f.number for f in legacy_files)
        history, _schema = load_history(directory, [f for f in files if f.number <= last])
        migrations.update((m.name, m) for m in history if m.legacy)
    for file in wanted:
        if file.name not in migrations:
            data, document = raw[file.name]
            migrations[file.name] = read_migration(file, Schema(), data, document)
    return migrations


def _parse(data: bytes, name: str, error):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise error(f"{name}: not valid JSON ({exc})") from None


def load_history(directory: str, files=None) -> tuple[list[Migration], Schema]:
    """Every migration file read in order, and the schema they build up."""
    if files is None:
        files = list_migration_files(directory)
    state = Schema()
    migrations = []
    for file in files:
        migration = read_migration(file, state)
        migrations.append(migration)
        for operation in migration.operations:
            state = operation.apply(state)
    return migrations, state


def write_migration(directory: str, number: int, suffix: str, operations, atomic: bool = True) -> str:
    path = os.path.join(directory, file_name(number, suffix))
    atomic_write(path, migration_bytes(operations, atomic))
    return path


def write_migration_bytes(path: str, data: bytes) -> None:
    """A migration file whose bytes migration_bytes made, written atomically."""
    atomic_write(path, data)


# ---------------------------------------------------------------- the earlier tool's plans

PLAN_FILES = ("plan.initial.json", "plan.incremental.json")


def plan_files(directory: str) -> list:
    """The earlier single-plan format's files in a migrations directory, in order."""
    return [os.path.join(directory, name) for name in PLAN_FILES
            if os.path.isfile(os.path.join(directory, name))]


def read_plan(path: str, state: Schema) -> list:
    """A plan file's operations (always the earlier tool's form), read against ``state``."""
    name = os.path.basename(path)
    doc = _parse(files.read_file(path, MigrationFileError, shown=name), name, MigrationFileError)
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise MigrationFileError(f"{name}: a plan is an object with an 'ops' list")
    return legacy.operations(doc["ops"], state, name)


def set_plans_aside(directory: str, aside: str) -> None:
    """Move the plan files into ``aside`` (a folder of the directory), kept, not deleted."""
    folder = os.path.join(directory, aside)
    os.makedirs(folder, exist_ok=True)
    for path in plan_files(directory):
        os.replace(path, os.path.join(folder, os.path.basename(path)))
    fsync_directory(directory)


def migration_bytes(operations, atomic: bool = True, doc: Optional[list] = None) -> bytes:
    """A migration file's bytes; ``doc``: lines for its "doc" key, which the reader ignores."""
    document = {"format": FORMAT, "ops": [op.to_json() for op in operations]}
    if not atomic:
        document["atomic"] = False
    if doc is not None:
        document["doc"] = doc
    return dumps(document)


# What `makemigrations --empty` writes under "doc" (JSON has no comments): the data
# steps that can go into "ops", to copy from.
DATA_STEP_TEMPLATE = [
    "Data steps run in order inside this migration's transaction. Copy into \"ops\":",
    {"op": "run_sql",
     "sql": "UPDATE my_table SET new_column = old_column WHERE new_column IS NULL",
     "reverse_sql": ""},
    {"op": "run_sql",
     "sql": {"postgresql": "UPDATE ... -- one text per database", "sqlite": "UPDATE ..."},
     "reverse_sql": {"postgresql": "...", "sqlite": "..."}},
    "reverse_sql undoes the step for `mf db rollback`: \"\" when there is nothing to undo; "
    "leave it out and the migration cannot be rolled back.",
]


# ---------------------------------------------------------------- schema.json

def snapshot_path(directory: str) -> str:
    return os.path.join(directory, SCHEMA_FILE)


def read_snapshot(directory: str) -> tuple[Optional[Schema], Optional[str]]:
    """schema.json as a Schema, and the migration file it reflects (None for the earlier
    tool's snapshots, which did not say). (None, None) when there is no schema.json."""
    schema, reflects, _document = read_snapshot_document(directory)
    return schema, reflects


def read_snapshot_data(directory: str) -> Optional[bytes]:
    """schema.json's bytes, or None when there is none."""
    return files.read_file(snapshot_path(directory), SchemaFileError, missing_ok=True)


def read_snapshot_document(directory: str, data: Optional[bytes] = None) -> tuple:
    """As read_snapshot, plus the parsed document when it is in the current form, for
    snapshot_bytes to reuse (None when absent or in the earlier tool's form). ``data``
    is schema.json's bytes when the caller has read them already."""
    path = snapshot_path(directory)
    if data is None:
        data = read_snapshot_data(directory)
    if data is None:
        return None, None, None
    doc = _parse(data, path, SchemaFileError)
    schema = _schema(doc, path)
    return schema, doc.get("migration"), (doc if doc.get("format") is not None else None)


def load_schema(path: str) -> Schema:
    """Read a schema.json (any path) in the current or the earlier tool's form."""
    data = files.read_file(path, SchemaFileError, missing_ok=True)
    if data is None:
        raise SchemaFileError(f"{path}: no such file")
    return _schema(_parse(data, path, SchemaFileError), path)


def _schema(doc, where: str) -> Schema:
    if isinstance(doc, dict) and doc.get("format") is None:
        return legacy.schema(doc, where)
    return schema_from_json(doc, where)


def snapshot_bytes(schema: Schema, migration_name: Optional[str], reuse=None) -> bytes:
    """schema.json's bytes; see snapshot.schema_to_json for ``reuse``."""
    document = schema_to_json(schema, reuse)
    if migration_name is not None:
        document["migration"] = migration_name
    return dumps(document)


def write_snapshot(directory: str, schema: Schema, migration_name: Optional[str], reuse=None) -> None:
    atomic_write(snapshot_path(directory), snapshot_bytes(schema, migration_name, reuse))


def write_snapshot_bytes(directory: str, data: bytes) -> None:
    """schema.json as snapshot_bytes (or snapshot.rewrite) made it, written atomically."""
    atomic_write(snapshot_path(directory), data)


# ---------------------------------------------------------------- .applied

def applied_path(directory: str) -> str:
    return os.path.join(directory, APPLIED_FILE)


def read_applied(directory: str) -> Optional[list]:
    """The names in .applied, or None when there is no such file."""
    path = applied_path(directory)
    data = files.read_file(path, MigrationFileError, missing_ok=True)
    if data is None:
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MigrationFileError(f"{path}: not valid JSON ({exc}); it should be "
                                 '{"applied": [file names]}') from None
    if not isinstance(doc, dict) or not isinstance(doc.get("applied"), list) \
            or not all(isinstance(n, str) for n in doc["applied"]):
        raise MigrationFileError(f'{path}: expected {{"applied": [file names]}}')
    return list(doc["applied"])


def write_applied(directory: str, names) -> None:
    """Exactly {"applied": [...]}, written atomically."""
    atomic_write(applied_path(directory), orjson.dumps({"applied": list(names)}, option=orjson.OPT_INDENT_2) + b"\n")


# ---------------------------------------------------------------- the model cache

def cache_path(migrations_dir: str) -> str:
    """``.mf_cache/<directory name>.json`` beside the migrations directory."""
    directory = os.path.abspath(migrations_dir)
    return os.path.join(os.path.dirname(directory), CACHE_DIR, os.path.basename(directory) + ".json")


def read_cache(migrations_dir: str):
    """The cache document as parsed (model_cache.py checks its shape), or None when
    there is none or it does not read: the cache is only ever a shortcut."""
    try:
        data = files.read_file(cache_path(migrations_dir), MigrationFileError, missing_ok=True)
        return orjson.loads(data) if data is not None else None
    except (MigrationFileError, orjson.JSONDecodeError):
        return None


def write_cache(migrations_dir: str, data: bytes) -> None:
    """Replace the cache; a cache that cannot be written is no error (the next run is a
    full one). No fsync: a torn cache is unreadable or names another schema.json."""
    path = cache_path(migrations_dir)
    try:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, ".gitignore"), "wb") as handle:
                handle.write(_CACHE_GITIGNORE)
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except OSError:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError:
        pass


# ---------------------------------------------------------------- reset

def remove_project_files(migrations_dir: str) -> list:
    """Delete the migration files, schema.json, .applied and the model cache (which
    would describe files that are gone); returns the names removed from the directory,
    in that order (the cache is not named: it is not the project's)."""
    removed = []
    for file in list_migration_files(migrations_dir):
        os.unlink(file.path)
        removed.append(file.name)
    for extra in (snapshot_path(migrations_dir), applied_path(migrations_dir)):
        if os.path.exists(extra):
            os.unlink(extra)
            removed.append(os.path.basename(extra))
    if os.path.isdir(migrations_dir):
        fsync_directory(migrations_dir)
    if os.path.exists(cache_path(migrations_dir)):
        os.unlink(cache_path(migrations_dir))
    return removed


# ---------------------------------------------------------------- atomic writes

def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` so that a reader sees the old file or the new one, never half of one:
    a temporary file in the same directory, flushed and fsynced, renamed over the old
    one, then the directory fsynced."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".mf-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

