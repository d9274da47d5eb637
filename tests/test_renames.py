"""Renames, swaps and reused names: every valid change applies, and no row is lost.

Each test takes a project through two or three versions of models.mp on a real
database (makemigrations through the API, migrate through the applier), with rows in
the tables, then checks the rows and compares the catalog, names included, with a
database made from the last version alone (foldcheck.py). Every test runs on SQLite
and on PostgreSQL.
"""
from __future__ import annotations

import pytest

from foldcheck import Database, Stepwise, catalog, differences
from mfcore import applier
from mfcore.errors import ModelsError, UnsafeChangeError


@pytest.fixture(params=["sqlite", "postgresql"])
def driver(request):
    return request.param


@pytest.fixture
def new_project(driver, request, tmp_path):
    """new_project() -> a Stepwise project on an empty database of this test's kind."""
    made = []

    def make():
        n = len(made)
        if driver == "sqlite":
            database = Database.sqlite(tmp_path / f"db{n}.sqlite")
        else:
            database = Database.postgresql(request.getfixturevalue("pg_url"),
                                           request.getfixturevalue("pg_session"))
        made.append(database)
        return Stepwise(database, tmp_path / f"project{n}")

    yield make
    for database in made:
        database.drop()


def migrated(new_project, *versions, **answers):
    """A project through ``versions`` of models.mp, with a row in each table after the
    first (renames answered as given, for the last): (project, rows written, the last
    makemigrations result)."""
    project = new_project()
    project.step(versions[0])
    first = project.insert_rows(1)
    for text in versions[1:-1]:
        project.step(text)
    return project, first, project.step(versions[-1], **answers)


def assert_same_as_fresh(project, new_project):
    """The stepwise database equals one made from the last models.mp alone, name for name."""
    fresh = new_project()
    fresh.step((project.root / "models.mp").read_text())
    assert differences(catalog(project.database), catalog(fresh.database)) == []


def test_class_rename_after_adding_a_field_above_keeps_the_rows(new_project):
    project, first, result = migrated(
        new_project,
        "model Delta extends Model {\n    a = IntegerField(null=true)\n}\n",
        "model Delta extends Model {\n    b = IntegerField(null=true)\n    a = IntegerField(null=true)\n}\n",
        "model Beta extends Model {\n    b = IntegerField(null=true)\n    a = IntegerField(null=true)\n}\n",
        model_renames={"Delta": "Beta"})

    assert [op.op for op in result.operations] == ["rename_model"]
    assert project.row("Beta", first["Delta"][0])["a"] == 101
    assert_same_as_fresh(project, new_project)


def test_class_rename_with_fields_reordered_in_one_edit_keeps_the_rows(new_project):
    project, first, result = migrated(
        new_project,
        "model Delta extends Model {\n    a = IntegerField(null=true)\n    b = TextField(null=true)\n}\n",
        "model Beta extends Model {\n    b = TextField(null=true)\n    a = IntegerField(null=true)\n}\n",
        model_renames={"Delta": "Beta"})

    assert [op.op for op in result.operations] == ["rename_model"]
    assert project.row("Beta", first["Delta"][0]) == {"id": first["Delta"][0], "a": 101, "b": "text 1"}
    assert_same_as_fresh(project, new_project)


def test_class_rename_on_the_same_table_is_no_database_change_even_when_declined(new_project):
    project, first, result = migrated(
        new_project,
        'model Customer extends Model {\n    name = CharField(40)\n    table = "customers"\n}\n',
        'model Client extends Model {\n    name = CharField(40)\n    table = "customers"\n}\n')

    assert [(op.op, op.old_table, op.new_table) for op in result.operations] == \
        [("rename_model", "customers", "customers")]
    assert applier.migration_statements(project.config, 2)[1] == []
    assert project.row("Client", first["Customer"][0])["name"] == "v1"
    assert_same_as_fresh(project, new_project)


def test_field_renamed_on_the_same_column_and_widened_keeps_its_values(new_project):
    project, first, _ = migrated(
        new_project,
        'model Book extends Model {\n    title = CharField(20, db_column="title")\n}\n',
        'model Book extends Model {\n    name = CharField(40, db_column="title")\n}\n')

    assert project.row("Book", first["Book"][0])["name"] == "v1"
    assert_same_as_fresh(project, new_project)


def test_a_field_dropped_and_another_added_on_its_column(new_project):
    project, first, _ = migrated(
        new_project,
        "model Item extends Model {\n    a = IntegerField(null=true)\n}\n",
        'model Item extends Model {\n    b = TextField(null=true, db_column="a")\n}\n')

    assert project.row("Item", first["Item"][0]) == {"id": first["Item"][0], "b": None}
    assert_same_as_fresh(project, new_project)


def test_two_models_swap_their_tables(new_project):
    project, first, _ = migrated(
        new_project,
        'model A extends Model {\n    x = IntegerField(unique=true)\n    table = "ta"\n}\n'
        'model B extends Model {\n    y = TextField()\n    table = "tb"\n}\n',
        'model A extends Model {\n    x = IntegerField(unique=true)\n    table = "tb"\n}\n'
        'model B extends Model {\n    y = TextField()\n    table = "ta"\n}\n')

    assert project.row("A", first["A"][0])["x"] == 101
    assert project.row("B", first["B"][0])["y"] == "text 1"
    assert_same_as_fresh(project, new_project)


def test_two_fields_swap_their_columns(new_project):
    project, first, _ = migrated(
        new_project,
        'model P extends Model {\n    x = IntegerField(db_column="c1")\n'
        '    y = CharField(20, db_column="c2", unique=true)\n}\n',
        'model P extends Model {\n    x = IntegerField(db_column="c2")\n'
        '    y = CharField(20, db_column="c1", unique=true)\n}\n')

    assert project.row("P", first["P"][0]) == {"id": first["P"][0], "x": 101, "y": "v1"}
    assert project.database.fetch('SELECT "c1", "c2" FROM "p"') == [("v1", 101)]
    assert_same_as_fresh(project, new_project)


def test_a_renamed_table_gives_its_name_and_index_names_to_a_new_model(new_project):
    project, first, _ = migrated(
        new_project,
        'model M extends Model {\n    x = IntegerField(db_index=true)\n    table = "t1"\n}\n',
        'model M extends Model {\n    x = IntegerField(db_index=true)\n    table = "t2"\n}\n'
        'model N extends Model {\n    x = IntegerField(db_index=true)\n    table = "t1"\n}\n')

    assert project.row("M", first["M"][0])["x"] == 101
    assert_same_as_fresh(project, new_project)


def test_a_named_index_moves_to_a_model_that_sorts_earlier(new_project):
    project = new_project()
    project.step('model Alpha extends Model {\n    x = IntegerField()\n}\n'
                 'model Zed extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n')
    project.step('model Alpha extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n'
                 'model Zed extends Model {\n    x = IntegerField()\n}\n')

    assert_same_as_fresh(project, new_project)


def test_an_enum_and_a_table_of_the_same_name_are_refused(new_project):
    project = new_project()
    with pytest.raises(ModelsError, match=r"models\.mp:\d+:\d+: .*priority"):
        project.make('enum Priority { LOW, HIGH }\n'
                     'model Task extends Model {\n    p = EnumField(Priority)\n    table = "priority"\n}\n')
    assert not (project.root / "migrations").exists()


def test_two_indexes_of_the_same_name_are_refused(new_project):
    project = new_project()
    with pytest.raises(ModelsError, match=r"models\.mp:\d+:\d+: .*'shared'"):
        project.make('model A extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n'
                     'model B extends Model {\n    x = IntegerField()\n    indexes = [Index(x, name="shared")]\n}\n')


def test_not_null_without_a_default_on_a_nullable_column_is_refused_with_advice(new_project):
    project = new_project()
    project.step("model Note extends Model {\n    body = TextField(null=true)\n}\n")
    with pytest.raises(UnsafeChangeError, match="default"):
        project.make("model Note extends Model {\n    body = TextField()\n}\n")
    assert [p.name for p in (project.root / "migrations").glob("0*")] == ["001_create_note.json"]


def test_not_null_with_a_default_sets_the_default_before_the_backfill_and_the_constraint(new_project, driver):
    project = new_project()
    project.step("model Note extends Model {\n    body = TextField(null=true)\n    n = IntegerField()\n}\n")
    rows = project.insert_rows(1)
    project.database.fetch('UPDATE "note" SET "body" = NULL RETURNING "id"')
    project.step('model Note extends Model {\n    body = TextField(default="empty")\n    n = IntegerField()\n}\n')

    assert project.row("Note", rows["Note"][0])["body"] == "empty"
    if driver == "postgresql":
        statements = applier.migration_statements(project.config, 2)[1]
        steps = [next(i for i, s in enumerate(statements) if marker in s)
                 for marker in ("SET DEFAULT", "UPDATE", "SET NOT NULL")]
        assert steps == sorted(steps), statements
    assert_same_as_fresh(project, new_project)


# ---------------------------------------------------------------- names that follow renames

def test_a_table_rename_renames_its_sequence_constraints_and_indexes(new_project):
    project = new_project()
    project.step('model Owner extends Model {\n    n = IntegerField()\n}\n'
                 'model Pet extends Model {\n    tag = CharField(20, unique=true)\n'
                 '    owner = ForeignKey(Owner, null=true)\n    x = IntegerField(db_index=true)\n'
                 '    table = "pets"\n}\n')
    first = project.insert_rows(1)
    project.step('model Owner extends Model {\n    n = IntegerField()\n}\n'
                 'model Pet extends Model {\n    tag = CharField(20, unique=true)\n'
                 '    owner = ForeignKey(Owner, null=true)\n    x = IntegerField(db_index=true)\n'
                 '    table = "animals"\n}\n')

    assert project.row("Pet", first["Pet"][0])["tag"] == "v1"
    assert_same_as_fresh(project, new_project)
    second = project.insert_rows(2)
    assert second["Pet"][0] != first["Pet"][0]


def test_a_column_change_on_unique_foreign_key_and_enum_columns_renames_their_constraints(new_project):
    project = new_project()
    project.step('enum Mood { HAPPY, SAD }\nmodel Owner extends Model {\n    n = IntegerField()\n}\n'
                 'model Pet extends Model {\n    tag = CharField(20, unique=true)\n'
                 '    owner = ForeignKey(Owner, null=true)\n    mood = EnumField(Mood, null=true)\n}\n')
    first = project.insert_rows(1)
    project.step('enum Mood { HAPPY, SAD }\nmodel Owner extends Model {\n    n = IntegerField()\n}\n'
                 'model Pet extends Model {\n    tag = CharField(20, unique=true, db_column="label")\n'
                 '    owner = ForeignKey(Owner, null=true, db_column="owner_ref")\n'
                 '    mood = EnumField(Mood, null=true, db_column="feeling")\n}\n')

    assert project.row("Pet", first["Pet"][0])["tag"] == "v1"
    assert_same_as_fresh(project, new_project)


def test_a_model_moves_to_the_table_of_a_dropped_model_that_pointed_at_it(new_project):
    project, first, _ = migrated(
        new_project,
        'model Alpha extends Model {\n    a = IntegerField(db_index=true)\n}\n'
        'model Gamma extends Model {\n    a = ForeignKey(Alpha, null=true)\n}\n',
        'model Alpha extends Model {\n    a = IntegerField(db_index=true)\n    table = "gamma"\n}\n')

    assert project.row("Alpha", first["Alpha"][0])["a"] == 101
    assert_same_as_fresh(project, new_project)


def test_two_models_swap_tables_while_one_points_at_the_other(new_project):
    project, first, _ = migrated(
        new_project,
        'model Beta extends Model {\n    a = IntegerField(db_index=true)\n}\n'
        'model Gamma extends Model {\n    a = ForeignKey(Beta, null=true)\n}\n',
        'model Beta extends Model {\n    a = IntegerField(db_index=true)\n    table = "gamma"\n}\n'
        'model Gamma extends Model {\n    a = ForeignKey(Beta, null=true)\n    table = "beta"\n}\n')

    assert project.row("Gamma", first["Gamma"][0])["a"] == first["Beta"][0]
    assert_same_as_fresh(project, new_project)


def test_a_model_takes_the_table_of_a_dropped_model_it_pointed_at(new_project):
    project, first, _ = migrated(
        new_project,
        'model Alpha extends Model {\n    a = IntegerField(db_index=true)\n}\n'
        'model Beta extends Model {\n    a = ForeignKey(Alpha, null=true)\n    b = IntegerField(db_index=true)\n}\n',
        'model Beta extends Model {\n    b = IntegerField(db_index=true)\n    table = "alpha"\n}\n')

    assert project.row("Beta", first["Beta"][0]) == {"id": first["Beta"][0], "b": 101}
    assert_same_as_fresh(project, new_project)
