"""The project's files are read in one place (mfcore/store.py): the earlier tool's
forms become current ones there, and a malformed document stops there, naming its file."""
from __future__ import annotations

import orjson
import pytest

import mfcore
from mfcore import store
from mfcore.errors import MigrationFileError, SchemaFileError
from mfcore.operations import AddForeignKey, CreateModel, DropColumn, operation_from_json

EARLIER_FILE = {
    "ops": [
        {"op": "create_enum", "name": "UserRole", "values": [["ADMIN", "ADMIN"], ["STAFF", "STAFF"]]},
        {"op": "create_model", "model": "Customer", "table": "lt_customers", "fields": [
            {"name": "id", "type": "AutoField", "params": [], "kwargs": {}},
            {"name": "role", "type": "EnumField", "params": ["UserRole"], "kwargs": {"default": "UserRole.ADMIN"}},
            {"name": "nick", "type": "CharField", "params": [], "kwargs": {"max_length": 20, "db_index": True}},
        ]},
        {"op": "create_model", "model": "Invoice", "table": "lt_invoices", "fields": [
            {"name": "id", "type": "AutoField", "params": [], "kwargs": {}},
            {"name": "customer", "type": "ForeignKey", "params": ["Customer"], "kwargs": {}},
        ]},
        {"op": "add_fk", "kind": "fk", "from": "Invoice", "field": "customer", "to": "Customer",
         "on_delete": "PROTECT"},
        {"op": "drop_column", "model": "Customer", "table": "lt_customers", "field_name": "nick"},
    ],
}


def write(directory, name, document):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(orjson.dumps(document))


def test_an_earlier_file_is_read_in_the_current_form(tmp_path):
    write(tmp_path, "001_initial.json", EARLIER_FILE)
    [migration], schema = store.load_history(str(tmp_path))
    assert migration.legacy
    _enum, customer, invoice, add_fk, drop = migration.operations
    # Fields given as params/kwargs: the enum default names a member, whose value is stored.
    assert isinstance(customer, CreateModel) and customer.table_def is not None
    role = customer.table_def.model.field("role")
    assert (role.enum, role.default) == ("UserRole", "ADMIN")
    assert [i.fields for i in customer.table_def.model.indexes] == [("nick",)]
    # The key came in an add_fk naming the model, not its table; the drop named the field only.
    assert invoice.deferred_keys == ("customer",)
    assert isinstance(add_fk, AddForeignKey) and (add_fk.table, add_fk.on_delete) == ("lt_invoices", "PROTECT")
    assert isinstance(drop, DropColumn) and drop.field.type == "CharField" and drop.field.max_length == 20
    assert schema.models["Invoice"].field("customer").on_delete == "PROTECT"
    # Past the reader there is one form: written again and read back, nothing changes.
    (tmp_path / "001_initial.json").write_bytes(store.migration_bytes(migration.operations))
    [again], schema_again = store.load_history(str(tmp_path))
    assert not again.legacy
    assert (again.operations, schema_again) == (migration.operations, schema)


def test_the_codec_reads_only_the_current_form():
    earlier = {"op": "drop_column", "model": "Customer", "table": "lt_customers", "field_name": "nick"}
    with pytest.raises(MigrationFileError, match="operation drop_column is missing 'field_def'"):
        operation_from_json(earlier, "001_initial.json: ops[0]")


@pytest.mark.parametrize("document,message", [
    ({"format": 1, "ops": [{"op": "add_column", "model": "A"}]},
     "002_broken.json: ops[0]: operation add_column is missing 'table'"),
    ({"format": 1, "ops": [{"op": "drop_everything"}]}, "002_broken.json: ops[0]: unknown operation"),
    ({"format": 1, "ops": {}}, "002_broken.json: a migration file is an object with an 'ops' list"),
    ({"format": 1, "atomic": "yes", "ops": []}, "002_broken.json: 'atomic' must be true or false"),
    ({"format": 9, "ops": []}, "002_broken.json: format 9 is newer"),
    ({"ops": [{"op": "drop_column", "model": "Ghost", "table": "ghosts", "field_name": "x"}]},
     "002_broken.json: ops[0]: model 'Ghost' does not exist at this point of the history"),
])
def test_a_malformed_migration_file_is_rejected_at_the_reader_with_its_name(tmp_path, document, message):
    write(tmp_path, "001_initial.json", EARLIER_FILE)
    write(tmp_path, "002_broken.json", document)
    with pytest.raises(MigrationFileError) as caught:
        store.load_history(str(tmp_path))
    assert message in str(caught.value)


def test_a_malformed_migration_file_stops_makemigrations_naming_it(project):
    project.write_models("model A extends Model { n = IntegerField() }\n")
    write(project.migrations, "001_initial.json", {"format": 1, "ops": [{"op": "add_index", "model": "A"}]})
    result = project.run("db", "makemigrations")
    assert result.code != 0
    assert "001_initial.json: ops[0]: operation add_index is missing 'table'" in result.err
    assert "Traceback" not in result.err


def test_an_earlier_snapshot_keeps_on_delete_in_its_relations(tmp_path):
    write(tmp_path, "schema.json", {
        "enums": {},
        "models": {
            "Customer": {"table": "customer", "fields": {
                "id": {"name": "id", "type": "AutoField", "params": [], "kwargs": {}}}},
            "Invoice": {"table": "invoice", "fields": {
                "customer": {"name": "customer", "type": "ForeignKey", "params": ["Customer"], "kwargs": {}}}},
        },
        "relations": [{"kind": "fk", "from": "Invoice", "field": "customer", "to": "Customer",
                       "on_delete": "PROTECT"}],
    })
    schema, reflects = store.read_snapshot(str(tmp_path))
    assert reflects is None
    invoice = schema.models["Invoice"]
    assert invoice.primary_key.name == "id"  # the earlier tool's implicit key
    assert invoice.field("customer").on_delete == "PROTECT"
    assert schema == mfcore.parse("model Customer extends Model { }\n"
                                  "model Invoice extends Model { customer = ForeignKey(Customer, on_delete=PROTECT) }")


def test_a_malformed_snapshot_is_rejected_naming_it(tmp_path):
    write(tmp_path, "schema.json", {"format": 1, "enums": {}, "models": {"A": {"table": "a", "fields": {}}}})
    with pytest.raises(SchemaFileError, match=r"schema\.json: models\.A\.fields must be a list, got \{\}"):
        store.read_snapshot(str(tmp_path))


def test_reset_removes_the_projects_files(project):
    project.write_models("model A extends Model { n = IntegerField() }\n")
    assert project.run("db", "makemigrations").code == 0
    project.write_models("model A extends Model { n = IntegerField()\n m = IntegerField(null=true) }\n")
    assert project.run("db", "makemigrations").code == 0
    files = project.migration_names()
    assert len(files) == 2
    store.write_applied(str(project.migrations), files[:1])
    removed = store.remove_project_files(str(project.migrations))
    assert removed == [*files, "schema.json", ".applied"]
    assert list(project.migrations.iterdir()) == []


@pytest.fixture
def umask():
    """Set the process's umask for one test (and put the old one back)."""
    import os

    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def test_files_get_the_mode_the_umask_gives_and_are_still_written_atomically(project, umask):
    """Under umask 022 every file mf writes is -rw-r--r--, as open() would make it: a
    container built as root and run as another user can read its migrations."""
    import os
    import stat

    import anyio

    config = mfcore.load_config(str(project.path / "language_config.yaml"))
    project.write_models("model Tag extends Model {\n    label = CharField(20)\n}\n")
    mfcore.makemigrations(config)
    anyio.run(lambda: mfcore.migrate(config))
    written = sorted(p.name for p in project.migrations.iterdir())
    assert written == [".applied", "001_create_tag.json", "schema.json"]
    assert {name: stat.S_IMODE((project.migrations / name).stat().st_mode) for name in written} == \
        {name: 0o644 for name in written}
    assert not [p for p in project.migrations.iterdir() if p.name.endswith(".tmp")]

    umask(0o077)
    target = project.path / "made_under_077.json"
    store.atomic_write(str(target), b"{}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # A file that is replaced keeps the mode it had, as open("wb") keeps it.
    os.chmod(project.migrations / "schema.json", 0o664)
    store.atomic_write(str(project.migrations / "schema.json"), (project.migrations / "schema.json").read_bytes())
    assert stat.S_IMODE((project.migrations / "schema.json").stat().st_mode) == 0o664


# ---------------------------------------------------------------- writes in order, by a thread

def test_ordered_writes_put_each_file_in_place_in_the_order_given(tmp_path, monkeypatch):
    """Bytes, a list of pieces and an iterator of them (made while the file is written)
    all land whole, renamed into place one after the other, with no temporary left."""
    import os

    renamed = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renamed.append(os.path.basename(target)),
                                                               replace(source, target)))
    made = []

    def made_while_written():
        for n in range(5):
            made.append(n)
            yield b"piece %d\n" % n

    with store.OrderedWrites() as writes:
        writes.write(str(tmp_path / "001_a.json"), b"first\n")
        writes.write(str(tmp_path / "002_b.json"), [b"sec", memoryview(b"ond\n")])
        writes.write(str(tmp_path / "schema.json"), made_while_written())
    assert renamed == ["001_a.json", "002_b.json", "schema.json"]
    assert writes.written == [str(tmp_path / name) for name in renamed]
    assert (tmp_path / "002_b.json").read_bytes() == b"second\n"
    assert (tmp_path / "schema.json").read_bytes() == b"".join(b"piece %d\n" % n for n in range(5))
    assert made == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["001_a.json", "002_b.json", "schema.json"]


def test_a_file_that_cannot_be_written_stops_the_ones_after_it(tmp_path):
    """Its error comes out of the block; the files before it stay listed in ``written``
    (makemigrations removes them), none after it is written, no temporary is left."""
    from mfcore.errors import FileWriteError

    with pytest.raises(FileWriteError, match="missing"):
        with store.OrderedWrites() as writes:
            writes.write(str(tmp_path / "001_a.json"), b"first\n")
            writes.write(str(tmp_path / "missing" / "002_b.json"), b"second\n")
            writes.write(str(tmp_path / "schema.json"), iter([b"{", b"}\n"]))
    assert writes.written == [str(tmp_path / "001_a.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["001_a.json"]


def test_a_file_whose_making_fails_is_not_written(tmp_path):
    """An error while the pieces are made stops the writing: the file is not put in
    place, its temporary file is gone, and the error is the caller's own."""
    import os

    def failing():
        yield b'{"models": {'
        raise RuntimeError("made badly")

    with pytest.raises(RuntimeError, match="made badly"):
        with store.OrderedWrites() as writes:
            writes.write(str(tmp_path / "001_a.json"), b"first\n")
            writes.write(str(tmp_path / "schema.json"), failing())
    # 001_a.json is written or not, as the thread got to it first; it is listed if it is.
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(path) for path in writes.written]
    assert writes.written in ([], [str(tmp_path / "001_a.json")])


# ---------------------------------------------------------------- conflict markers, found without a regex

import re as _re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mfcore.store import has_conflict_markers  # noqa: E402

_MARKER_LINE = _re.compile(rb"^(<{7}|={7}|>{7})(\s|$)", _re.MULTILINE)  # what git's markers are


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"<<<<<<<", b"=======", b">>>>>>>", b"<", b"=", b">", b"\n", b" ", b"\t",
                                 b"\r", b"\x0b", b"x", b"{\n"]), max_size=14))
def test_conflict_markers_are_found_where_the_regular_expression_finds_them(pieces):
    data = b"".join(pieces)
    assert has_conflict_markers(data) == (_MARKER_LINE.search(data) is not None)


def test_conflict_markers_at_either_end_of_a_file():
    assert has_conflict_markers(b"<<<<<<< HEAD\n{}")
    assert has_conflict_markers(b"{}\n>>>>>>>")
    assert not has_conflict_markers(b"{}\n========\n")
    assert not has_conflict_markers(b'{"a": "=======\\n"}')
