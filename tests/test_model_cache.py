"""schema.json's sources: a second makemigrations, in this clone or any other, reads
only the models that were edited, and its files are exactly those of a run that reads
everything.

Each test edits a project that already has migrations, runs makemigrations on it, and
compares with a copy of the project whose schema.json lost its sources first (the
full run).
"""
from __future__ import annotations

import re
import shutil

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mfcore
from mfcore.model_cache import load
from mfcore.snapshot import sealed_sources, with_sources, without_sources

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
    """The same project with schema.json's sources taken off: makemigrations there reads
    every model."""
    shutil.copytree(project.path, path)
    snapshot = path / "migrations" / "schema.json"
    snapshot.write_bytes(without_sources(snapshot.read_bytes()))
    return Project(path)


def resealed(data: bytes, change) -> bytes:
    """schema.json with its sources' text changed by ``change`` and sealed again, as if
    mf had written them so."""
    text = sealed_sources(data)
    assert text is not None
    return b"".join(with_sources(without_sources(data), change(text[:-1])))


def outcome(project: Project):
    """What a makemigrations run gives: (files written, or the error), and how many models it read."""
    try:
        result = mfcore.makemigrations(str(project.path / "language_config.yaml"))
    except mfcore.MfError as error:
        return ("error", type(error).__name__, str(error).replace(str(project.path), "<project>")), None
    files = {path.name: path.read_bytes() for path in sorted(project.migrations.iterdir())
             if path.is_file()}
    if not result.written:
        # schema.json as it was: the full run's copy lost its sources before the run.
        files["schema.json"] = without_sources(files["schema.json"])
    return ("files", files), result


def edit_and_compare(tmp_path, before: str, after: str):
    """Run makemigrations on ``before``, then on ``after`` with and without schema.json's
    sources; both runs must give the same files (or the same error). Returns the result
    of the run with them."""
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
    sources, _layout = load((project.migrations / "schema.json").read_bytes())
    assert sorted(sources["models"]) == [f"Item{i}" for i in sorted(range(12), key=str)]
    assert sources["models"]["Item3"][2:5] == ["item3", ["ix_item3_parent"], ["Item2"]]  # table, indexes, targets
    cold = cold_copy(project, tmp_path / "cold")
    assert load((cold.migrations / "schema.json").read_bytes()) is None
    edited = (ENUMS + MODELS).replace("model Item5 extends Model {\n", "model Item5 extends Model {\n"
                                      "    sku = CharField(20, default=\"\")\n")
    project.write_models(edited)
    cold.write_models(edited)

    warm_run = project.run("db", "makemigrations", "-v")
    cold_run = cold.run("db", "makemigrations", "-v")

    assert warm_run.code == cold_run.code == 0
    assert "Read 1 of 12 models; the others are unchanged since schema.json was written" in warm_run.out
    assert "Read" not in cold_run.out
    assert project.migration_names() == ["001_enum_status_create_item0.json", "002_add_sku.json"]
    # Sources included: those the shorter run writes are those a full run writes.
    for name in ("002_add_sku.json", "schema.json"):
        assert (project.migrations / name).read_bytes() == (cold.migrations / name).read_bytes()
    assert load((project.migrations / "schema.json").read_bytes()) is not None


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


def test_a_pulled_schema_json_brings_the_sources_of_its_models(project, tmp_path):
    """A teammate's migration, pulled: its schema.json says what each model was read
    from, so the next run here reads only the model edited since."""
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    teammate = Project(tmp_path / "teammate")
    shutil.copytree(project.path, teammate.path)
    teammate.write_models(ENUMS + MODELS + "model Extra extends Model {\n    note = TextField()\n}\n")
    assert teammate.run("db", "makemigrations").code == 0
    shutil.rmtree(project.migrations)
    shutil.copytree(teammate.migrations, project.migrations)
    edited = ENUMS + MODELS + "model Extra extends Model {\n    note = TextField(null=true)\n}\n"
    project.write_models(edited)
    cold = cold_copy(project, tmp_path / "cold")

    result = project.run("db", "makemigrations", "-v")

    assert result.code == 0 and cold.run("db", "makemigrations").code == 0
    assert "Read 1 of 13 models" in result.out
    assert project.migration_names()[-1] == "003_alter_note.json"
    assert tree_state(project.migrations) == tree_state(cold.migrations)


def test_a_schema_json_edited_by_hand_is_read_in_full(project, tmp_path):
    """An edit anywhere in schema.json breaks the seal of its sources: a model changed
    there by hand is compared with models.mp again, as a full run compares it."""
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    path = project.migrations / "schema.json"
    edited_by_hand = path.read_bytes().replace(b'"max_length": 40', b'"max_length": 41', 1)
    path.write_bytes(edited_by_hand)
    assert load(edited_by_hand) is None
    project.write_models((ENUMS + MODELS).replace("model Item5 extends Model {\n", "model Item5 extends Model {\n"
                                                  "    sku = CharField(20, default=\"\")\n"))

    result = project.run("db", "makemigrations", "-v")

    assert result.code == 0, result
    assert "Read" not in result.out
    operations = orjson.loads((project.migrations / project.migration_names()[-1]).read_bytes())["ops"]
    assert [(op["op"], op["model"]) for op in operations] == [("alter_column", "Item0"), ("add_column", "Item5")]


def _entry_replaced(text: bytes) -> bytes:
    document = orjson.loads(text + b"}")
    document["models"]["Item3"] = 5
    return orjson.dumps(document)[:-1]


@pytest.mark.parametrize("damage", [
    lambda data: data.replace(b'"sha1": "', b'"sha1": "0', 1)[:-8] + data[-7:],
    lambda data: resealed(data, lambda text: b"not json"),
    lambda data: resealed(data, lambda text: text.replace(mfcore.__version__.encode(), b"0.0.0")),
    lambda data: resealed(data, lambda text: text.replace(b'"format": 1', b'"format": 2')),
    lambda data: resealed(data, _entry_replaced),
    lambda data: resealed(data, lambda text: re.sub(rb'\n      "Item3": [^\n]*', b"", text)),
], ids=["seal-broken", "not-json", "other-mf-version", "other-format", "entry-replaced", "entry-gone"])
def test_damaged_or_foreign_sources_are_not_used(project, tmp_path, damage):
    project.write_models(ENUMS + MODELS)
    assert project.run("db", "makemigrations").code == 0
    cold = cold_copy(project, tmp_path / "cold")
    path = project.migrations / "schema.json"
    path.write_bytes(damage(path.read_bytes()))
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
def test_a_run_on_the_sources_writes_what_a_full_run_writes(tmp_path_factory, edit):
    before, after = edit
    result = edit_and_compare(tmp_path_factory.mktemp("edit"), before, after)
    enums, models = _pieces(before)
    after_enums, after_models = _pieces(after)
    if result is not None and after_enums == enums:
        # The sources were used: only the declarations whose text changed were read.
        assert result.models_read == sum(1 for name, text in after_models.items() if models.get(name) != text)
