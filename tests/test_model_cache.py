"""The model cache: a second makemigrations reads only the models that were edited,
and its files are exactly those of a run that reads everything.

Each test edits a project that already has migrations, runs makemigrations with the
cache the last run left, and compares with a copy of the project whose cache was
deleted first (the full run).
"""
from __future__ import annotations

import re
import shutil

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mfcore
from mfcore.store import cache_path

from conftest import SQLITE_CONFIG, Project, tree_state
from strategies import schema_texts

MODELS = "\n".join(
    f"model Item{i} extends Model {{\n"
    f"    name = CharField(40)\n"
    f"    price = DecimalField(10, 2, default=0)\n"
    f"    status = EnumField(Status, default=Status.NEW)\n"
    + (f"    parent = ForeignKey(Item{i - 1}, null=true)\n" if i else "")
    + "}\n" for i in range(12))
ENUMS = "enum Status { NEW, DONE }\n"


def make_project(path, text: str) -> Project:
    path.mkdir()
    (path / "language_config.yaml").write_text(SQLITE_CONFIG)
    project = Project(path)
    project.write_models(text)
    return project


def cold_copy(project: Project, path) -> Project:
    """The same project without its cache: makemigrations there reads every model."""
    shutil.copytree(project.path, path, ignore=shutil.ignore_patterns(".mf_cache"))
    return Project(path)


def outcome(project: Project):
    """What a makemigrations run gives: (files written, or the error), and how many models it read."""
    try:
        result = mfcore.makemigrations(str(project.path / "language_config.yaml"))
    except mfcore.MfError as error:
        return ("error", type(error).__name__, str(error).replace(str(project.path), "<project>")), None
    files = {path.name: path.read_bytes() for path in sorted(project.migrations.iterdir())
             if path.is_file()}
    return ("files", files), result


def edit_and_compare(tmp_path, before: str, after: str):
    """Run makemigrations on ``before``, then on ``after`` with and without the cache;
    both runs must give the same files (or the same error). Returns the cached run's result."""
    warm = make_project(tmp_path / "warm", before)
    first = warm.run("db", "makemigrations")
    assert first.code == 0, first
    cold = cold_copy(warm, tmp_path / "cold")
    warm.write_models(after)
    cold.write_models(after)
    warm_outcome, warm_result = outcome(warm)
    cold_outcome, _cold_result = outcome(cold)
    assert warm_outcome == cold_outcome
    return warm_result


def test_a_second_run_reads_only_the_edited_model(project, tmp_path):
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    assert (project.path / ".mf_cache" / ".gitignore").read_text().endswith("*\n")
    cold = cold_copy(project, tmp_path / "cold")
    edited = (ENUMS + MODELS).replace("model Item5 extends Model {\n", "model Item5 extends Model {\n"
                                      "    sku = CharField(20, default=\"\")\n")
    project.write_models(edited)
    cold.write_models(edited)

    warm_run = project.run("db", "makemigrations", "-v")
    cold_run = cold.run("db", "makemigrations", "-v")

    assert warm_run.code == cold_run.code == 0
    assert "Read 1 of 12 models; the others are unchanged since the last run" in warm_run.out
    assert "Read" not in cold_run.out
    assert project.migration_names() == ["001_enum_status_create_item0.json", "002_add_sku.json"]
    for name in ("002_add_sku.json", "schema.json"):
        assert (project.migrations / name).read_bytes() == (cold.migrations / name).read_bytes()
    # The cache the cached run leaves is the one a full run leaves.
    assert (project.path / ".mf_cache" / "migrations.json").read_bytes() == \
        (cold.path / ".mf_cache" / "migrations.json").read_bytes()


def test_no_change_reads_nothing_and_writes_nothing(project):
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    before = project.state()
    result = project.run("db", "makemigrations", "-v")
    assert result.code == 0
    assert "Read 0 of 12 models" in result.out
    assert "No changes detected." in result.out
    assert project.state() == before


def test_an_error_in_an_edited_model_is_reported_at_its_line_and_nothing_changes(project):
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    text = (ENUMS + MODELS).replace("model Item7 extends Model {\n",
                                    "model Item7 extends Model {\n    weight = FloatFeild()\n")
    project.write_models(text)
    before = project.state()

    result = project.run("db", "makemigrations")

    line = text.split("\n").index("    weight = FloatFeild()") + 1
    assert result.code == 2
    assert f"models.mp:{line}:14: error: unknown field type 'FloatFeild'" in result.err
    assert "did you mean 'FloatField'?" in result.err
    assert project.state() == before


INDEXED = (ENUMS + MODELS).replace("model Item2 extends Model {\n",
                                   "model Item2 extends Model {\n    indexes = [Index(name, name=\"by_name\")]\n")


@pytest.mark.parametrize("before, after, message", [
    (ENUMS + MODELS, re.sub(r"model Item3 extends Model \{.*?\n\}\n", "", ENUMS + MODELS, flags=re.S),
     "ForeignKey 'Item4.parent' points to unknown model 'Item3'"),
    (ENUMS + MODELS, (ENUMS + MODELS).replace("model Item9 extends Model {\n",
                                              "model Item9 extends Model {\n    table = \"item2\"\n"),
     "models Item2 and Item9 both use table 'item2'"),
    (INDEXED, INDEXED.replace("model Item9 extends Model {\n",
                              "model Item9 extends Model {\n    indexes = [Index(price, name=\"by_name\")]\n"),
     "index name 'by_name' is used by models Item2 and Item9"),
], ids=["model-gone", "table-taken", "index-name-taken"])
def test_an_edit_clashing_with_unchanged_models_is_an_error(project, before, after, message):
    project.write_models(before)
    assert project.run("db", "makemigrations").code == 0
    project.write_models(after)
    state = project.state()

    result = project.run("db", "makemigrations")

    assert result.code == 2
    assert message in result.err
    assert project.state() == state


def test_an_edited_enum_makes_the_run_read_everything(tmp_path):
    result = edit_and_compare(tmp_path, ENUMS + MODELS,
                              "enum Status { NEW = \"new\", DONE }\n" + MODELS)
    assert result.models_read == result.models_total == 12
    assert [op.op for op in result.operations][:1] == ["alter_enum"]


def test_an_edited_abstract_base_reaches_the_models_that_extend_it(tmp_path):
    base = "model Stamped extends Model {\n    abstract = true\n    created = DateTimeField(auto_now_add=true)\n}\n"
    child = "model Note extends Stamped {\n    body = TextField()\n}\n"
    before = ENUMS + base + child + MODELS
    after = before.replace("    created = DateTimeField(auto_now_add=true)\n",
                           "    created = DateTimeField(auto_now_add=true)\n    edited = DateTimeField(null=true)\n")
    result = edit_and_compare(tmp_path, before, after)
    assert result.models_read == 2  # the base and the one model that extends it
    assert [(op.op, op.model_name) for op in result.operations] == [("add_column", "Note")]


def test_a_primary_key_changing_type_alters_the_unchanged_models_pointing_at_it(tmp_path):
    result = edit_and_compare(tmp_path, ENUMS + MODELS, (ENUMS + MODELS).replace(
        "model Item3 extends Model {\n", "model Item3 extends Model {\n    id = BigAutoField()\n"))
    assert result.models_read == 1
    altered = [op.model_name for op in result.operations if op.op == "alter_column"]
    assert altered == ["Item3", "Item4"]


CHAIN = """
model Place extends Model { code = CharField(10, primary_key=true) }
model Restaurant extends Model { place = OneToOneField(Place, primary_key=true) }
model Bistro extends Model { restaurant = OneToOneField(Restaurant, primary_key=true) }
model Review extends Model { bistro = ForeignKey(Bistro); restaurant = ForeignKey(Restaurant) }
"""


def test_a_key_changing_type_reaches_along_a_chain_of_keys(tmp_path):
    """Restaurant's key is a foreign key to Place's, Bistro's to Restaurant's: each
    column along the chain, and each pointing at one of them, follows Place's key."""
    result = edit_and_compare(tmp_path, CHAIN, CHAIN.replace("CharField(10", "CharField(20"))
    assert result.models_read == 1
    altered = [(op.model_name, op.new.name) for op in result.operations if op.op == "alter_column"]
    assert altered == [("Place", "code"), ("Restaurant", "place"), ("Bistro", "restaurant"),
                       ("Review", "restaurant"), ("Review", "bistro")]


def test_a_new_model_pointing_along_a_chain_reads_the_chain(tmp_path):
    result = edit_and_compare(tmp_path, CHAIN, CHAIN + "model Menu extends Model { bistro = ForeignKey(Bistro) }\n")
    (create,) = result.operations
    assert create.table_def.references["bistro"].key.type == "CharField"
    assert create.table_def.references["bistro"].key.max_length == 10


def test_a_changed_schema_json_is_not_trusted_to_the_cache(project, tmp_path):
    """After a pull brings someone else's migration, the cache describes an older
    schema.json: the run reads everything and builds on the new one."""
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    teammate = cold_copy(project, tmp_path / "teammate")
    teammate.write_models(ENUMS + MODELS + "model Extra extends Model {\n    note = TextField()\n}\n")
    assert teammate.run("db", "makemigrations").code == 0
    shutil.rmtree(project.migrations)
    shutil.copytree(teammate.migrations, project.migrations)
    project.write_models(ENUMS + MODELS + "model Extra extends Model {\n    note = TextField(null=true)\n}\n")

    result = project.run("db", "makemigrations", "-v")

    assert result.code == 0
    assert "Read" not in result.out
    assert project.migration_names()[-1] == "003_alter_note.json"


def _entry_replaced(cache: bytes) -> bytes:
    document = orjson.loads(cache)
    document["models"]["Item3"] = 5
    return orjson.dumps(document)


@pytest.mark.parametrize("damage", [lambda cache: b"", lambda cache: b"not json", lambda cache: cache[:-10],
                                    lambda cache: cache.replace(mfcore.__version__.encode(), b"0.0.0"),
                                    _entry_replaced],
                         ids=["empty", "not-json", "cut-short", "other-mf-version", "entry-replaced"])
def test_a_damaged_or_foreign_cache_is_ignored(project, tmp_path, damage):
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    cold = cold_copy(project, tmp_path / "cold")
    path = cache_path(str(project.migrations))
    with open(path, "rb") as handle:
        cache = handle.read()
    with open(path, "wb") as handle:
        handle.write(damage(cache))
    edited = (ENUMS + MODELS).replace("    name = CharField(40)\n", "    name = CharField(60)\n", 1)
    project.write_models(edited)
    cold.write_models(edited)

    result = project.run("db", "makemigrations", "-v")

    assert result.code == 0 and cold.run("db", "makemigrations").code == 0
    assert "Read" not in result.out
    assert tree_state(project.migrations) == tree_state(cold.migrations)


def test_declarations_sharing_a_line_are_read_in_full(tmp_path):
    before = ENUMS + "model A extends Model {\n    x = IntegerField()\n} model B extends Model {\n    y = IntegerField()\n}\n"
    after = before.replace("y = IntegerField()", "y = BigIntegerField()")
    result = edit_and_compare(tmp_path, before, after)
    assert result.models_read == result.models_total == 2
    assert [op.op for op in result.operations] == ["alter_column"]


# ---------------------------------------------------------------- generated edits

def _pieces(text: str) -> tuple[str, dict]:
    """(the enums, {model name: its declaration}) of a schema_texts() text."""
    head, *models = re.split(r"\n(?=model )", text)
    declarations = {re.match(r"model (\w+)", m).group(1): m.rstrip("\n") + "\n" for m in models}
    if head.startswith("model "):
        declarations = {re.match(r"model (\w+)", head).group(1): head.rstrip("\n") + "\n", **declarations}
        head = ""
    return (head.rstrip("\n") + "\n" if head else ""), declarations


@st.composite
def edits(draw):
    """A schema, and an edit of it: some models kept as they are, others replaced by
    another draw's model of the same name, dropped or added; the enums kept or not."""
    before = draw(schema_texts(max_models=5))
    other = draw(schema_texts(max_models=5))
    enums, models = _pieces(before)
    other_enums, other_models = _pieces(other)
    names = sorted(set(models) | set(other_models))
    choices = draw(st.lists(st.sampled_from(["keep", "other", "drop"]), min_size=len(names),
                            max_size=len(names)))
    after_models = []
    for name, choice in zip(names, choices):
        if choice == "keep" and name in models:
            after_models.append(models[name])
        elif choice == "other" and name in other_models:
            after_models.append(other_models[name])
    after_enums = other_enums if draw(st.integers(0, 4)) == 0 else enums
    return before, after_enums + "".join(draw(st.permutations(after_models)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits())
def test_a_cached_run_writes_what_a_full_run_writes(tmp_path_factory, edit):
    before, after = edit
    result = edit_and_compare(tmp_path_factory.mktemp("edit"), before, after)
    enums, models = _pieces(before)
    after_enums, after_models = _pieces(after)
    if result is not None and after_enums == enums:
        # The cache was used: only the declarations whose text changed were read.
        assert result.models_read == sum(1 for name, text in after_models.items() if models.get(name) != text)


def test_a_cache_that_cannot_be_written_does_not_stop_makemigrations(project):
    (project.path / ".mf_cache").write_text("a file where the cache folder would go\n")
    project.write_models(ENUMS + MODELS)

    result = project.run("db", "makemigrations")

    assert result.code == 0, result
    assert project.migration_names() == ["001_enum_status_create_item0.json"]
    assert (project.path / ".mf_cache").read_text() == "a file where the cache folder would go\n"
