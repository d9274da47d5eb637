"""makemigrations on a large project reads only the models that were edited.

Each run that writes schema.json also writes a small cache beside the migrations
directory (``.mf_cache/<directory name>.json``): a digest of every top-level
declaration of models.mp (see language/chunks.py) and of the enums, the size and
checksum of the schema.json just written, and for each model its table, index
names, foreign key targets and where it lies in that file. On the next run, a model
whose declaration, abstract bases and enums have the same digests, under the same
schema.json, is exactly the model schema.json holds: it is neither read nor
compared again, and its bytes are copied into the new schema.json. The declarations
that changed are read, checked against the others' names, tables and index names,
and diffed along with the models they point to (and, when a key changes or a model
goes, those that point to them), so the operations are those a full run gives.

The cache is only ever a shortcut. Whatever does not fit (no cache, another
schema.json or mf version, an edited enum, a model declared mid-line, any problem
in the edited models) returns None here and makemigrations takes the full path,
which explains problems with their positions. Deleting the cache is always safe.
"""
from __future__ import annotations

import hashlib
import os
import re
import zlib
from typing import NamedTuple, Optional

import orjson

from . import __version__
from .errors import ModelsError, SchemaFileError
from .language.chunks import Outline
from .language.raw import RawEnum, RawModel
from .language.validate import BASE_MODELS
from .schema import Schema
from .snapshot import FORMAT as SNAPSHOT_FORMAT, model_from_json, model_to_json, relations

CACHE_DIR = ".mf_cache"
FORMAT = 1
_GITIGNORE = b"# Created by mf: a cache that makemigrations rebuilds at will.\n*\n"


class Plan(NamedTuple):
    """What a cached run diffs: ``old`` and ``new`` hold the same neighbourhood of
    models (every model that may change, and those linked to them by a foreign key),
    the unchanged ones as the very same objects on both sides."""
    old: Schema
    new: Schema
    snapshot: bytes   # schema.json as read
    cache: dict       # the cache as read
    entries: dict     # the cache's model entries for models.mp as it is now (info to fill in)
    context: str
    models_read: int  # model declarations read (the changed ones and their bases)


# A cache entry, per model of models.mp: [digest of its declaration, its base, and,
# when it has a table, its table, index names, foreign key targets and where its
# value lies in schema.json (byte offsets)].
_DIGEST, _BASE, _TABLE, _INDEXES, _TARGETS, _START, _END = range(7)

_MODELS_OPEN = b'\n  "models": {\n'
_RELATIONS_OPEN = b'\n  "relations": '
_ENTRY = re.compile(rb'\n    "([A-Za-z_][A-Za-z0-9_]*)": \{\n')
_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


def digest(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _identity(snapshot: bytes) -> list:
    """Which schema.json the cache describes. A checksum is enough: the file is ours,
    written whole and replaced atomically, so a different one is another write, not
    a forgery; together with the size, the chance of a false match is 2**-32."""
    return [len(snapshot), zlib.crc32(snapshot)]


def cache_path(migrations_dir: str) -> str:
    directory = os.path.abspath(migrations_dir)
    return os.path.join(os.path.dirname(directory), CACHE_DIR, os.path.basename(directory) + ".json")


def load(migrations_dir: str) -> Optional[dict]:
    """The cache document, or None when there is none fit for this mf."""
    try:
        with open(cache_path(migrations_dir), "rb") as handle:
            document = orjson.loads(handle.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("mf") != __version__ \
            or not _well_formed(document):
        return None
    return document


def _well_formed(document: dict) -> bool:
    """Whether a cache document has the shape save() writes (a damaged one is unused)."""
    models = document.get("models")
    if not isinstance(models, dict) or not isinstance(document.get("context"), str) \
            or not _is_span(document.get("relations")) or not isinstance(document.get("snapshot"), list):
        return False
    for entry in models.values():
        if type(entry) is not list or len(entry) not in (_TABLE, _END + 1) or type(entry[_DIGEST]) is not str \
                or not isinstance(entry[_BASE], str):
            return False
        if len(entry) > _TABLE and (type(entry[_TABLE]) is not str or not _are_names(entry[_INDEXES])
                                    or not _are_names(entry[_TARGETS]) or not _is_span(entry[_START:])):
            return False
    return True


def _is_span(value) -> bool:
    return type(value) is list and len(value) == 2 and type(value[0]) is int and type(value[1]) is int \
        and 0 <= value[0] <= value[1]


def _are_names(value) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def save(migrations_dir: str, context: str, entries: dict, schema: Schema, snapshot: bytes,
         spans: Optional[tuple] = None) -> None:
    """Record the cache for the schema.json whose bytes are ``snapshot``. ``entries``
    are {model: [digest, base, ...]}; a model's table and keys come from ``schema``
    or, for a model it does not hold, from its entry (an unchanged model of a cached
    run); a model in neither has no table. ``spans`` say where the models lie in
    ``snapshot`` (snapshot_after gives them), else they are looked for. A cache that
    cannot be written is no error: the next run is a full one."""
    spans = spans or _spans(snapshot)
    if spans is None:
        return
    model_spans, relations_span = spans
    models = {}
    for name, entry in entries.items():
        model = schema.models.get(name)
        if model is not None:
            info = [model.table, [i.name for i in model.indexes],
                    sorted({f.target for f in model.fields if f.target is not None})]
        elif len(entry) > _TABLE:
            info = entry[_TABLE:_START]
        else:
            models[name] = entry[:_TABLE]
            continue
        if name not in model_spans:
            return
        models[name] = [entry[_DIGEST], entry[_BASE], *info, *model_spans[name]]
    document = {"format": FORMAT, "mf": __version__, "snapshot": _identity(snapshot), "context": context,
                "models": models, "relations": list(relations_span)}
    path = cache_path(migrations_dir)
    try:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, ".gitignore"), "wb") as handle:
                handle.write(_GITIGNORE)
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(orjson.dumps(document))
            # No fsync: a torn cache is unreadable or names another schema.json, so unused.
            os.replace(temporary, path)
        except OSError:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    except OSError:
        pass


def _spans(snapshot: bytes):
    """({model: (start, end)}, (start, end)): where each model's value and the
    relations list lie in a schema.json written by snapshot.dumps; None if it is not
    laid out as that writes it."""
    models_at = snapshot.find(_MODELS_OPEN)
    relations_at = snapshot.find(_RELATIONS_OPEN, models_at)
    if models_at < 0 or relations_at < 0 or not snapshot.endswith(b"]\n}\n"):
        return None
    found = [(match.group(1).decode(), match.end() - 2, match.start())
             for match in _ENTRY.finditer(snapshot, models_at, relations_at)]
    spans = {}
    # Each value ends where the next entry's ",\n" begins; the last before "\n  },".
    ends = [start - 1 for _name, _value, start in found[1:]] + [relations_at - 5]
    for (name, start, _entry), end in zip(found, ends):
        if snapshot[start:start + 1] != b"{" or snapshot[end - 1:end] != b"}":
            return None
        spans[name] = (start, end)
    return spans, (relations_at + len(_RELATIONS_OPEN), len(snapshot) - 3)


def context_digest(outline: Outline) -> str:
    """The digest of what every model's meaning may depend on besides its own
    declaration and bases: the enums (their values are stored for enum defaults) and
    anything before the first declaration."""
    parts = [outline.data[:outline.prologue_end]]
    parts.extend(outline.text_of(chunk) for chunk in outline.chunks if chunk.kind == "enum")
    return digest(b"\0".join(parts))


def entries_for(outline: Outline, declarations: list) -> Optional[dict]:
    """Cache entries after a full read of the file; ``declarations`` is the outline
    parse() gave, (kind, name, base, line) each. None unless every chunk of the file
    holds exactly the one declaration its first line starts."""
    chunks = outline.chunks
    if len(declarations) != len(chunks):
        return None
    entries = {}
    for chunk, line, (kind, name, base, declared_on) in zip(chunks, outline.lines(), declarations):
        if chunk.kind != kind or chunk.name != name or line != declared_on:
            return None
        if kind == "model":
            entries[name] = [digest(outline.text_of(chunk)), base]
    return entries


def plan(outline: Outline, cache: Optional[dict], snapshot: bytes, migration_name: str, reader) -> Optional[Plan]:
    """The partial schemas to diff, or None when this run must read everything.

    ``migration_name`` is the newest migration file, which schema.json must reflect;
    ``reader(text)`` returns the raw declarations of a piece of models.mp, raising
    ModelsError (parser.read_raw).
    """
    if cache is None or cache.get("snapshot") != _identity(snapshot) \
            or snapshot.find(b'\n  "migration": ' + orjson.dumps(migration_name) + b",\n") < 0:
        return None
    chunks = outline.chunks
    model_chunks = {chunk.name: chunk for chunk in chunks if chunk.kind == "model"}
    enum_chunks = [chunk for chunk in chunks if chunk.kind == "enum"]
    enum_names = {chunk.name for chunk in enum_chunks}
    if len(model_chunks) + len(enum_names) != len(chunks) or enum_names & model_chunks.keys():
        return None  # a name declared twice: the full run says where
    context = context_digest(outline)
    if cache.get("context") != context:
        return None
    cached = cache["models"]

    entries = {}
    same = set()
    for name, chunk in model_chunks.items():
        entry = cached.get(name)
        chunk_digest = digest(outline.text_of(chunk))
        if entry is not None and entry[_DIGEST] == chunk_digest:
            same.add(name)
            entries[name] = entry
        else:
            entries[name] = [chunk_digest, None]  # the base is filled in once read
    unchanged = {name for name in same if _bases_unchanged(name, cached, same)}
    changed = [name for name in model_chunks if name not in unchanged]
    concrete_unchanged = {name for name in unchanged if len(cached[name]) > _TABLE}
    touched = {name for name, entry in cached.items() if len(entry) > _TABLE and name not in concrete_unchanged}

    declarations = _read(outline, model_chunks, changed, reader)
    if declarations is None:
        return None
    for declaration in declarations:
        if declaration.name not in unchanged:
            entries[declaration.name] = [entries[declaration.name][_DIGEST], declaration.base]
    enum_declarations = _read_context(outline, enum_chunks, reader)
    if enum_declarations is None:
        return None
    from .language.parser import build

    built, problems = build(enum_declarations + declarations, other_models=concrete_unchanged)
    if problems or not built.models.keys() <= set(changed):
        return None
    touched |= built.models.keys()
    referrers = _check_against_unchanged(cached, concrete_unchanged, built.models)
    if referrers is None:
        return None
    old_enums = built.enums
    try:
        old_models = _load(snapshot, cached, _targets(touched, cached, built.models), old_enums)
        # Models pointing at a key that changes, or at a model that goes, change with it
        # (differ._key_type_changes): they join, with what they point to.
        moving = {name for name in touched
                  if name not in built.models or name not in old_models
                  or old_models[name].primary_key != built.models[name].primary_key}
        linked = {referrer for name in moving for referrer in referrers.get(name, ())}
        old_models.update(_load(snapshot, cached, _targets(linked, cached, built.models) - old_models.keys(),
                                old_enums))
    except (SchemaFileError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    new_models = dict(built.models)
    for name in old_models:
        if name in concrete_unchanged:
            new_models[name] = old_models[name]
    old = Schema(enums=old_enums, models=old_models)
    new = Schema(enums=built.enums, models=new_models)
    return Plan(old, new, snapshot, cache, entries, context, len(declarations))


def _bases_unchanged(name, cached, same) -> bool:
    base = cached[name][_BASE]
    for _step in range(len(cached)):
        if base in BASE_MODELS:
            return True
        if base not in same:
            return False
        base = cached[base][_BASE]
    return False


def _read_piece(data: bytes, reader) -> Optional[list]:
    """The raw declarations of a piece of models.mp, or None when it is not UTF-8 or
    does not read (the full run reports it)."""
    try:
        return reader(data.decode("utf-8"))
    except (UnicodeDecodeError, ModelsError):
        return None


def _read(outline, model_chunks, changed, reader) -> Optional[list]:
    """The raw declarations of the changed models and of the abstract models they
    extend; None unless each chunk read holds just the model it was cut for."""
    found = []
    read = set()
    pending = list(changed)
    while pending:
        name = pending.pop()
        if name in read:
            continue
        chunk = model_chunks.get(name)
        declarations = _read_piece(outline.text_of(chunk), reader) if chunk is not None else None
        if declarations is None or len(declarations) != 1 or type(declarations[0]) is not RawModel or declarations[0].name != name:
            return None
        read.add(name)
        found.append(declarations[0])
        if declarations[0].base not in BASE_MODELS:
            pending.append(declarations[0].base)
    return found


def _read_context(outline, enum_chunks, reader) -> Optional[list]:
    declarations = _read_piece(outline.data[:outline.prologue_end]
                               + b"".join(outline.text_of(chunk) for chunk in enum_chunks), reader)
    if declarations is None or len(declarations) != len(enum_chunks) or any(type(d) is not RawEnum for d in declarations):
        return None
    return declarations


def _check_against_unchanged(cached, concrete_unchanged, built) -> Optional[dict]:
    """{model: unchanged models pointing at it}, or None when the edited models clash
    with the unchanged ones (a table or index name taken, a foreign key left pointing
    nowhere): the full run explains."""
    tables = set()
    indexes = set()
    referrers: dict = {}
    concrete = concrete_unchanged | built.keys()
    for name in concrete_unchanged:
        entry = cached[name]
        tables.add(entry[_TABLE])
        indexes.update(entry[_INDEXES])
        for target in entry[_TARGETS]:
            if target not in concrete:
                return None
            referrers.setdefault(target, []).append(name)
    for model in built.values():
        if model.table in tables or any(i.name in indexes for i in model.indexes):
            return None
    return referrers


def _targets(names, cached, built) -> set:
    """``names`` and every model they point to, before or after the edit."""
    found = set(names)
    for name in names:
        if name in built:
            found.update(f.target for f in built[name].fields if f.target is not None)
        if len(cached.get(name, ())) > _TABLE:
            found.update(cached[name][_TARGETS])
    return found


def _load(snapshot, cached, names, enums) -> dict:
    """The models of schema.json among ``names``, read from where the cache says they lie."""
    found = {}
    for name in sorted(names):
        entry = cached.get(name)
        if entry is not None and len(entry) > _TABLE:
            found[name] = model_from_json(name, orjson.loads(snapshot[entry[_START]:entry[_END]]), enums,
                                          "schema.json")
    return found


def snapshot_after(plan: Plan, after: Schema, migration_name: str) -> tuple:
    """schema.json's bytes after the diff of ``plan`` (``after`` is plan.old with the
    operations applied), and where its models lie (for save): the models ``after``
    changes are written anew, the others are copied as they lie in the old file. The
    same bytes as snapshot.dumps of the whole document."""
    before = plan.old
    snapshot = plan.snapshot
    cached = plan.cache["models"]
    rewritten = {name for name in before.models if after.models.get(name) is not before.models[name]}
    rewritten |= after.models.keys() - before.models.keys()
    names = sorted({name for name, entry in cached.items() if len(entry) > _TABLE and name not in before.models}
                   | after.models.keys())
    pieces = [b'{\n  "enums": ',
              _nested(orjson.dumps({name: [list(m) for m in e.members] for name, e in after.enums.items()},
                                   option=_INDENT), 2),
              b',\n  "format": ', str(SNAPSHOT_FORMAT).encode(),
              b',\n  "migration": ', orjson.dumps(migration_name), b',\n  "models": {']
    size = sum(map(len, pieces))
    spans = {}
    view = memoryview(snapshot)
    run_start = run_end = None  # a run of models copied as they lie, separators and all
    separator = b"\n"
    for name in names:
        head = b'%s    "%s": ' % (separator, name.encode())
        separator = b",\n"
        if name not in rewritten:
            start, end = cached[name][_START], cached[name][_END]
            if run_end is not None and start == run_end + len(head):
                # Next to the previous model in the old file, as in the new one.
                spans[name] = (size + start - run_start, size + end - run_start)
                run_end = end
                continue
            if run_end is not None:
                pieces.append(view[run_start:run_end])
                size += run_end - run_start
            pieces.append(head)
            size += len(head)
            run_start, run_end = start, end
            spans[name] = (size, size + end - start)
            continue
        if run_end is not None:
            pieces.append(view[run_start:run_end])
            size += run_end - run_start
            run_start = run_end = None
        value = _nested(orjson.dumps(model_to_json(after.models[name]), option=_INDENT), 4)
        spans[name] = (size + len(head), size + len(head) + len(value))
        pieces += [head, value]
        size += len(head) + len(value)
    if run_end is not None:
        pieces.append(view[run_start:run_end])
    pieces.append(b"\n  }" if names else b"}")
    start, end = plan.cache["relations"]
    kept = [r for r in orjson.loads(snapshot[start:end]) if r["from"] not in rewritten]
    added = relations(Schema(models={name: after.models[name] for name in rewritten if name in after.models}))
    # relations() lists models in name order: a stable sort on the name merges the two.
    merged = sorted(kept + added, key=_relation_owner)
    pieces.append(b',\n  "relations": ')
    relations_start = sum(map(len, pieces))
    pieces += [_nested(orjson.dumps(merged, option=_INDENT), 2), b"\n}\n"]
    data = b"".join(pieces)
    return data, (spans, (relations_start, len(data) - 3))


def _nested(value: bytes, depth: int) -> bytes:
    # JSON strings hold no raw newline, so every newline is indentation.
    return value.replace(b"\n", b"\n" + b" " * depth)


def _relation_owner(relation: dict) -> str:
    return relation["from"]
