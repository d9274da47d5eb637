"""makemigrations on a large project reads only the models that were edited.

Each run that writes a migration ends schema.json with its "sources" (the layout is
snapshot.py's): a digest of every top-level declaration of models.mp (see
language/chunks.py) and of the enums, and for each model its table, index names and
foreign key targets; the digest that seals them covers the whole file before it. On
the next run, in this clone or any other, a model whose declaration, abstract bases
and enums have the same digests, under a schema.json unchanged since, is exactly the
model schema.json holds: it is neither read nor compared again, and its bytes are
copied into the new schema.json. The declarations that changed are read, checked
against the others' names, tables and index names, and diffed along with the models
they point to (and, when a key changes or a model goes, those that point to them), so
the operations are those a full run gives.

The sources are only ever a shortcut. Whatever does not fit (none, a schema.json
changed since they were sealed, another mf version, an edited enum, a model declared
mid-line, any problem in the edited models) returns None here and makemigrations
takes the full path, which explains problems with their positions. That full path
still skips most of schema.json (verified_plan): a model that lies there exactly as
the writer lays out the model just read is that model.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional

import orjson

from . import __version__, snapshot as schema_file
from .errors import ModelsError, SchemaFileError
from .language.chunks import Outline
from .language.raw import RawEnum, RawModel
from .language.validate import BASE_MODELS
from .schema import MAX_IDENTIFIER, Schema, clip_to_bytes

FORMAT = 1


class Plan(NamedTuple):
    """What a run diffs: ``old`` and ``new`` hold the same neighbourhood of models
    (every model that may change, and those linked to them by a foreign key), the
    unchanged ones as the very same objects on both sides."""
    old: Schema
    new: Schema
    snapshot: bytes   # schema.json as read
    entries: dict     # the sources' model entries for models.mp as it is now (info to fill in)
    context: str
    models_read: int  # model declarations read (the changed ones and their bases)
    spans: tuple      # where every model and the relations lie in ``snapshot`` (schema_file.layout)


# A model's entry in the sources: [digest of its declaration, its base, and, when it
# has a table, its table, index names and foreign key targets]; once read here, where
# its value lies in schema.json (byte offsets) is added.
_DIGEST, _BASE, _TABLE, _INDEXES, _TARGETS, _START, _END = range(7)


def digest(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def load(snapshot: bytes) -> Optional[tuple]:
    """(sources, spans): schema.json's sources, each model's entry with where it lies,
    and the file's layout; None when it has none fit for this mf (a file changed since
    they were sealed, written by another mf version, damaged)."""
    text = schema_file.sealed_sources(snapshot)
    if text is None:
        return None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("mf") != __version__ \
            or not _well_formed(document):
        return None
    spans = schema_file.layout(snapshot)
    if spans is None:
        return None
    model_spans = spans[0]
    tables = 0
    for name, entry in document["models"].items():
        if len(entry) > _TABLE:
            if name not in model_spans:
                return None
            entry.extend(model_spans[name])
            tables += 1
    if tables != len(model_spans):
        return None  # a model of schema.json that the sources do not name
    return document, spans


def _well_formed(document: dict) -> bool:
    """Whether sources have the shape sources() writes (damaged ones are unused)."""
    models = document.get("models")
    if not isinstance(models, dict) or not isinstance(document.get("context"), str):
        return False
    for entry in models.values():
        if type(entry) is not list or len(entry) not in (_TABLE, _TARGETS + 1) or type(entry[_DIGEST]) is not str \
                or not isinstance(entry[_BASE], str):
            return False
        if len(entry) > _TABLE and (type(entry[_TABLE]) is not str or not _are_names(entry[_INDEXES])
                                    or not _are_names(entry[_TARGETS])):
            return False
    return True


def _are_names(value) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def sources(context: str, entries: dict, schema: Schema) -> bytes:
    """The value of schema.json's sources (for snapshot.with_sources), one line per
    model, so that a migration changes the lines of the models it changes. ``entries``
    are {model: [digest, base, ...]}; a model's table and keys come from ``schema``
    (the schema after the migration) or, for a model it does not hold, from its entry
    (an unchanged model of a run that read only the edited ones); a model in neither
    has no table."""
    lines = []
    for name in sorted(entries):
        entry = entries[name]
        model = schema.models.get(name)
        if model is not None:
            # Index and check names: each must stay unique in the schema (validate.py).
            info = [model.table, [i.name for i in model.indexes] + [c.name for c in model.checks],
                    sorted({f.target for f in model.fields if f.target is not None})]
        elif len(entry) > _TABLE:
            info = entry[_TABLE:_START]
        else:
            info = []
        lines.append(b"      %s: %s" % (orjson.dumps(name), orjson.dumps([entry[_DIGEST], entry[_BASE], *info])))
    head = b'{\n    "context": %s,\n    "format": %d,\n    "mf": %s,\n    "models": {' % (
        orjson.dumps(context), FORMAT, orjson.dumps(__version__))
    return head + (b"\n" + b",\n".join(lines) + b"\n    }" if lines else b"}")


def context_digest(outline: Outline, index_foreign_keys: bool = False) -> str:
    """The digest of what every model's meaning may depend on besides its own
    declaration and bases: the enums (their values are stored for enum defaults),
    anything before the first declaration, and whether foreign keys are indexed."""
    parts = [outline.data[:outline.prologue_end]]
    parts.extend(outline.text_of(chunk) for chunk in outline.chunks if chunk.kind == "enum")
    if index_foreign_keys:
        parts.append(b"index_foreign_keys")
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


def plan(outline: Outline, snapshot: bytes, migration_name: str, reader,
         index_foreign_keys: bool = False) -> Optional[Plan]:
    """The partial schemas to diff, or None when this run must read everything.

    ``snapshot`` is schema.json's bytes, which must reflect ``migration_name``, the
    newest migration file; ``reader(text)`` returns the raw declarations of a piece of
    models.mp, raising ModelsError (parser.read_raw). ``index_foreign_keys``: the
    project's setting.
    """
    if not schema_file.reflects(snapshot, migration_name):
        return None
    loaded = load(snapshot)
    if loaded is None:
        return None
    document, spans = loaded
    chunks = outline.chunks
    model_chunks = {chunk.name: chunk for chunk in chunks if chunk.kind == "model"}
    enum_chunks = [chunk for chunk in chunks if chunk.kind == "enum"]
    enum_names = {chunk.name for chunk in enum_chunks}
    if len(model_chunks) + len(enum_names) != len(chunks) or enum_names & model_chunks.keys():
        return None  # a name declared twice: the full run says where
    context = context_digest(outline, index_foreign_keys)
    if document["context"] != context:
        return None
    cached = document["models"]

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

    built, problems = build(enum_declarations + declarations, other_models=concrete_unchanged,
                            index_foreign_keys=index_foreign_keys)
    if problems or not built.models.keys() <= set(changed):
        return None
    touched |= built.models.keys()
    referrers = _check_against_unchanged(cached, concrete_unchanged, built.models)
    if referrers is None:
        return None
    old_enums = built.enums
    try:
        old_models = _load(snapshot, cached, _targets(touched, cached, built.models))
        _load_key_chains(snapshot, cached, old_models, built.models)
        # Models pointing at a key that changes, or at a model that goes, change with it
        # (differ._key_type_changes): they join, with what they point to. A model whose
        # own key points at such a key changes too (its key follows), and so on.
        moving = {name for name in touched
                  if name not in built.models or name not in old_models
                  or old_models[name].primary_key != built.models[name].primary_key}
        linked: set = set()
        pending = list(moving)
        while pending:
            for referrer in referrers.get(pending.pop(), ()):
                if referrer in linked:
                    continue
                linked.add(referrer)
                old_models.update(_load(snapshot, cached, _targets({referrer}, cached, built.models)
                                        - old_models.keys()))
                key = old_models[referrer].primary_key
                if key is not None and key.target in moving and referrer not in moving:
                    moving.add(referrer)
                    pending.append(referrer)
        _load_key_chains(snapshot, cached, old_models, built.models)
    except (SchemaFileError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    new_models = dict(built.models)
    for name in old_models:
        if name in concrete_unchanged:
            new_models[name] = old_models[name]
    old = Schema(enums=old_enums, models=old_models)
    new = Schema(enums=built.enums, models=new_models)
    return Plan(old, new, snapshot, entries, context, len(declarations), spans)


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
    names = []
    referrers: dict = {}
    concrete = concrete_unchanged | built.keys()
    for name in concrete_unchanged:
        entry = cached[name]
        names.append(entry[_TABLE])
        names.extend(entry[_INDEXES])
        for target in entry[_TARGETS]:
            if target not in concrete:
                return None
            referrers.setdefault(target, []).append(name)
    # Tables and indexes share one namespace. A looser comparison than the databases'
    # (any case, PostgreSQL's cut at 63 bytes): a false alarm only costs the full run.
    taken = set(map(str.lower, names))
    taken.update(clip_to_bytes(name).lower() for name in names if len(name) > MAX_IDENTIFIER // 4)
    for model in built.values():
        # (Check names are in the cached index names too: they must be unique as well.)
        for name in (model.table, *(i.name for i in model.indexes), *(c.name for c in model.checks)):
            if name.lower() in taken or clip_to_bytes(name).lower() in taken:
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


def _load_key_chains(snapshot, cached, models: dict, built: dict) -> None:
    """Add to ``models`` the models that their keys point to, and so on: a foreign key
    to a model whose key is a foreign key takes the type at the end of that chain."""
    while True:
        missing = set()
        for model in (*models.values(), *built.values()):
            key = model.primary_key
            if key is not None and key.target is not None and key.target not in models \
                    and key.target not in built:
                missing.add(key.target)
        loaded = _load(snapshot, cached, missing)
        if not loaded:
            return
        models.update(loaded)


def _load(snapshot, cached, names) -> dict:
    """The models of schema.json among ``names``, read from where they lie."""
    found = {}
    for name in sorted(names):
        entry = cached.get(name)
        if entry is not None and len(entry) > _TABLE:
            found[name] = schema_file.model_at(snapshot, entry[_START:], name)
    return found


def verified_plan(outline: Outline, declarations: list, new: Schema, snapshot: bytes, migration_name: str,
                  index_foreign_keys: bool = False) -> Optional[Plan]:
    """The Plan of a run that found no sources to use and read all of models.mp (``new``;
    ``declarations`` is the outline parse() gave): ``old`` is schema.json, where each
    model that lies exactly as the writer lays out the model just read is that very
    model, neither parsed nor checked again (snapshot.schema_from_layout); those the
    migration leaves alone are copied as they lie when schema.json is rewritten. None
    when schema.json does not reflect ``migration_name``, is not laid out as mf writes
    it, or has any problem: the full reading then repairs or explains it."""
    if not schema_file.reflects(snapshot, migration_name):
        return None
    found = schema_file.layout(snapshot)
    if found is None:
        return None
    spans, relations_span = found
    view = memoryview(snapshot)
    known = {}
    try:
        for name, model in new.models.items():
            span = spans.get(name)
            if span is not None and view[span[0]:span[1]] == schema_file.model_bytes(model):
                known[name] = model
    except orjson.JSONEncodeError:
        return None
    old = schema_file.schema_from_layout(snapshot, spans, relations_span, known)
    if old is None:
        return None
    return Plan(old, new, snapshot, entries_for(outline, declarations),
                context_digest(outline, index_foreign_keys), len(declarations), found)


def snapshot_after(plan: Plan, after: Schema, migration_name: str, made_from: Optional[str] = None,
                   index_foreign_keys: bool = False) -> list:
    """schema.json's bytes (pieces, see schema_file.rewrite), without sources, after
    the diff of ``plan`` (``after`` is plan.old with the operations applied): the models
    ``after`` changes are written anew, the others are copied as they lie in the old
    file."""
    before = plan.old
    spans, relations_span = plan.spans
    rewritten = {name for name in before.models if after.models.get(name) is not before.models[name]}
    rewritten |= after.models.keys() - before.models.keys()
    kept = {name: span for name, span in spans.items()
            if name not in rewritten and (name not in before.models or name in after.models)}
    return schema_file.rewrite(plan.snapshot, kept, relations_span, after, rewritten, migration_name,
                               made_from, index_foreign_keys)
