"""The meaning of models.mp: from the raw tree to a Schema, or to every problem in it."""
from __future__ import annotations

from itertools import compress
from operator import attrgetter

from ..schema import (LEDGER_TABLE, MAX_IDENTIFIER, OPCLASS, POSITIVE_TYPES, Check, Enum, Field, Index, Model,
                      Schema, check_default_name, check_expression_problem, constraint_name,
                      index_condition_problem, index_name, quoted_names, same_name_keys, table_name_for)
from .fields import FieldProblem, RELATION_TYPES, build_field, did_you_mean
from .hotloops import build_fields, split_statements
from .raw import Call, ListValue, Name, RawEnum, TupleValue

_primary_key_of = attrgetter("primary_key")
_column_of = attrgetter("column")

BASE_MODELS = ("Model", "BaseModel")
MODEL_OPTIONS = ("table", "abstract", "indexes", "unique_together", "checks")


class Problem:
    """One error in a models file, with where it is and the line it is on."""

    def __init__(self, message: str, pos, path: str = "models.mp", source: str = ""):
        self.message = message
        self.line, self.column = pos if pos else (0, 0)
        self.path = path
        self.source = source

    def render(self) -> str:
        head = f"{self.path}:{self.line}:{self.column}: error: {self.message}"
        if not self.line or not self.source:
            return head
        lines = self.source.split("\n")
        if self.line > len(lines):
            return head
        text = lines[self.line - 1].rstrip("\r").expandtabs(1)
        return f"{head}\n    {text}\n    {' ' * (self.column - 1)}^"

    def __repr__(self):
        return f"Problem({self.line}:{self.column} {self.message!r})"


def build_schema(declarations, fields_builder=None, statement_splitter=None,
                 other_models=frozenset(), index_foreign_keys: bool = False,
                 consume: bool = False) -> tuple[Schema, list]:
    """Validate the raw tree; returns (schema, problems) with problems as (message, pos).

    ``fields_builder`` and ``statement_splitter`` are build_fields and split_statements
    of hotloops.py, as Python (the default) or compiled. ``other_models`` names models
    declared elsewhere that foreign keys may point to (makemigrations reads only the
    declarations that changed, see model_cache.py). ``index_foreign_keys``: a ForeignKey
    whose db_index is not given gets an index (see _ModelBuilder._foreign_key_specs).
    ``consume``: ``declarations`` is emptied, and each model's statements are let go
    once it is built, so that a large project's raw tree and its built schema are never
    in memory whole at once (the checks after the build need only names and positions)."""
    builder = SchemaBuilder(fields_builder, statement_splitter, other_models, index_foreign_keys)
    builder.declare(declarations)
    if consume:
        declarations.clear()
    builder.build_declared(consume)
    return builder.finish()


class SchemaBuilder:
    """build_schema in steps, for declarations given in parts (parser.parse reads a
    large file so, and its raw tree is never whole): declare() each part, build what
    can be built (build_declared), and finish() once every part is declared.

    Given in parts, the enums must all come first (a field's enum is looked up as it is
    built), and a model is built only once the models it extends are declared. A
    problem may then be found where a whole reading finds another first, or not at
    all (a name declared twice, an enum declared after a model of its name): the
    problems of declarations given in parts are a sign to read the whole file again,
    not what to show; so such a reading keeps no positions of fields
    (``keep_positions``), and its messages may then point at a model's name rather
    than at the field."""

    def __init__(self, fields_builder=None, statement_splitter=None, other_models=frozenset(),
                 index_foreign_keys: bool = False, keep_positions: bool = True):
        # add() closes over the list, not over self: a builder that referred to itself
        # would outlive its use until a pass of the collector, which makemigrations
        # pauses, then cost that pass a walk over every model it built.
        problems: list = []
        self.problems = problems
        self.add = lambda message, pos: problems.append((message, pos))  # noqa: E731
        self.enums: dict = {}
        self.enum_positions: dict = {}
        self.raw_models: dict = {}
        self.other_models = other_models
        self.models = _ModelBuilder(self.raw_models, self.enums, self.add, fields_builder or build_fields,
                                    statement_splitter or split_statements, index_foreign_keys, keep_positions)
        self.unbuilt: list = []  # names of the models declared and not built yet, in file order

    def declare(self, declarations) -> None:
        add = self.add
        enums, raw_models = self.enums, self.raw_models
        for decl in declarations:
            if type(decl) is RawEnum:
                if decl.name in enums or decl.name in raw_models:
                    add(f"duplicate name '{decl.name}': an enum or model of that name is declared already",
                        decl.pos)
                    continue
                enums[decl.name] = _build_enum(decl, add)
                self.enum_positions[decl.name] = decl.pos
            else:
                if decl.name in raw_models or decl.name in enums:
                    add(f"duplicate name '{decl.name}': a model or enum of that name is declared already",
                        decl.pos)
                    continue
                raw_models[decl.name] = decl
                self.unbuilt.append(decl.name)

    def build_declared(self, consume: bool = False, ready_only: bool = False) -> None:
        """Build the models declared and not built yet (``ready_only``: those whose
        bases are all declared; the others wait). ``consume``: let each one's
        statements go once it is built."""
        raw_models, builder = self.raw_models, self.models
        waiting = []
        for name in self.unbuilt:
            if ready_only and not self._bases_declared(name):
                waiting.append(name)
                continue
            builder.model(name)
            if consume:
                raw_models[name] = raw_models[name]._replace(statements=())
        self.unbuilt = waiting

    def _bases_declared(self, name) -> bool:
        seen = {name}
        base = self.raw_models[name].base
        while base not in BASE_MODELS:
            decl = self.raw_models.get(base)
            if decl is None:
                return False
            if base in seen:
                return True  # circular: building it says so
            seen.add(base)
            base = decl.base
        return True

    def finish(self) -> tuple[Schema, list]:
        """(schema, problems): every model built, and the checks across models."""
        self.build_declared()
        builder, raw_models, add = self.models, self.raw_models, self.add
        models = {}
        for name in raw_models:
            built = builder.built.get(name)
            if built is not None and not builder.is_abstract(name):
                models[name] = built
        _check_references(models, raw_models, builder, add, self.other_models)
        _check_tables(models, raw_models, add, self.enums, self.enum_positions, builder)
        _check_check_names(models, raw_models, builder, add)
        problems = self.problems
        problems.sort(key=lambda p: (p[1] or (0, 0)))
        return Schema(enums=self.enums, models=models), problems


def _build_enum(decl, add) -> Enum:
    members = []
    seen_keys = set()
    seen_values = set()
    for key, value, pos in decl.members:
        stored = key if value is None else value
        if key in seen_keys:
            add(f"duplicate key '{key}' in enum {decl.name}", pos)
            continue
        if stored in seen_values:
            add(f"enum {decl.name}: '{key}' stores the value \"{stored}\" that another member stores", pos)
            continue
        if "\0" in stored or len(stored.encode("utf-8")) > MAX_IDENTIFIER:
            add(f"enum {decl.name}: the value of '{key}' must be at most {MAX_IDENTIFIER} bytes without NUL"
                " (PostgreSQL's limit for an enum label)", pos)
            continue
        seen_keys.add(key)
        seen_values.add(stored)
        members.append((key, stored))
    if not decl.members:
        add(f"enum {decl.name} has no members", decl.pos)
    return Enum(decl.name, tuple(members))


class _ModelBuilder:
    """Builds models on demand, so that a model can extend one declared after it."""

    def __init__(self, raw_models, enums, add, fields_builder, statement_splitter, index_foreign_keys=False,
                 keep_positions=True):
        self.build_fields = fields_builder
        # Where each field is declared, for the messages of the checks across models;
        # SchemaBuilder's caller that does not show them (reading in parts) keeps none:
        # at 20,000 models they are a hundred megabytes.
        self.keep_positions = keep_positions
        self.index_foreign_keys = index_foreign_keys
        # model -> {field: pos}: its foreign keys whose db_index is not given (inherited ones too)
        self.unsaid_foreign_keys: dict = {}
        self.split_statements = statement_splitter
        self.raw = raw_models
        self.enums = enums
        self.add = add
        self.built: dict = {}
        self.options: dict = {}
        self.in_progress: set = set()
        self.field_positions: dict = {}
        self.index_specs: dict = {}
        self.check_specs: dict = {}
        self.check_positions: dict = {}
        self.field_cache: dict = {}
        self.option_positions: dict = {}
        self.index_positions: dict = {}

    def is_abstract(self, name) -> bool:
        return self.options.get(name, {}).get("abstract", False)

    def model(self, name):
        if name in self.built:
            return self.built[name]
        if name in self.in_progress:
            return None
        self.in_progress.add(name)
        try:
            result = self._build(self.raw[name])
        finally:
            self.in_progress.discard(name)
        self.built[name] = result
        return result

    def _build(self, decl):
        add = self.add
        options, field_statements = self._split(decl)
        self.options[decl.name] = options

        inherited: list = []
        inherited_specs: list = []
        inherited_checks: list = []
        foreign_keys: dict = {}
        if decl.base not in BASE_MODELS:
            if decl.base not in self.raw:
                add(f"model {decl.name} extends unknown model '{decl.base}'"
                    f"{did_you_mean(decl.base, list(self.raw) + list(BASE_MODELS))}", decl.base_pos)
            elif decl.base in self.in_progress:
                add(f"circular extends: {decl.name} extends {decl.base}, which extends {decl.name}",
                    decl.base_pos)
            else:
                base = self.model(decl.base)
                if not self.is_abstract(decl.base):
                    add(f"model {decl.name} extends {decl.base}, which is not abstract"
                        f" (add `abstract = true` to {decl.base})", decl.base_pos)
                elif base is not None:
                    inherited = list(base.fields)
                    inherited_specs = list(self.index_specs.get(decl.base, ()))
                    inherited_checks = list(self.check_specs.get(decl.base, ()))
                    foreign_keys = dict(self.unsaid_foreign_keys.get(decl.base, {}))
                    if self.keep_positions:
                        self.field_positions.setdefault(decl.name, {}).update(
                            self.field_positions.get(decl.base, {}))

        abstract = options.get("abstract", False)
        table = options.get("table") or table_name_for(decl.name)
        fields: list = []
        by_name: dict = {}
        for f in inherited:
            by_name[f.name] = len(fields)
            fields.append(f)
        index_fields: list = []
        positions = self.field_positions.setdefault(decl.name, {}) if self.keep_positions else {}
        own_foreign_keys: dict = {}
        self.build_fields(decl.name, field_statements, self.enums, self.field_cache, fields, by_name,
                          positions, index_fields, add, _build_uncached, Field, Name, own_foreign_keys)
        for statement in field_statements:  # a field the model declares again is its own
            foreign_keys.pop(statement[0], None)
        foreign_keys.update(own_foreign_keys)
        self.unsaid_foreign_keys[decl.name] = foreign_keys

        primary_keys = list(compress(fields, map(_primary_key_of, fields)))
        if not primary_keys and not abstract:
            if "id" in by_name:
                add(f"model {decl.name} has a field 'id' that is not its primary key; "
                    "mark it primary_key=true or rename it (a model without a primary key gets id = AutoField())",
                    positions.get("id", decl.pos))
            else:
                fields.insert(0, Field("id", "AutoField", "id", primary_key=True))
        if len(primary_keys) > 1:
            for extra in primary_keys[1:]:
                add(f"model {decl.name} has more than one primary key ('{primary_keys[0].name}' and"
                    f" '{extra.name}')", positions.get(extra.name, decl.pos))

        columns = list(map(_column_of, fields))
        # Cheap tests first (a large project has a hundred thousand columns): no two
        # share a name in any case, and none is long enough to be cut by PostgreSQL.
        if len(set(map(str.lower, columns))) != len(fields) or (
                max(map(len, columns), default=0) > MAX_IDENTIFIER // 4
                and max(map(len, map(str.encode, columns))) > MAX_IDENTIFIER):
            self._check_columns(decl, fields, positions)

        index_fields.extend(options.get("indexes", ()))
        index_fields.extend(options.get("unique_together", ()))
        # Index specs, not built indexes, are inherited: default names follow the child's table.
        self.index_specs[decl.name] = inherited_specs + index_fields
        specs = inherited_specs + index_fields
        if self.index_foreign_keys and foreign_keys:
            specs += _foreign_key_specs(foreign_keys, specs)
        indexes = self._indexes(decl, table, fields, specs)
        check_specs = inherited_checks + options.get("checks", [])
        self.check_specs[decl.name] = check_specs
        checks = self._checks(decl, table, fields, check_specs)
        return Model(decl.name, table, tuple(fields), indexes, checks)

    def _check_columns(self, decl, fields, positions):
        """Columns of one table that are one name to a database."""
        names = _Names()
        for f in fields:
            clash = names.taken(f.column)
            if clash is not None:
                other, other_field, database = clash
                if other == f.column:
                    self.add(f"fields '{other_field}' and '{f.name}' of model {decl.name} both use"
                             f" column '{f.column}'", positions.get(f.name, decl.pos))
                else:
                    self.add(f"fields '{other_field}' and '{f.name}' of model {decl.name} have columns"
                             f" '{other}' and '{f.column}', one name to {_HOW[database]}; rename one of them"
                             " (db_column=\"...\")", positions.get(f.name, decl.pos))
            names.claim(f.column, f.name)

    def _split(self, decl):
        """Separate field calls from model options, checking the options."""
        add = self.add
        options: dict = {}
        self.option_positions[decl.name] = option_positions = {}
        fields, option_statements = self.split_statements(decl.statements, Call)
        for name, pos, value, value_pos in option_statements:
            if name not in MODEL_OPTIONS:
                add(f"unknown model option '{name}'{did_you_mean(name, MODEL_OPTIONS)}"
                    " (a field is written name = Type(...))", pos)
                continue
            if name in options:
                add(f"model option '{name}' is given twice", pos)
                continue
            if name == "table":
                if type(value) is str and "\0" in value:
                    add("a table name cannot contain NUL", value_pos)
                elif type(value) is str and value:
                    options["table"] = value
                    option_positions["table"] = value_pos
                else:
                    add("table takes a non-empty string, e.g. table = \"customers\"", value_pos)
            elif name == "abstract":
                if value is True or value is False:
                    options["abstract"] = value
                else:
                    add("abstract takes true or false", value_pos)
            elif name == "indexes":
                options["indexes"] = self._read_indexes(value, value_pos)
            elif name == "checks":
                options["checks"] = self._read_checks(value, value_pos)
            else:
                options["unique_together"] = self._read_unique_together(value, value_pos)
        return options, fields

    def _read_indexes(self, value, pos):
        if type(value) is not ListValue:
            self.add("indexes takes a list: indexes = [Index(field, ...), ...]", pos)
            return []
        found = []
        for item, item_pos in value.items:
            if type(item) is not Call or item.name != "Index":
                self.add("each entry of indexes is Index(field, ..., name=\"...\", unique=true)", item_pos)
                continue
            names = []
            index_name_given = None
            unique = False
            where = opclass = None
            ok = True
            for keyword, arg, arg_pos in item.args:
                if keyword is None:
                    if type(arg) is Name and "." not in arg.text:
                        names.append((arg.text, arg_pos))
                    else:
                        self.add("Index takes field names", arg_pos)
                        ok = False
                elif keyword == "name":
                    if type(arg) is str and "\0" in arg:
                        self.add("an index name cannot contain NUL", arg_pos)
                        ok = False
                    elif type(arg) is str and arg:
                        index_name_given = arg
                    else:
                        self.add("Index name takes a non-empty string", arg_pos)
                        ok = False
                elif keyword == "unique":
                    if arg is True or arg is False:
                        unique = arg
                    else:
                        self.add("Index unique takes true or false", arg_pos)
                        ok = False
                elif keyword == "where":
                    problem = index_condition_problem(arg)
                    if problem is None:
                        where = arg.strip()
                    else:
                        self.add(f"Index where {problem}", arg_pos)
                        ok = False
                elif keyword == "opclass":
                    if type(arg) is str and OPCLASS.fullmatch(arg):
                        opclass = arg
                    else:
                        self.add("Index opclass takes the name of an operator class, as in"
                                 " opclass=\"varchar_pattern_ops\"", arg_pos)
                        ok = False
                else:
                    self.add(f"Index has no argument '{keyword}'"
                             f"{did_you_mean(keyword, ('name', 'unique', 'where', 'opclass'))}", arg_pos)
                    ok = False
            if not names:
                self.add("Index needs at least one field", item_pos)
                ok = False
            if ok:
                found.append((tuple(names), index_name_given, unique, item_pos, where, opclass))
        return found

    def _read_checks(self, value, pos):
        """``checks = [Check("expression", name="...")]``: (expression, name or None, pos, its pos)."""
        if type(value) is not ListValue:
            self.add("checks takes a list: checks = [Check(\"price >= 0\", name=\"...\"), ...]", pos)
            return []
        found = []
        for item, item_pos in value.items:
            if type(item) is not Call or item.name != "Check":
                self.add("each entry of checks is Check(\"SQL expression\", name=\"...\")", item_pos)
                continue
            expression = given_name = expression_pos = None
            ok = True
            positional = 0
            for keyword, arg, arg_pos in item.args:
                if keyword is None:
                    positional += 1
                    keyword = "expression" if positional == 1 else None
                    if keyword is None:
                        self.add("Check takes one positional argument, the expression; pass name by keyword",
                                 arg_pos)
                        ok = False
                        continue
                if keyword == "expression":
                    if expression is not None:
                        self.add("argument 'expression' is given twice", arg_pos)
                        ok = False
                        continue
                    problem = check_expression_problem(arg)
                    if problem is None:
                        expression, expression_pos = arg, arg_pos  # verbatim: the text is the constraint
                    else:
                        self.add(f"Check {problem}", arg_pos)
                        ok = False
                elif keyword == "name":
                    if type(arg) is str and arg and "\x00" not in arg \
                            and len(arg.encode("utf-8")) <= MAX_IDENTIFIER:
                        given_name = arg
                    else:
                        self.add(f"Check name takes a non-empty string of at most {MAX_IDENTIFIER} bytes", arg_pos)
                        ok = False
                else:
                    self.add(f"Check has no argument '{keyword}'{did_you_mean(keyword, ('expression', 'name'))}",
                             arg_pos)
                    ok = False
            if ok and expression is None:
                self.add("Check needs its SQL expression, as in Check(\"price >= 0\")", item_pos)
                ok = False
            if ok:
                found.append((expression, given_name, item_pos, expression_pos))
        return found

    def _checks(self, decl, table, fields, specs):
        """The model's checks, sorted by name; double-quoted names in an expression must be
        columns of the model (other names may be functions or keywords: not checked)."""
        if not specs:
            return ()
        columns = {f.column for f in fields}
        implied = {constraint_name(table, f.column, "check"): f.name for f in fields if f.type in POSITIVE_TYPES}
        checks: dict = {}
        for expression, given_name, pos, expression_pos in specs:
            unknown = [name for name in quoted_names(expression) if name not in columns]
            if unknown:
                self.add(f"check on model {decl.name} names \"{unknown[0]}\", which is not a column of its table"
                         f"{did_you_mean(unknown[0], columns)}", expression_pos)
                continue
            name = given_name or check_default_name(table, expression)
            check = Check(name, expression)
            if name in checks and checks[name] != check:
                self.add(f"two different checks on model {decl.name} are named '{name}'", pos)
                continue
            if name in implied:
                self.add(f"check name '{name}' on model {decl.name} is the name of the check that"
                         f" PositiveIntegerField '{implied[name]}' implies; choose another", pos)
                continue
            checks[name] = check
            self.check_positions.setdefault(decl.name, {})[name] = pos
        return tuple(checks[name] for name in sorted(checks))

    def _read_unique_together(self, value, pos):
        if type(value) is not ListValue:
            self.add("unique_together takes a list of tuples: unique_together = [(a, b)]", pos)
            return []
        items = value.items
        # A single tuple of names is accepted as one group, as Django does.
        if items and all(type(i) is Name for i, _p in items):
            items = ((TupleValue(items), pos),)
        found = []
        for group, group_pos in items:
            if type(group) not in (TupleValue, ListValue) or not group.items:
                self.add("each entry of unique_together is a tuple of field names: (a, b)", group_pos)
                continue
            names = []
            for name, name_pos in group.items:
                if type(name) is Name and "." not in name.text:
                    names.append((name.text, name_pos))
                else:
                    self.add("unique_together takes field names", name_pos)
            if len(names) == len(group.items):
                found.append((tuple(names), None, True, group_pos))
        return found

    def _indexes(self, decl, table, fields, specs):
        if not specs:
            return ()
        by_name = {f.name: f for f in fields}
        indexes: dict = {}
        for names, given_name, unique, pos, *partial in specs:
            field_names = []
            for name, name_pos in names:
                if name not in by_name:
                    self.add(f"index on model {decl.name} names unknown field '{name}'"
                             f"{did_you_mean(name, by_name)}", name_pos)
                else:
                    field_names.append(name)
            if len(field_names) != len(names):
                continue
            columns = [by_name[n].column for n in field_names]
            name = given_name or index_name("uq" if unique else "ix", table, columns)
            index = Index(name, tuple(field_names), unique, *partial)
            if name in indexes and indexes[name] != index:
                self.add(f"two different indexes on model {decl.name} are named '{name}'", pos)
                continue
            indexes[name] = index
            self.index_positions.setdefault((decl.name, name), pos)
        return tuple(indexes[name] for name in sorted(indexes))


def _foreign_key_specs(foreign_keys: dict, specs: list) -> list:
    """The index of each foreign key ({name: pos}) that no index or unique constraint
    of the model begins with: the index db_index=true gives, under the same default
    name. A partial index beginning with the key counts too: it would take that name
    when it has none, and the author who wrote it chose which rows to index."""
    covered = {spec[0][0][0] for spec in specs}
    return [(((name, pos),), None, False, pos) for name, pos in foreign_keys.items() if name not in covered]


def _build_uncached(model_name, name, pos, call, enums, cache, key, add):
    """A field call not seen before: build it (reporting problems), and remember it
    when it built cleanly. Returns (Field, db_index) or None."""
    try:
        built, db_index, field_problems = build_field(model_name, name, call.name, call.args, call.pos, enums)
    except FieldProblem as problem:
        add(problem.message, problem.pos)
        return None
    for problem in field_problems:
        add(problem.message, problem.pos or pos)
    if built is None or field_problems:
        return None
    named_column = all(kw != "db_column" for kw, _value, _pos in call.args)
    cache[key] = (built.type, None if named_column else built.column, built[3:], db_index, {name: built})
    return built, db_index


def _check_references(models, raw_models, builder, add, other_models):
    for model in models.values():
        positions = builder.field_positions.get(model.name, {})
        for f in model.fields:
            if f.type not in RELATION_TYPES:
                continue
            if f.target in models or f.target in other_models:
                continue
            pos = positions.get(f.name, raw_models[model.name].pos)
            if f.target in raw_models and builder.is_abstract(f.target):
                add(f"{f.type} '{model.name}.{f.name}' points to abstract model {f.target}, which has no table",
                    pos)
            else:
                add(f"{f.type} '{model.name}.{f.name}' points to unknown model '{f.target}'"
                    f"{did_you_mean(f.target, models)}", pos)


# How each database compares names, for messages; see schema.same_name_keys.
_HOW = {"postgresql": "PostgreSQL, which keeps only the first 63 bytes of a name",
        "sqlite": "SQLite, which ignores the case of letters in names"}


class _Names:
    """Names that must differ in one namespace of the database, compared as each
    database compares them (the project may be deployed to either)."""

    def __init__(self, databases=("postgresql", "sqlite")):
        self.databases = databases
        self.by_key: dict = {}

    def taken(self, name):
        """(the name taken, its owner, the database to which they are one) or None."""
        for key in same_name_keys(name):
            if key[0] in self.databases and key in self.by_key:
                return (*self.by_key[key], key[0])
        return None

    def claim(self, name, owner) -> None:
        for key in same_name_keys(name):
            self.by_key.setdefault(key, (name, owner))


def _check_tables(models, raw_models, add, enums, enum_positions, builder):
    """Names that must be unique in the database: tables, indexes (one namespace with
    tables on both databases, and with mf's ledger), and PostgreSQL's types (each table
    has a row type of its name, which an enum's type may not take). Names beginning with
    sqlite_ are SQLite's own."""
    if _plainly_distinct(models, enums):
        return  # checked in bulk: the loops below would find nothing
    types = _Names(("postgresql",))
    for name, enum in enums.items():
        clash = types.taken(enum.type_name)
        if clash is not None:
            add(f"enums {clash[1]} and {name} have types '{clash[0]}' and '{enum.type_name}' (lower case),"
                f" one name to {_HOW['postgresql']}; rename one of them", enum_positions[name])
        types.claim(enum.type_name, name)

    relations = _Names()
    relations.claim(LEDGER_TABLE, None)
    for model in models.values():
        table = model.table
        pos = builder.option_positions.get(model.name, {}).get("table", raw_models[model.name].pos)
        what = f"table '{table}' of model {model.name}"
        _check_reserved(table, what, pos, add)
        clash = types.taken(table)
        if clash is not None:
            add(f"{what} has the name of enum {clash[1]}'s type in PostgreSQL, where every table has a type"
                " of its name; rename one of them", pos)
        clash = relations.taken(table)
        if clash is not None:
            other, owner, database = clash
            if owner is None:
                add(f"{what} is the table of mf's ledger{_unless_same(other, table, database)};"
                    " choose another table name", pos)
            elif other == table:
                add(f"models {owner} and {model.name} both use table '{table}'", pos)
            else:
                add(f"{what} and table '{other}' of model {owner} are one name to {_HOW[database]};"
                    " rename one of them", pos)
        relations.claim(table, model.name)

    for model in models.values():
        for index in model.indexes:
            pos = builder.index_positions.get((model.name, index.name), raw_models[model.name].pos)
            what = f"index '{index.name}' of model {model.name}"
            _check_reserved(index.name, what, pos, add)
            clash = relations.taken(index.name)
            if clash is not None:
                other, owner, database = clash
                if owner is None:
                    add(f"{what} has the name of mf's ledger table{_unless_same(other, index.name, database)};"
                        " choose another index name", pos)
                elif type(owner) is str:
                    add(f"{what} has the name of table '{other}' of model {owner}"
                        f"{_unless_same(other, index.name, database)}; tables and indexes share one namespace"
                        " in the database", pos)
                elif other == index.name:
                    add(f"index name '{index.name}' is used by models {owner[0]} and {model.name};"
                        " index names must be unique in the database", pos)
                else:
                    add(f"{what} and index '{other}' of model {owner[0]} are one name to {_HOW[database]};"
                        " rename one of them", pos)
            relations.claim(index.name, (model.name,))


def _plainly_distinct(models, enums) -> bool:
    """The common case of _check_tables, told in bulk (a large project has tens of
    thousands of tables and indexes): every name ASCII, no two tables, indexes or the
    ledger one name to either database, none SQLite's own, no enum type taking another's
    or a table's name. False sends the names through the checks that say what is wrong."""
    names = [LEDGER_TABLE]
    names.extend([model.table for model in models.values()])
    names.extend([index.name for model in models.values() for index in model.indexes])
    types = [enum.type_name for enum in enums.values()]
    if not (all(map(str.isascii, names)) and all(map(str.isascii, types))):
        return False
    # same_name_keys of an ASCII name: its first 63 characters, and it in lower case.
    postgres = {name[:MAX_IDENTIFIER] for name in names}
    sqlite = {name.lower() for name in names}
    type_keys = {name[:MAX_IDENTIFIER] for name in types}
    return len(postgres) == len(sqlite) == len(names) and len(type_keys) == len(types) \
        and not any(name.startswith("sqlite_") for name in sqlite) and type_keys.isdisjoint(postgres)


def _check_check_names(models, raw_models, builder, add):
    """A check's name is unique in the schema (PostgreSQL keeps constraint names per
    table; one name for one check keeps every message and migration unambiguous)."""
    owner: dict = {}
    for model in models.values():
        for check in model.checks:
            other = owner.get(check.name)
            if other is not None and other != model.name:
                pos = builder.check_positions.get(model.name, {}).get(check.name, raw_models[model.name].pos)
                add(f"check name '{check.name}' is used by models {other} and {model.name};"
                    " check names must be unique in the schema", pos)
            owner.setdefault(check.name, model.name)


def _check_reserved(name, what, pos, add) -> None:
    if same_name_keys(name)[1][1].startswith("sqlite_"):
        add(f"{what}: SQLite keeps names beginning with 'sqlite_' for itself; choose another name", pos)


def _unless_same(other, name, database) -> str:
    return "" if other == name else f" ('{other}') to {_HOW[database]}"
