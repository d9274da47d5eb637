"""The project's files: numbered migration files, the earlier tool's plans,
schema.json and .applied (SPEC §3).

This is the one module that opens them. Documents are checked here and handed in
their current form to the codecs (operations/codec.py, snapshot.py); the earlier
tool's forms go through legacy.py first, so nothing past this reader knows them.
Numbering, names, checksums and atomic writes live here too. It knows nothing of
databases.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass
from typing import Optional

import orjson

from . import files, legacy
from .errors import FileWriteError, MigrationFileError, SchemaFileError
from .operations import fold, operation_from_json
from .schema import Schema
from .snapshot import (FORMAT, INDEX_FOREIGN_KEYS, MADE_FROM, dumps, dumps_pieces, indexes_foreign_keys,
                       schema_from_json, schema_to_json)

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

    def replaces(self) -> tuple:
        """The names this file's "replaces" key lists (a squashed migration), () when none."""
        return replaced_names(self.read_bytes(), self.name)

    def squash_facts(self) -> tuple:
        """(what it replaces, its "part" as (index, count) or None): see squash_facts."""
        return squash_facts(self.read_bytes(), self.name)


@dataclass(frozen=True)
class Migration:
    """A migration file read and understood."""

    file: MigrationFile
    operations: tuple
    atomic: bool
    checksum: str
    legacy: bool  # written by the earlier tool (no "format" key)
    replaces: tuple = ()  # names of the migrations a squashed migration stands for
    lint_accept: tuple = ()  # lint rules accepted for this migration ("lint": {"accept": [...]})

    @property
    def has_data_steps(self) -> bool:
        return any(op.is_data_step for op in self.operations)

    @property
    def name(self) -> str:
        return self.file.name


def checksum(data: bytes) -> str:
    """The checksum of a migration file's content: of the document parsed and dumped
    again as mf writes files (sorted keys, two-space indent), so line endings,
    indentation and key order do not count, and a file as mf wrote it hashes exactly as
    its bytes do. Bytes that are not JSON are hashed as they are."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return byte_checksum(data)
    try:
        return byte_checksum(dumps(document))
    except TypeError:  # an integer beyond 64 bits: keep the bytes' checksum
        return byte_checksum(data)


def byte_checksum(data: bytes) -> str:
    """The checksum of the bytes, which ledgers written before content checksums hold."""
    return hashlib.sha256(data).hexdigest()


def file_facts(data: bytes, name: str) -> tuple:
    """(content checksum, the names its "replaces" lists) from one parse of the bytes."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        return byte_checksum(data), ()
    try:
        content = byte_checksum(dumps(document))
    except TypeError:
        content = byte_checksum(data)
    replaces = ()
    if isinstance(document, dict) and "replaces" in document:
        number = int(MIGRATION_FILE.match(name).group(1))
        replaces = _replaces(document, MigrationFile(number, name, name))
    return content, replaces


def checksum_matches(data: bytes, stored: str, content: Optional[str] = None) -> bool:
    """Does a ledger row's checksum belong to these bytes? Its content checksum, or the
    bytes' own checksum (rows written before checksums were over content)."""
    return (content or checksum(data)) == stored or byte_checksum(data) == stored


# ---------------------------------------------------------------- listing and numbering

def list_migration_files(directory: str) -> list[MigrationFile]:
    """The numbered files, in numeric order. Two files with one number are an error,
    unless one is a squashed migration that replaces the other (it keeps the number of
    the last migration it replaces, and comes after it), or they are the parts of one
    squash split into files (after that original while it is there, in part order)."""
    found: dict[int, list] = {}
    for file in every_migration_file(directory):
        found.setdefault(file.number, []).append(file)
    listed = []
    for number in sorted(found):
        same = found[number]
        if len(same) == 1 and _PART_NAME.search(same[0].name):
            _check_lone_part(same[0])
        listed.extend(same if len(same) == 1 else _squash_beside_original(same))
    return listed


# How mf db squash names the files of a split squash (part_suffixes): only a file so
# named is read to see whether it is one part left alone.
_PART_NAME = re.compile(r"_part\d+\.json$")
_PART_KEY = re.compile(rb'"part"\s*:')


def _check_lone_part(file: MigrationFile) -> None:
    """A part of a split squash without the other parts (and without the original of its
    number) would apply as if it were the whole squash: refuse it, naming what is missing.
    The files makemigrations splits are named so too, one to a number, and are large:
    only one whose bytes hold a "part" key is parsed."""
    data = file.read_bytes()
    if _PART_KEY.search(data) is None:
        return
    _replaced, part = squash_facts(data, file.name)
    if part is not None and part[1] > 1:
        missing = [index for index in range(1, part[1] + 1) if index != part[0]]
        raise MigrationFileError(
            f"the squashed migration numbered {file.number:03d} is split into {part[1]} files and part(s) "
            f"{', '.join(map(str, missing))} of it are missing (found {file.name}); restore them from version "
            "control")


def every_migration_file(directory: str) -> list[MigrationFile]:
    """The numbered files by number and name, two of one number included (what
    `mf db rebase` sorts out)."""
    entries = files.list_directory(directory, MigrationFileError)
    found = []
    for entry in entries or ():
        match = MIGRATION_FILE.match(entry)
        if match:
            found.append(MigrationFile(int(match.group(1)), entry, os.path.join(directory, entry)))
    return sorted(found, key=lambda f: (f.number, f.name))


def renumbered(file: MigrationFile, number: int) -> MigrationFile:
    """The file as it is named after moving it to ``number`` (its suffix kept); it is
    still read from where it is until rename_migration_file moves it."""
    name = file_name(number, MIGRATION_FILE.match(file.name).group(2))
    return MigrationFile(number, name, file.path)


def rename_migration_file(file: MigrationFile, new_name: str) -> None:
    """Give a migration file a new name in its directory; its bytes stay as they are
    (the ledger knows a renamed file by its content)."""
    directory = os.path.dirname(file.path)
    target = os.path.join(directory, new_name)
    if os.path.exists(target):
        raise MigrationFileError(f"cannot rename {file.name} to {new_name}: that file exists")
    os.rename(file.path, target)
    fsync_directory(directory)


def _squash_beside_original(same: list) -> list:
    """Files of one number: a squashed migration beside the last original it replaces
    (original first), the squash in parts ("part": [index, count], in that order) when it
    was split, with or without that original; or the error two branches' files give."""
    facts = {file.name: file.squash_facts() for file in same}
    originals = [file for file in same if not facts[file.name][0]]
    squashes = [file for file in same if facts[file.name][0]]
    replaced = {facts[file.name][0] for file in squashes}
    if len(originals) <= 1 and len(replaced) == 1 and all(f.name in next(iter(replaced)) for f in originals):
        parts = sorted(squashes, key=lambda file: (facts[file.name][1] or (1, 1), file.name))
        places = [facts[file.name][1] or (1, 1) for file in parts]
        if places == [(index, len(parts)) for index in range(1, len(parts) + 1)]:
            return originals + parts
        count = max(count for _index, count in places)
        if len(parts) > 1 and all(count == of for _index, of in places) and len(set(places)) == len(places):
            missing = sorted(set(range(1, count + 1)) - {index for index, _of in places})
            raise MigrationFileError(
                f"the squashed migration numbered {same[0].number:03d} is split into {count} files and "
                f"part(s) {', '.join(map(str, missing))} of it are missing (found {', '.join(f.name for f in parts)}); "
                "restore them from version control")
    first, second = sorted(f.name for f in same)[:2]
    raise MigrationFileError(
        f"two migration files have the number {same[0].number:03d}: {first} and {second} "
        "(two branches merged?); run `mf db rebase` to move the migrations this database has not applied "
        "after the newest one, renumbered, with schema.json rebuilt")


def find_migration(files, which, directory: str) -> MigrationFile:
    """The file of ``files`` that ``which`` names: a file name, or a number only one file
    has (a squash beside its original, or in parts, shares its number with others)."""
    if isinstance(which, str):
        found = next((f for f in files if f.name == which), None)
        if found is None:
            raise MigrationFileError(f"no migration file {which} in {directory}")
        return found
    same = [f for f in files if f.number == which]
    if not same:
        raise MigrationFileError(f"no migration numbered {which:03d} in {directory}")
    if len(same) > 1:
        raise MigrationFileError(f"{len(same)} migration files have the number {which:03d} "
                                 f"({', '.join(f.name for f in same)}); name the one you mean by its file name")
    return same[0]


def next_number(files) -> int:
    return files[-1].number + 1 if files else 1


def file_name(number: int, suffix: str) -> str:
    return f"{number:03d}_{suffix}.json"


def part_suffixes(suffix: str, count: int) -> list:
    """The suffixes of a migration split into ``count`` files: ``<suffix>_part1`` up to
    ``<suffix>_part<count>``, the shared part cut (at a ``_``) to keep each within the limit."""
    tail = f"_part{count}"
    base = _cut(suffix, SUFFIX_LIMIT - len(tail))
    return [f"{base}_part{number}" for number in range(1, count + 1)]


def suffix_for(operations, name: Optional[str] = None) -> str:
    """The file name suffix: --name, or the first two operations' names, lowercased."""
    if name is not None:
        text = name
    else:
        parts = [op.name_part() for op in list(operations)[:2]]
        text = "_".join(parts) if parts else "empty"
    text = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "migration"
    return _cut(text, SUFFIX_LIMIT)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    boundary = cut.rfind("_")
    return cut[:boundary] if boundary > 0 else cut


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
    replaces = _replaces(doc, file)
    _part(doc, file, replaces)
    legacy_form = fmt is None
    if legacy_form:
        operations = legacy.operations(doc["ops"], state, file.name)
    else:
        operations = [operation_from_json(op_doc, f"{file.name}: ops[{position}]")
                      for position, op_doc in enumerate(doc["ops"])]
    return Migration(file, tuple(operations), atomic, checksum(data), legacy_form, replaces,
                     _lint_accept(doc, file))


_RULE_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def _lint_accept(doc: dict, file: MigrationFile) -> tuple:
    """A migration's "lint": {"accept": ["rule-name", ...]}: the lint rules its author
    accepted for it (mf db lint reports them as accepted; lint.py knows the names)."""
    if "lint" not in doc:
        return ()
    lint = doc["lint"]
    if not isinstance(lint, dict) or set(lint) - {"accept"}:
        raise MigrationFileError(f"{file.name}: 'lint' must be an object with one key, 'accept' "
                                 "(a list of lint rule names)")
    accepted = lint.get("accept", [])
    if not isinstance(accepted, list) or not all(isinstance(n, str) and _RULE_NAME.fullmatch(n) for n in accepted):
        raise MigrationFileError(f"{file.name}: 'lint.accept' must be a list of lint rule names "
                                 f"such as \"ban-drop-column\", got {accepted!r:.80}")
    if len(set(accepted)) != len(accepted):
        raise MigrationFileError(f"{file.name}: 'lint.accept' names a rule twice")
    return tuple(accepted)


def _replaces(doc: dict, file: MigrationFile) -> tuple:
    """A squashed migration's "replaces": the names of the migrations it stands for,
    numbered from below to its own number, each once."""
    if "replaces" not in doc:
        return ()
    names = doc["replaces"]
    if doc.get("format") is None:
        raise MigrationFileError(f"{file.name}: 'replaces' needs \"format\": {FORMAT}")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise MigrationFileError(f"{file.name}: 'replaces' must be a non-empty list of migration file names")
    numbers = []
    for position, name in enumerate(names):
        match = MIGRATION_FILE.match(name)
        if match is None or name == file.name:
            raise MigrationFileError(f"{file.name}: replaces[{position}] must name another migration file "
                                     f"(NNN_name.json), got {name!r:.80}")
        numbers.append(int(match.group(1)))
    if numbers != sorted(set(numbers)) or numbers[-1] > file.number:
        raise MigrationFileError(f"{file.name}: 'replaces' must list migrations in increasing numeric order, "
                                 f"each number once, none after {file.label}")
    return tuple(names)


def _part(doc: dict, file: MigrationFile, replaces: tuple) -> Optional[tuple]:
    """A split squash's "part": [index, count], this file's place among the files of the
    squash (they share its number and its "replaces"); None when it has none."""
    if "part" not in doc:
        return None
    part = doc["part"]
    if not replaces:
        raise MigrationFileError(f"{file.name}: 'part' belongs to a squashed migration and needs 'replaces'")
    if not isinstance(part, list) or len(part) != 2 or not all(type(n) is int for n in part) \
            or not 1 <= part[0] <= part[1] or part[1] < 2:
        raise MigrationFileError(f"{file.name}: 'part' must be [index, count], 1 <= index <= count and "
                                 f"count 2 or more, got {part!r:.40}")
    return tuple(part)


def replaced_names(data: bytes, name: str) -> tuple:
    """What a migration file's bytes say it replaces (see _replaces); () when nothing."""
    return squash_facts(data, name)[0]


def squash_facts(data: bytes, name: str) -> tuple:
    """(what a migration file's bytes say it replaces, its "part" or None): see _replaces, _part."""
    number = int(MIGRATION_FILE.match(name).group(1))
    document = _parse(data, name, MigrationFileError)
    if not isinstance(document, dict):
        return (), None
    file = MigrationFile(number, name, name)
    replaces = _replaces(document, file)
    return replaces, _part(document, file, replaces)


def read_migrations(directory: str, files, wanted) -> dict:
    """{file name: Migration} for the files of ``wanted``; ``files`` is every migration
    file of the directory, whose history the earlier tool's files are read against."""
    migrations = {}
    legacy_files = []
    for file in wanted:
        # One file's JSON at a time: the documents of a first migration of 20,000
        # models, read all at once, took half the memory of a migrate.
        data = file.read_bytes()
        document = _parse(data, file.name, MigrationFileError)
        if not isinstance(document, dict) or document.get("format") is None:
            legacy_files.append(file)
        else:
            migrations[file.name] = read_migration(file, Schema(), data, document)
        del data, document
    if legacy_files:
        # The earlier tool's files need the schema before them: fold the history.
        last = max(f.number for f in legacy_files)
        history, _schema = load_history(directory, [f for f in files if f.number <= last])
        migrations.update((m.name, m) for m in history if m.legacy)
    return {file.name: migrations[file.name] for file in wanted}


def _parse(data: bytes, name: str, error):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise error(f"{name}: not valid JSON ({exc})") from None


def load_history(directory: str, files=None) -> tuple[list[Migration], Schema]:
    """Every migration file read in order, and the schema they build up (a squashed
    migration and the originals it replaces count once: see fold_skips)."""
    if files is None:
        files = list_migration_files(directory)
    # A file in the current form is understood as it is read, and its JSON let go (see
    # read_migrations); the earlier tool's files wait for the schema before them.
    read = []  # for each file, its Migration, or (data, document) of an earlier tool's file
    replaces = {}
    for file in files:
        data = file.read_bytes()
        document = _parse(data, file.name, MigrationFileError)
        replaces[file.name] = _replaces(document, file) if isinstance(document, dict) else ()
        if isinstance(document, dict) and document.get("format") is not None:
            read.append(read_migration(file, Schema(), data, document))
        else:
            read.append((data, document))
        del data, document
    skipped = fold_skips(replaces)
    state = Schema()
    migrations = []
    for file, item in zip(files, read):
        migration = item if isinstance(item, Migration) else read_migration(file, state, *item)
        migrations.append(migration)
        if file.name not in skipped:
            state = fold(migration.operations, state)
    return migrations, state


def fold_skips(replaces: dict) -> set:
    """The files a fold of the directory leaves out, given {file name: names it replaces}
    for every file present: a squashed migration whose originals are all present (they
    build the same schema), else the originals still present (the squash stands for them)."""
    skipped = set()
    for name, replaced in replaces.items():
        if not replaced:
            continue
        present = [r for r in replaced if r in replaces]
        skipped.update([name] if len(present) == len(replaced) else present)
    return skipped


def schemas_around(history) -> tuple:
    """({name: the schema before it}, {name: the schema after it}) along ``history``
    (Migrations, in order) as the directory folds it (fold_skips). A squashed migration
    the fold leaves out, its originals all present, gets the schemas its own operations
    go through from the schema before the first original: what a database that applied
    it (or, split, its parts up to it) holds."""
    skipped = fold_skips({m.name: m.replaces for m in history})
    state = Schema()
    before, after, squashes = {}, {}, {}
    for migration in history:
        if migration.name in skipped and migration.replaces:
            start = squashes.get(migration.replaces, before.get(migration.replaces[0], state))
            before[migration.name] = start
            after[migration.name] = squashes[migration.replaces] = fold(migration.operations, start)
            continue
        before[migration.name] = state
        if migration.name not in skipped:
            state = fold(migration.operations, state)
        after[migration.name] = state
    return before, after


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


def migration_bytes(operations, atomic: bool = True, doc: Optional[list] = None,
                    replaces: Optional[list] = None, part: Optional[tuple] = None) -> bytes:
    """A migration file's bytes; ``doc``: lines for its "doc" key, which the reader ignores;
    ``replaces``: the names a squashed migration stands for; ``part``: (index, count) of
    a squash split into files."""
    document = {"format": FORMAT, "ops": [op.to_json() for op in operations]}
    if replaces:
        document["replaces"] = list(replaces)
    if part is not None:
        document["part"] = list(part)
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
    try:
        if has_conflict_markers(data):
            raise SchemaFileError(f"{path}: holds merge-conflict markers (<<<<<<< ======= >>>>>>>)")
        doc = _parse(data, path, SchemaFileError)
        schema = _schema(doc, path)
    except SchemaFileError as exc:
        raise SchemaFileError(f"{exc}. schema.json is derived from the migration files: "
                              "`mf db makemigrations` rebuilds it (after `mf db rebase` when two branches "
                              "added migrations)") from None
    return schema, doc.get("migration"), (doc if doc.get("format") is not None else None)


_CONFLICT_MARKERS = (b"<" * 7, b"=" * 7, b">" * 7)
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what \s matches in a bytes pattern


def has_conflict_markers(data: bytes) -> bool:
    """Does a file hold the lines git leaves where a merge conflicted: a line that starts
    with seven of <, = or > and then ends or goes on after a space? (The regular
    expression ^(<{7}|={7}|>{7})(\\s|$), multi-line; found with bytes.find, which is
    many times faster on a large schema.json.)"""
    size = len(data)
    for marker in _CONFLICT_MARKERS:
        if data.startswith(marker) and (size == 7 or data[7] in _WHITESPACE):
            return True
        line = b"\n" + marker
        at = data.find(line)
        while at >= 0:
            end = at + 8
            if end == size or data[end] in _WHITESPACE:
                return True
            at = data.find(line, end)
    return False


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


def snapshot_bytes(schema: Schema, migration_name: Optional[str], reuse=None,
                   made_from: Optional[str] = None, index_foreign_keys: bool = False) -> bytes:
    """schema.json's bytes; see snapshot.schema_to_json for ``reuse``. ``made_from``: the
    models_digest of the models.mp text the schema was read from (None when it was not
    read from models.mp, e.g. rebuilt from the migration files). ``index_foreign_keys``:
    the project's setting (see index_foreign_keys), recorded when true."""
    return dumps(_snapshot_document(schema, migration_name, reuse, made_from, index_foreign_keys))


def _snapshot_document(schema: Schema, migration_name: Optional[str], reuse, made_from: Optional[str],
                       index_foreign_keys: bool) -> dict:
    document = schema_to_json(schema, reuse)
    if index_foreign_keys:
        document[INDEX_FOREIGN_KEYS] = True
    if migration_name is not None:
        document["migration"] = migration_name
    if made_from is not None:
        document[MADE_FROM] = made_from
    return document


def snapshot_pieces(schema: Schema, migration_name: Optional[str], reuse=None,
                    made_from: Optional[str] = None, index_foreign_keys: bool = False):
    """snapshot_bytes as an iterator of pieces (snapshot.dumps_pieces), for a schema.json
    written while it is made."""
    return dumps_pieces(_snapshot_document(schema, migration_name, reuse, made_from, index_foreign_keys),
                        "models")


def write_snapshot(directory: str, schema: Schema, migration_name: Optional[str], reuse=None,
                   made_from: Optional[str] = None, index_foreign_keys: bool = False) -> None:
    atomic_write(snapshot_path(directory),
                 snapshot_bytes(schema, migration_name, reuse, made_from, index_foreign_keys))


def index_foreign_keys(configured: Optional[bool], snapshot_data: Optional[bytes], has_migrations: bool) -> bool:
    """Does the project index its foreign keys (README, "Foreign key indexes")?
    ``configured``: language_config.yaml's index_foreign_keys, None when it has none;
    then schema.json's record decides, and a project without migrations yet (a new
    one) indexes them. A project whose schema.json predates the setting does not, so
    upgrading mf brings it no migration."""
    if configured is not None:
        return configured
    if snapshot_data is not None:
        return indexes_foreign_keys(snapshot_data)
    return not has_migrations


def models_digest(data: bytes) -> str:
    """The digest schema.json keeps of the models.mp text it was made from: SHA-256 of
    the file's bytes (without a byte-order mark), so telling whether models.mp changed
    since needs no parsing."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_snapshot_bytes(directory: str, data) -> None:
    """schema.json as snapshot_bytes, snapshot.rewrite or snapshot.with_sources made it
    (bytes, or pieces), written atomically."""
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


# ---------------------------------------------------------------- reset

def remove_project_files(migrations_dir: str) -> list:
    """Delete the migration files, schema.json and .applied; returns the names removed,
    in that order."""
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
    return removed


# ---------------------------------------------------------------- atomic writes

def atomic_write(path: str, data) -> None:
    """Write ``data`` (bytes, or the pieces to write one after the other) so that a
    reader sees the old file or the new one, never half of one: a temporary file in the
    same directory, flushed and fsynced, renamed over the old one, then the directory
    fsynced. FileWriteError, naming the directory or the file, when it cannot be
    written; the file is then as it was and no temporary file is left.

    The file gets the mode open() would give it: a new file 0666 less the umask (so
    0644 under umask 022, readable by the user a container runs as), a replaced file
    the mode it had."""
    with signals_deferred():
        pending = PendingFile(path)
        try:
            for piece in [data] if isinstance(data, bytes) else data:
                pending.write(piece)
        except BaseException:
            pending.discard()
            raise
        pending.put_in_place()


class PendingFile:
    """A file atomic_write is writing: its temporary file, written piece by piece
    (``write``), then put in place (``put_in_place``) or removed (``discard``). Every
    step that fails raises FileWriteError and leaves no temporary file."""

    def __init__(self, path: str):
        self.path = path
        self.directory = os.path.dirname(os.path.abspath(path))
        try:
            handle, self.temporary = _create_temporary(self.directory)
        except OSError as exc:
            raise FileWriteError(f"{self.directory}: cannot write to it ({files.describe_os_error(exc)})") from None
        self._handle = handle  # until _out owns it
        self._out = None
        with self._failing_whole():
            try:
                os.chmod(self.temporary, os.stat(path).st_mode & 0o7777)
            except FileNotFoundError:
                pass  # a new file: the umask applied when the temporary file was created
            self._out = os.fdopen(handle, "wb")

    @contextlib.contextmanager
    def _failing_whole(self):
        try:
            yield
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise FileWriteError(f"{self.path}: cannot write it ({files.describe_os_error(exc)})") from None
            raise

    def write(self, piece) -> None:
        with self._failing_whole():
            self._out.write(piece)

    def put_in_place(self) -> None:
        with self._failing_whole():
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()
            os.replace(self.temporary, self.path)
        fsync_directory(self.directory)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            if self._out is not None:
                self._out.close()
            else:
                os.close(self._handle)
        try:
            os.unlink(self.temporary)
        except FileNotFoundError:
            pass


class OrderedWrites:
    """Files written as atomic_write writes them, in the order given, by a thread of
    their own while the caller makes the next file's bytes: writing and fsyncing a
    hundred megabytes of JSON is kernel time that needs no lock of Python's. A file's
    data is bytes, a list of pieces, or an iterator of them, which the caller's thread
    runs, handing each piece over as it comes: a large file is written while it is
    made and is never whole in memory. ``written`` lists the paths put in place so far.

    Use it as a context: leaving it waits for every file given. The first file that
    cannot be written stops the rest, and its error is raised there (by ``write`` too,
    once known, so that no more is made)."""

    def __init__(self):
        import queue
        import threading

        self.written: list = []
        self._error: Optional[BaseException] = None
        self._queue = queue.Queue(maxsize=4)  # a bound on the bytes made and not yet written
        self._thread = threading.Thread(target=self._write_each, name="mf-writes", daemon=True)
        self._thread.start()

    def write(self, path: str, data) -> None:
        self._raise_error()
        self._queue.put(path)
        for piece in [data] if isinstance(data, bytes) else data:
            self._raise_error()
            self._queue.put(piece)
        self._queue.put(None)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_each(self) -> None:
        # The queue holds, for each file, its path, its pieces, then None.
        pending = None  # the file being written
        while True:
            item = self._queue.get()
            if pending is not None and (self._error is not None or item is _DONE):
                pending.discard()
                pending = None
            if item is _DONE:
                return
            if self._error is not None:
                continue
            try:
                if isinstance(item, str):
                    pending = PendingFile(item)
                elif item is not None:
                    pending.write(item)
                else:
                    finished, pending = pending, None
                    finished.put_in_place()
                    self.written.append(finished.path)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                self._error = exc
                if pending is not None:
                    pending.discard()
                    pending = None

    def __enter__(self) -> "OrderedWrites":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None and self._error is None:
            self._error = value  # what stopped the caller stops the writing too
        self._queue.put(_DONE)
        self._thread.join()
        if kind is None:
            self._raise_error()


_DONE = object()


def make_directory(directory: str) -> None:
    """The migrations directory, made when missing; FileWriteError when it cannot be."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise FileWriteError(f"{directory}: cannot create it ({files.describe_os_error(exc)})") from None


# Signals that end mf (Ctrl-C, kill, a closed terminal) wait while files are being
# replaced, and are delivered as soon as they are: an interrupted write neither leaves
# its temporary file behind nor stops between a migration file and schema.json.
# SIGKILL cannot wait; what it leaves, remove_stale_temporaries removes.
_DEFERRED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


@contextlib.contextmanager
def signals_deferred():
    """Hold this thread's terminating signals until the block ends (they nest)."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):  # Windows: nothing to hold them with
        yield
        return
    held = {getattr(signal, name) for name in _DEFERRED_SIGNALS if hasattr(signal, name)}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# .mf-<pid>-<hex>.tmp: the writer's process id tells a file being written from one left
# by a process that is gone. (.mf-<hex>.tmp: written by mf before the pid was in the name.)
_TEMPORARY = re.compile(r"\.mf-(?:([0-9]+)-)?[0-9a-f]+\.tmp")


def _create_temporary(directory: str) -> tuple:
    """(descriptor, path) of a new, empty file in ``directory``, created with mode 0666
    so the kernel applies the umask as for any file open() creates (tempfile.mkstemp
    would make it 0600 whatever the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _attempt in range(100):
        temporary = os.path.join(directory, f".mf-{os.getpid()}-{os.urandom(6).hex()}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"{directory}: no free name for a temporary file")


def remove_stale_temporaries(directory: str) -> list:
    """Remove the temporary files in ``directory`` (``.mf-<pid>-<hex>.tmp``) that a
    killed mf left (its process is no longer running on this machine, or the name
    carries none); returns their names. Any that cannot be removed is left: it is never
    read."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in sorted(names):
        match = _TEMPORARY.fullmatch(name)
        if match is None or (match.group(1) is not None and _running(int(match.group(1)))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            continue
        removed.append(name)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or no pid this system has: leave it
    return True


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

