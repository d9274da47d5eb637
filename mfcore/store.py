"""The migrations directory: numbered files, schema.json and .applied (SPEC §3).

Everything here is files: numbering, names, checksums, atomic writes. It knows
nothing of databases.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Optional

import orjson

from .errors import MigrationFileError, SchemaFileError
from .operations import attach_tables, operation_from_json
from .schema import Schema
from .snapshot import FORMAT, dumps, schema_from_json, schema_to_json

MIGRATION_FILE = re.compile(r"^(\d+)_([A-Za-z0-9_]*)\.json$")
SCHEMA_FILE = "schema.json"
APPLIED_FILE = ".applied"
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
        try:
            with open(self.path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise MigrationFileError(f"{self.name}: the file disappeared while mf was reading") from None

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
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
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
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MigrationFileError(f"{file.name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), list):
        raise MigrationFileError(f"{file.name}: a migration file is an object with an 'ops' list")
    fmt = doc.get("format")
    if fmt is not None and fmt != FORMAT:
        raise MigrationFileError(f"{file.name}: format {fmt!r} is newer than this mf understands")
    atomic = doc.get("atomic", True)
    if not isinstance(atomic, bool):
        raise MigrationFileError(f"{file.name}: 'atomic' must be true or false")
    operations = []
    start = state
    legacy = fmt is None
    for position, op_doc in enumerate(doc["ops"], 1):
        operation = operation_from_json(op_doc, state, f"{file.name}: operation {position}")
        operations.append(operation)
        if legacy:  # the next operation may need this one's result to be completed
            state = operation.apply(state)
    if legacy:
        # The earlier tool's operations lack the table definitions the dialects need.
        operations, _ = attach_tables(operations, start)
    return Migration(file, tuple(operations), atomic, checksum(data), legacy)


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


def migration_bytes(operations, atomic: bool = True) -> bytes:
    document = {"format": FORMAT, "ops": [op.to_json() for op in operations]}
    if not atomic:
        document["atomic"] = False
    return dumps(document)


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
    try:
        with open(snapshot_path(directory), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_snapshot_document(directory: str, data: Optional[bytes] = None) -> tuple:
    """As read_snapshot, plus the parsed document (None when absent). ``data`` is
    schema.json's bytes when the caller has read them already."""
    path = snapshot_path(directory)
    if data is None:
        data = read_snapshot_data(directory)
    if data is None:
        return None, None, None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaFileError(f"{path}: not valid JSON ({exc})") from None
    schema = schema_from_json(doc, path)
    return schema, doc.get("migration"), doc


def snapshot_bytes(schema: Schema, migration_name: Optional[str], reuse=None) -> bytes:
    """schema.json's bytes; see snapshot.schema_to_json for ``reuse``."""
    document = schema_to_json(schema, reuse)
    if migration_name is not None:
        document["migration"] = migration_name
    return dumps(document)


def write_snapshot(directory: str, schema: Schema, migration_name: Optional[str], reuse=None) -> None:
    atomic_write(snapshot_path(directory), snapshot_bytes(schema, migration_name, reuse))


# ---------------------------------------------------------------- .applied

def applied_path(directory: str) -> str:
    return os.path.join(directory, APPLIED_FILE)


def read_applied(directory: str) -> Optional[list]:
    """The names in .applied, or None when there is no such file."""
    path = applied_path(directory)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
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

