"""diff(old, new) -> the operations that turn one schema into the other.

Pure and deterministic: the same two schemas give the same list in the same order.
Order (SPEC §4): enums first; renames; primary keys whose column type changes, with
the foreign keys that point at them; new tables in dependency order (a referenced
table before its referrer, a cycle broken by adding its key afterwards); column and
index changes model by model; deferred foreign keys; dropped tables in reverse
dependency order; dropped enums last. That order gives way only where a name demands
it: what frees a table, index or column name runs before what takes it, and a swap goes
through a temporary name (_free_names_first).

Most models of a large schema are unchanged; one tuple comparison per model (in C)
settles those, and only the changed ones are compared field by field.
"""
from __future__ import annotations

from dataclasses import replace

from .operations import (AddCheck, AddColumn, AddForeignKey, AddIndex, AlterColumn, AlterEnum, CreateEnum,
                         CreateModel, DropCheck, DropColumn, DropEnum, DropForeignKey, DropIndex, DropModel,
                         RenameColumn, RenameModel, TableDef, attach_tables, column_changes, fold_start,
                         folding, referenced_key, referencing_type, table_def)
from .questioner import Questioner
from .schema import MAX_IDENTIFIER, Schema


def diff(old: Schema, new: Schema, questioner: Questioner | None = None, *, keep_names: bool = False) -> list:
    """The operations from ``old`` to ``new``, each with its TableDef attached.
    ``keep_names``: ``new`` was read from models.mp, ``old`` is the snapshot; what
    models.mp cannot say about a database taken over is carried over (carry_names)."""
    questioner = questioner or Questioner()
    operations: list = []

    # 1. Enums created or changed (drops wait until nothing uses them).
    for name in sorted(new.enums):
        if name not in old.enums:
            operations.append(CreateEnum(name, new.enums[name].members))
        elif old.enums[name].members != new.enums[name].members:
            operations.append(AlterEnum(name, old.enums[name].members, new.enums[name].members))

    # The one full comparison of the models on both sides (the hot loop of a large diff):
    # a model kept under its name that differs in any way, its table included.
    differing = changed_models(old.models, new.models)
    if keep_names and differing:
        new = carry_names(old, new, differing)
        differing = [name for name in differing if old.models[name] != new.models[name]]

    state = old
    # 2. Models renamed (asked), or moved to another table.
    renames = _model_renames(old, new, questioner)
    for old_name, new_name in renames:
        before = old.models[old_name]
        rename = RenameModel(old_name, new_name, before.table, new.models[new_name].table)
        operations.append(rename)
        state = rename.apply(state)
    for name in differing:
        if state.models[name].table != new.models[name].table:
            rename = RenameModel(name, name, state.models[name].table, new.models[name].table)
            operations.append(rename)
            state = rename.apply(state)

    # Still different once renamed: what changes inside the tables.
    changed = sorted(name for name in {*differing, *(new_name for _old_name, new_name in renames)}
                     if state.models[name] != new.models[name])

    # 3. Primary keys whose type changes, before new tables copy it; what points at them follows.
    for operation in _key_type_changes(state, new, changed):
        operations.append(operation)
        state = operation.apply(state)

    # 4. New tables, referenced tables first.
    created = [name for name in new.models if name not in state.models]
    deferred_keys = []
    for name, deferred in _creation_order(created, new):
        model = new.models[name]
        # attach_tables below gives the table its TableDef as it stands then; until then
        # it carries its model, and where a cycle's keys point, which only ``new`` knows.
        carried = table_def(new, name, deferred) if deferred else TableDef(model)
        operations.append(CreateModel(name, model.table, carried, deferred))
        deferred_keys.extend((name, field_name) for field_name in deferred)

    # 5. Changed tables, one at a time (step 3 changes no model that was equal before it).
    for name in changed:
        if state.models[name] != new.models[name]:
            operations.extend(_model_changes(state, state.models[name], new.models[name], questioner, new))

    # 6. Keys that closed a cycle among the new tables.
    for name, field_name in deferred_keys:
        model = new.models[name]
        key = model.field(field_name)
        operations.append(AddForeignKey(name, model.table, field_name, key.target, key.on_delete))

    # 7. Dropped tables, referrers first; a cycle loses its keys before its tables.
    dropped = [name for name in state.models if name not in new.models]
    for step, name, keys in _drop_order(dropped, state):
        model = state.models[name]
        for field_name in keys:
            key = model.field(field_name)
            operations.append(DropForeignKey(name, model.table, field_name, key.target, key.on_delete))
        if step == "drop":
            operations.append(DropModel(name, model.table))

    # 8. Enums nothing uses any more.
    for name in sorted(old.enums):
        if name not in new.enums:
            operations.append(DropEnum(name, old.enums[name].members))

    completed, _final = attach_tables(operations, old)
    reordered = _free_names_first(completed, old)
    if reordered is not None:
        completed, _final = attach_tables(reordered, old)
    return completed


def carry_names(old: Schema, new: Schema, differing=None) -> Schema:
    """``new`` (read from models.mp, which cannot say them) with the constraint names and
    DEFERRABLE that ``old`` (the snapshot) keeps for a database taken over, on every
    field that still has that constraint: so a model left as it was is no change, and a
    changed foreign key or a dropped UNIQUE addresses the constraint that exists.
    ``differing``: the models that differ, when known (changed_models)."""
    if differing is None:
        differing = changed_models(old.models, new.models)
    if not differing:
        return new
    models = dict(new.models)
    for name in differing:
        before = {f.name: f for f in old.models[name].fields if f.fk_name or f.key_name or f.deferrable}
        constraints = {i.name: i for i in old.models[name].indexes if i.constraint}
        if not before and not constraints:
            continue
        fields = tuple(_carried(before[f.name], f) if f.name in before else f for f in models[name].fields)
        # A UNIQUE constraint that models.mp declares as a unique index of the same name and fields.
        indexes = tuple(constraints[i.name] if i.name in constraints and i == constraints[i.name]._replace(
            constraint=False) else i for i in models[name].indexes)
        models[name] = models[name].replace(fields=fields, indexes=indexes)
    return replace(new, models=models)


def _carried(old, new):
    if new.fk_name or new.key_name:
        return new  # says its own
    changes = {}
    if old.target is not None and new.target is not None:
        changes["fk_name"] = old.fk_name
        # models.mp says deferrable=true ("deferred") itself; only INITIALLY IMMEDIATE is kept.
        if new.deferrable is None and old.deferrable == "immediate":
            changes["deferrable"] = "immediate"
    if (old.primary_key and new.primary_key) or (old.unique and not old.primary_key
                                                 and new.unique and not new.primary_key):
        changes["key_name"] = old.key_name
    return new._replace(**changes) if changes else new


def changed_models(old_models: dict, new_models: dict) -> list:
    """Names of the models on both sides that differ, sorted: the hot loop of diffing a
    large schema, where nearly every model is unchanged. Its comparisons run in C
    already (tuple and str equality), so it has no compiled twin: one compiled with
    Cython measured no faster on 1,000 and 5,000 models."""
    changed = []
    for name, after in new_models.items():
        before = old_models.get(name)
        if before is None:
            continue
        # Equal field tuples settle it; otherwise Model.__eq__ decides (it ignores order).
        if before.fields is after.fields or (before.fields == after.fields and before.name == after.name
                                             and before.table == after.table
                                             and before.indexes == after.indexes
                                             and before.checks == after.checks):
            continue
        if before != after:
            changed.append(name)
    changed.sort()
    return changed


def _key_type_changes(state, new, changed) -> list:
    """The operations that change the type of primary keys, and of the columns that point
    at them (a foreign key column has its target key's type, SPEC §2).

    For each model whose key keeps its name but not its type: the constraints of the
    foreign keys that point at it come off (PostgreSQL refuses to change a key's type
    under a constraint from a column of another type), the key changes, and every
    referencing column follows with an alter_column that records the key as it was
    (``old_key``) and puts its constraint back. Referencing fields that this diff goes
    on to rename, alter or drop follow too, so that those later operations find the
    column and its constraint as they always do. On SQLite the constraint drops cost
    nothing (dialects/sqlite.py); the rebuilds carry the rows.

    A key that is itself a foreign key (multi-table inheritance) follows the key it
    points to, and the columns that point at it follow in turn: such a chain is one
    group, its constraints all off first, then each column after the one it points to.
    """
    retyped = {}
    for name in changed:
        before, after = state.models[name].primary_key, new.models[name].primary_key
        if before is not None and after is not None and before.name == after.name \
                and referencing_type(before) != referencing_type(after):
            retyped[name] = (before, after)
    if not retyped:
        return []
    referrers: dict = {}
    for model_name in sorted(state.models):
        model = state.models[model_name]
        for f in model.fields:
            if f.target is not None:
                referrers.setdefault(f.target, []).append((model, f))
    operations: list = []
    for root in sorted(retyped):  # a key that is a foreign key is never retyped itself
        # The root, then the models whose key points at one already in the group.
        group = [root]
        for name in group:
            for model, f in referrers.get(name, []):
                if f.primary_key and model.name not in group and model.name in new.models \
                        and referencing_type(referenced_key(state, model.name) or f) \
                        != referencing_type(referenced_key(new, model.name) or f):
                    group.append(model.name)
        pointing = [(name, model, f) for name in group for model, f in referrers.get(name, [])]
        for _name, model, f in pointing:
            operations.append(DropForeignKey(model.name, model.table, f.name, f.target, f.on_delete))
        before, after = retyped[root]
        operations.append(AlterColumn(root, state.models[root].table, before, after,
                                      changes=column_changes(before, after)))
        for name, model, f in pointing:  # the column keeps its definition; the key it follows changes type
            operations.append(AlterColumn(model.name, model.table, f, f, old_key=referenced_key(state, name),
                                          changes=frozenset({"key"})))
    return operations


def _referenced_key(state, f):
    """The primary key a foreign key field points to in ``state``, or None. An alter_column
    records it as ``old_key``: the old column has that key's type, and once the field
    points elsewhere, or nowhere, nothing else in the operation says what it was."""
    if f.target is None:
        return None
    return referenced_key(state, f.target)


def _model_renames(old, new, questioner):
    """(old name, new name) of the models renamed. A new model on the table of a removed
    one is that model renamed: the table stays, so nothing is asked and nothing runs
    but the snapshot's change. Otherwise a new model with the same fields, in any order
    (Django compares them sorted), is a rename if the questioner says so."""
    removed = sorted(name for name in old.models if name not in new.models)
    added = sorted(name for name in new.models if name not in old.models)
    renames = []
    by_table = {new.models[name].table: name for name in added}
    for old_name in removed:
        new_name = by_table.get(old.models[old_name].table)
        if new_name is not None:
            renames.append((old_name, new_name))
    matched_old = {old_name for old_name, _new_name in renames}
    taken = {new_name for _old_name, new_name in renames}
    for old_name in removed:
        if old_name in matched_old:
            continue
        before = old.models[old_name]
        for new_name in added:
            if new_name in taken:
                continue
            after = new.models[new_name]
            if _same_shape(before, after) and questioner.ask_rename_model(before, after):
                renames.append((old_name, new_name))
                taken.add(new_name)
                break
    return renames


def _same_shape(before, after) -> bool:
    """Would renaming ``before`` give ``after``, up to the table, the order of the fields
    and references to itself?"""
    if len(before.fields) != len(after.fields):
        return False
    renamed = [f._replace(target=after.name) if f.target == before.name else f for f in before.fields]
    return sorted(renamed) == sorted(after.fields)


def _creation_order(created, new):
    """(model, keys to defer) for each new model, each after the new models it references.

    In rounds: every model whose new targets are all created comes next, in name order;
    when none is (a cycle), the first model by name is created at once and its keys into
    the cycle are added afterwards. Each model's pending targets are counted down as
    they are created, so the order costs time in proportion to the keys."""
    pending = set(created)
    waiting = {}        # model -> its targets not created yet
    referrers = {}      # target -> models waiting for it
    for name in created:
        targets = {f.target for f in new.models[name].fields if f.target in pending and f.target != name}
        waiting[name] = targets
        for target in targets:
            referrers.setdefault(target, []).append(name)
    order = []

    def create(name):
        pending.discard(name)
        unblocked = []
        for referrer in referrers.get(name, ()):
            targets = waiting[referrer]
            targets.discard(name)
            if not targets and referrer in pending:
                unblocked.append(referrer)
        return unblocked

    ready = sorted(name for name in created if not waiting[name])
    while pending:
        if ready:
            unblocked = []
            for name in ready:
                order.append((name, ()))
                unblocked.extend(create(name))
            ready = sorted(set(unblocked))
            continue
        name = min(pending)
        deferred = tuple(f.name for f in new.models[name].fields if f.target in pending and f.target != name)
        order.append((name, deferred))
        ready = sorted(set(create(name)))
    return order


def _drop_order(dropped, state):
    """Steps ("keys", model, key names) and ("drop", model, ()) that drop the given
    models, each referrer before what it references."""
    pending = set(dropped)
    steps = []
    while pending:
        # A model can go once no other pending model references it.
        ready = sorted(name for name in pending
                       if not any(f.target == name for other in pending if other != name
                                  for f in state.models[other].fields))
        if not ready:
            # A cycle: the other models' keys into the first one go, then it can.
            name = sorted(pending)[0]
            for other in sorted(pending - {name}):
                keys = tuple(f.name for f in state.models[other].fields if f.target == name)
                if keys:
                    steps.append(("keys", other, keys))
            ready = [name]
        for name in ready:
            steps.append(("drop", name, ()))
            pending.discard(name)
    return steps


def _model_changes(state, before, after, questioner, new) -> list:
    """Field and index operations for one model present on both sides; ``state`` is the
    schema they start from (where a foreign key's old target is looked up), ``new`` the
    schema diffed to (where its new target is)."""
    operations = []
    # Checks are compared as written: one whose expression changes is dropped and added.
    # They go first and come back last, so the columns they name exist on both sides.
    old_checks = {c.name: c for c in before.checks}
    new_checks = {c.name: c for c in after.checks}
    operations.extend(DropCheck(before.name, before.table, old_checks[name])
                      for name in sorted(old_checks) if new_checks.get(name) != old_checks[name])
    old_fields = {f.name: f for f in before.fields}
    new_fields = {f.name: f for f in after.fields}
    removed = [f for f in before.fields if f.name not in new_fields]
    added = [f for f in after.fields if f.name not in old_fields]

    # A new field on the column of a removed one, of the same type, is that field renamed
    # in models.mp only: its column and values stay (any other change is an alter).
    renamed = []
    for old_field in removed:
        same_column = next((f for f in added if f.column == old_field.column and f.type == old_field.type), None)
        if same_column is not None:
            renamed.append((old_field, same_column))
    for old_field in removed:
        if any(old_field is r[0] for r in renamed):
            continue
        for new_field in added:
            if any(new_field is r[1] for r in renamed):
                continue
            if _as_declared(old_field)._replace(name=new_field.name, column=new_field.column) \
                    == _as_declared(new_field) \
                    and questioner.ask_rename_field(before.name, old_field, new_field):
                renamed.append((old_field, new_field))
                break
    renamed_old = {r[0].name for r in renamed}
    renamed_new = {r[1].name for r in renamed}

    old_indexes = {i.name: i for i in before.indexes}
    new_indexes = {i.name: i for i in after.indexes}
    rename_map = {o.name: n.name for o, n in renamed}
    for name in sorted(old_indexes):
        index = old_indexes[name]
        carried = index._replace(fields=tuple(rename_map.get(f, f) for f in index.fields))
        if new_indexes.get(name) != carried:
            operations.append(DropIndex(before.name, before.table, index))

    for old_field, new_field in renamed:
        carried = old_field._replace(name=new_field.name, column=new_field.column)
        operations.append(RenameColumn(before.name, before.table, old_field, carried))
        if carried != new_field:
            old_key = _referenced_key(state, carried)
            changes = column_changes(carried, new_field, old_key, _referenced_key(new, new_field))
            operations.append(AlterColumn(before.name, before.table, carried, new_field, old_key=old_key,
                                          changes=changes))
    for f in added:
        if f.name not in renamed_new:
            operations.append(AddColumn(before.name, before.table, f))
    for f in after.fields:
        previous = old_fields.get(f.name)
        if previous is not None and previous != f:
            old_key = _referenced_key(state, previous)
            changes = column_changes(previous, f, old_key, _referenced_key(new, f))
            operations.append(AlterColumn(before.name, before.table, previous, f, old_key=old_key,
                                          changes=changes))
    for f in removed:
        if f.name not in renamed_old:
            operations.append(DropColumn(before.name, before.table, f))

    for name in sorted(new_indexes):
        index = new_indexes[name]
        previous = old_indexes.get(name)
        carried = previous._replace(fields=tuple(rename_map.get(f, f) for f in previous.fields)) \
            if previous is not None else None
        if carried != index:
            operations.append(AddIndex(before.name, before.table, index))
    operations.extend(AddCheck(before.name, before.table, new_checks[name])
                      for name in sorted(new_checks) if old_checks.get(name) != new_checks[name])
    return operations


def _as_declared(f):
    """A field as models.mp can declare it: without the constraint names and the
    DEFERRABLE INITIALLY IMMEDIATE kept from a database taken over."""
    if f.fk_name or f.key_name or f.deferrable == "immediate":
        return f._replace(fk_name=None, key_name=None,
                          deferrable=None if f.deferrable == "immediate" else f.deferrable)
    return f


# ---------------------------------------------------------------- names freed before taken

TEMPORARY_PREFIX = "_mf_tmp_"


def _free_names_first(operations, old: Schema):
    """The operations reordered so that each name (a table, an index, a column of a
    table) is free when an operation takes it, or None when the order is right already.

    The order of SPEC §4 stands wherever it works. An operation that would take a name
    still held gets, before it, the later operation that frees the name, together with
    the operations between that this one must follow (a drop of a referenced table
    follows the drops of the columns that point to it). When the freeing operation
    itself takes a name still held (two tables or two columns swap), it goes in two
    steps: to a temporary name first, to its own name where it stood.
    """
    if not old.models:
        return None  # a first migration: no name is held yet, and listing those taken is long
    wanted = set()
    for operation in operations:
        wanted |= _taken_and_freed(operation)[0]
    held = _held(old, wanted)
    if not held:
        return None  # every name taken is new: the usual case, settled without a look at the rest
    pending = list(operations)
    placed: list = []
    budget = moves_left = 2 * len(pending) + 8  # each move settles a name; this bounds a cycle not foreseen
    while pending:
        operation = pending[0]
        takes, frees = _taken_and_freed(operation)
        blocked = (takes - frees) & held
        freer = _first_freeing(pending, blocked) if blocked and moves_left > 0 else None
        if freer is not None:
            later = pending[freer]
            later_takes, later_frees = _taken_and_freed(later)
            candidate = pending
            if (later_takes - later_frees) & held:
                through = _through_temporary(later)
                candidate = None if through is None else \
                    pending[:freer] + [through[0], through[1]] + pending[freer + 1:]
            reordered = _bring_forward(candidate, freer) if candidate is not None else None
            if reordered is not None:
                pending = reordered
                moves_left -= 1
                continue
        placed.append(pending.pop(0))
        held = (held - frees) | takes
    if moves_left == budget:
        return None
    return _tables_as_they_stand(placed, old)


def _bring_forward(pending: list, position: int):
    """``pending`` with the operation at ``position`` first, preceded by those before it
    that it must follow (and those they must follow); None when that includes the first
    operation, which waits for it."""
    group = {position}
    for earlier in range(position - 1, -1, -1):
        if any(not _independent(pending[member], pending[earlier]) for member in group):
            if earlier == 0:
                return None
            group.add(earlier)
    ahead = [pending[i] for i in sorted(group)]
    return ahead + [op for i, op in enumerate(pending) if i not in group]


def _tables_as_they_stand(operations, old: Schema) -> list:
    """Each operation on an existing table with the table's name at its new place (an
    operation moved across a rename of its table names it as it is then)."""
    state = fold_start(old)
    settled = []
    for operation in operations:
        if operation.op not in ("create_model", "rename_model") and hasattr(operation, "table") \
                and operation.model in state.models:
            table = state.models[operation.model].table
            if table != operation.table:
                operation = replace(operation, table=table)
        state = folding(operation.apply(state))
        settled.append(operation)
    return settled


def _held(schema: Schema, names: set) -> set:
    """Those of ``names`` that exist in ``schema``."""
    if not names:
        return set()
    relations = {model.table for model in schema.models.values()}
    relations.update(index.name for model in schema.models.values() for index in model.indexes)
    held = set()
    for name in names:
        if name[0] == "relation":
            found = name[1] in relations
        else:
            model = schema.models.get(name[1])
            found = model is not None and any(f.column == name[2] for f in model.fields)
        if found:
            held.add(name)
    return held


def _names_of(schema: Schema) -> set:
    names = set()
    for model in schema.models.values():
        names.add(("relation", model.table))
        names.update(("relation", index.name) for index in model.indexes)
        names.update(("column", model.name, f.column) for f in model.fields)
    return names


def _taken_and_freed(operation) -> tuple:
    """(names the operation takes, names it frees), as in _names_of."""
    kind = operation.op
    if kind == "create_model":
        return _names_of(Schema(models={operation.model: operation.table_def.model})), set()
    if kind == "drop_model" and operation.table_def is not None:
        return set(), _names_of(Schema(models={operation.model: operation.table_def.model}))
    if kind == "rename_model":
        columns = set()
        if operation.table_def is not None and operation.old_name != operation.new_name:
            model = operation.table_def.model
            columns = {f.column for f in model.fields}
        taken = {("column", operation.new_name, c) for c in columns}
        freed = {("column", operation.old_name, c) for c in columns}
        if operation.old_table != operation.new_table:
            taken.add(("relation", operation.new_table))
            freed.add(("relation", operation.old_table))
        return taken, freed
    if kind == "add_index":
        return {("relation", operation.index.name)}, set()
    if kind == "drop_index":
        return set(), {("relation", operation.index.name)}
    if kind == "add_column":
        return {("column", operation.model, operation.field.column)}, set()
    if kind == "drop_column":
        return set(), {("column", operation.model, operation.field.column)}
    if kind in ("rename_column", "alter_column") and operation.old.column != operation.new.column:
        return {("column", operation.model, operation.new.column)}, {("column", operation.model, operation.old.column)}
    return set(), set()


def _first_freeing(pending, names) -> int | None:
    for position in range(1, len(pending)):
        if _taken_and_freed(pending[position])[1] & names:
            return position
    return None


def _touched(operation) -> tuple:
    """(models, (model, field) pairs) an operation reads or changes; None for the models
    of an operation on whole tables or enums (nothing moves past it)."""
    kind = operation.op
    if kind in ("create_enum", "alter_enum", "drop_enum"):
        return None, None
    if kind == "rename_model":
        if operation.old_name == operation.new_name:
            return {operation.new_name}, set()  # the table only: what runs on its columns may pass
        return {operation.old_name, operation.new_name}, None
    if kind in ("create_model", "drop_model", "add_check", "drop_check"):
        return {operation.model}, None  # a check may name any column of its table
    fields = set()
    if kind in ("add_column", "drop_column"):
        fields = {operation.field.name}
    elif kind in ("rename_column", "alter_column"):
        fields = {operation.old.name, operation.new.name}
    elif kind in ("add_index", "drop_index"):
        fields = set(operation.index.fields)
    elif kind in ("add_fk", "drop_fk"):
        return {operation.model, operation.target}, None
    return {operation.model}, {(operation.model, name) for name in fields}


def _points_to(operation) -> set:
    """The models an operation makes a column point to."""
    kind = operation.op
    if kind == "create_model" and operation.table_def is not None:
        return {f.target for f in operation.table_def.model.fields if f.target is not None}
    if kind == "add_column":
        return {operation.field.target} - {None}
    if kind in ("alter_column", "rename_column"):
        return {operation.new.target} - {None}
    if kind == "add_fk":
        return {operation.target}
    return set()


def _lets_go_of(operation) -> set:
    """The models an operation stops pointing to (a referenced table can go after it)."""
    kind = operation.op
    if kind == "drop_model" and operation.table_def is not None:
        return {f.target for f in operation.table_def.model.fields if f.target is not None}
    if kind == "drop_column":
        return {operation.field.target} - {None}
    if kind in ("alter_column", "rename_column"):
        return {operation.old.target} - {None}
    if kind == "drop_fk":
        return {operation.target}
    return set()


def _made_or_unmade(operation) -> set:
    """The models an operation creates, drops or renames (a move to another table alone
    leaves references as they are: both databases follow a renamed table)."""
    if operation.op in ("create_model", "drop_model"):
        return {operation.model}
    if operation.op == "rename_model" and operation.old_name != operation.new_name:
        return {operation.old_name, operation.new_name}
    return set()


def _independent(first, second) -> bool:
    """May ``first`` run before ``second`` instead of after it? Not when they touch the same
    field or whole model, when ``first`` points a column to a model ``second`` creates,
    drops or renames, or when ``first`` creates, drops or renames a model that ``second``
    points a column to or stops pointing to."""
    models_a, fields_a = _touched(first)
    models_b, fields_b = _touched(second)
    if models_a is None or models_b is None:
        return False
    if _points_to(first) & _made_or_unmade(second) \
            or _made_or_unmade(first) & (_points_to(second) | _lets_go_of(second)):
        return False
    if not models_a & models_b:
        return True
    return fields_a is not None and fields_b is not None and not fields_a & fields_b


def _temporary(name: str) -> str:
    return (TEMPORARY_PREFIX + name)[:MAX_IDENTIFIER]


def _through_temporary(operation):
    """(the move to a temporary name, the move from it to the operation's own name), or
    None for an operation that cannot go in two steps."""
    if operation.op == "rename_model" and operation.old_table != operation.new_table:
        parked = _temporary(operation.old_table)
        return (RenameModel(operation.old_name, operation.old_name, operation.old_table, parked),
                replace(operation, old_table=parked))
    if operation.op in ("rename_column", "alter_column") and operation.old.column != operation.new.column:
        parked = operation.old._replace(column=_temporary(operation.old.column))
        return (RenameColumn(operation.model, operation.table, operation.old, parked),
                replace(operation, old=parked))
    return None
