"""The schema changes that matter to a busy PostgreSQL table, made the way a user makes
them: one project (an ``item`` table with a foreign key to ``account``, an enum column,
and a ``tag`` table referencing it), and for each change kind the edits to models.mp
that makemigrations turns into migrations, and the plain SQL a naive tool runs for the
same change (one transaction, no online forms).

Used by benchmarks/test_bench_online.py (the longest stall traffic sees while the
change runs, beside the naive SQL) and tests/optional/test_squawk.py (squawk over the
SQL mf generates for each kind)::

    root = changekinds.make_project(tmp_path / "index", changekinds.KINDS["index"])
    changekinds.mf(root, "db", "sql", str(changekinds.KINDS["index"].number))
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]

# The DSN in the file is never used: commands that connect get MF_DATABASE_URL.
CONFIG = 'database:\n  driver: postgresql\n  dsn: "postgresql://postgres@127.0.0.1:5432/unused"\n'

TAG_MODEL = '''
model Tag extends Model {
    id = BigAutoField()
    item = ForeignKey(Item, on_delete=CASCADE)
    label = CharField(20)
    table = "tag"
}
'''

BASE_MODELS = '''enum Status { NEW, OLD }

model Account extends Model {
    id = BigAutoField()
    name = CharField(40)
    table = "account"
}

model Item extends Model {
    id = BigAutoField()
    account = ForeignKey(Account, on_delete=CASCADE)
    title = CharField(100)
    code = CharField(100)
    qty = IntegerField(default=0)
    note = CharField(100, null=true)
    status = EnumField(Status, default=Status.NEW)
    table = "item"
}
''' + TAG_MODEL

ITEM_END = '    table = "item"\n'


def _item_option(line: str) -> tuple:
    """An edit that adds ``line`` to model Item."""
    return (ITEM_END, f"    {line}\n{ITEM_END}")


@dataclass(frozen=True)
class ChangeKind:
    """One change to the base project.

    ``migrations``: the edits of each migration made after the base one (001), in order,
    each a tuple of (old, new) replacements in models.mp; the last migration is the
    change itself, the ones before it are applied first. ``group``: "online" (on
    PostgreSQL the change must not stall traffic for more than 50 ms), "rewrite" (it
    rewrites the table under ACCESS EXCLUSIVE by nature, and is announced as such), or
    "other". ``naive_sql``: what a naive tool runs in one transaction for the change
    (None where the change is only linted)."""

    name: str
    title: str
    group: str
    migrations: tuple
    naive_sql: Optional[tuple] = None
    makemigrations_args: tuple = ()

    @property
    def number(self) -> int:
        """The number of the migration that makes the change."""
        return 1 + len(self.migrations)


_KINDS = (
    ChangeKind("index", "add Index(...)", "online",
               ((_item_option('indexes = [Index(title, name="ix_item_title")]'),),),
               ('CREATE INDEX "ix_item_title" ON "item" ("title")',)),
    ChangeKind("db_index", "db_index=true", "online",
               ((("code = CharField(100)", "code = CharField(100, db_index=true)"),),),
               ('CREATE INDEX "ix_item_code" ON "item" ("code")',)),
    ChangeKind("unique_together", "unique_together", "online",
               ((_item_option("unique_together = [(account, title)]"),),),
               ('CREATE UNIQUE INDEX "uq_item_account_title" ON "item" ("account", "title")',)),
    ChangeKind("make_unique", "make a field unique", "online",
               ((("code = CharField(100)", "code = CharField(100, unique=true)"),),),
               ('ALTER TABLE "item" ADD CONSTRAINT "item_code_key" UNIQUE ("code")',)),
    ChangeKind("add_unique_field", "add a unique field", "online",
               ((_item_option("ext = CharField(40, null=true, unique=true)"),),),
               ('ALTER TABLE "item" ADD COLUMN "ext" varchar(40) CONSTRAINT "item_ext_key" UNIQUE',)),
    ChangeKind("add_fk_default", "add a NOT NULL FK with a default", "online",
               ((_item_option("owner = ForeignKey(Account, on_delete=RESTRICT, default=1)"),),),
               ('ALTER TABLE "item" ADD COLUMN "owner" bigint NOT NULL DEFAULT 1 CONSTRAINT "item_owner_fkey" '
                'REFERENCES "account" ("id") ON DELETE RESTRICT',)),
    ChangeKind("on_delete", "change a FK's on_delete", "online",
               ((("account = ForeignKey(Account, on_delete=CASCADE)",
                  "account = ForeignKey(Account, on_delete=RESTRICT)"),),),
               ('ALTER TABLE "item" DROP CONSTRAINT "item_account_fkey"',
                'ALTER TABLE "item" ADD CONSTRAINT "item_account_fkey" FOREIGN KEY ("account") '
                'REFERENCES "account" ("id") ON DELETE RESTRICT')),
    ChangeKind("check", "add a CHECK", "online",
               ((_item_option('checks = [Check("qty >= 0", name="item_qty_not_negative")]'),),),
               ('ALTER TABLE "item" ADD CONSTRAINT "item_qty_not_negative" CHECK (qty >= 0)',)),
    ChangeKind("not_null", "null -> NOT NULL (--backfill)", "online",
               ((("note = CharField(100, null=true)", "note = CharField(100)"),),),
               ('''UPDATE "item" SET "note" = 'none' WHERE "note" IS NULL''',
                'ALTER TABLE "item" ALTER COLUMN "note" SET NOT NULL'),
               makemigrations_args=("--backfill", "Item.note=none")),
    ChangeKind("not_null_default", "null -> NOT NULL with a default", "online",
               ((("note = CharField(100, null=true)", 'note = CharField(100, default="none")'),),),
               ('''ALTER TABLE "item" ALTER COLUMN "note" SET DEFAULT 'none\'''',
                '''UPDATE "item" SET "note" = 'none' WHERE "note" IS NULL''',
                'ALTER TABLE "item" ALTER COLUMN "note" SET NOT NULL')),
    ChangeKind("enum_default", "add an enum member and make it the default", "online",
               ((("enum Status { NEW, OLD }", "enum Status { NEW, OLD, FRESH }"),
                 ("default=Status.NEW", "default=Status.FRESH")),),
               # ADD VALUE and a default using the new value cannot share a transaction:
               # the naive tool recreates the type, rewriting the table.
               ('''CREATE TYPE "status_new" AS ENUM ('NEW', 'OLD', 'FRESH')''',
                'ALTER TABLE "item" ALTER COLUMN "status" DROP DEFAULT',
                'ALTER TABLE "item" ALTER COLUMN "status" TYPE "status_new" USING ("status"::text)::"status_new"',
                'DROP TYPE "status"',
                'ALTER TYPE "status_new" RENAME TO "status"',
                '''ALTER TABLE "item" ALTER COLUMN "status" SET DEFAULT 'FRESH\'''')),
    ChangeKind("varchar_narrow", "CharField 100 -> 50", "rewrite",
               ((("title = CharField(100)", "title = CharField(50)"),),),
               ('ALTER TABLE "item" ALTER COLUMN "title" TYPE varchar(50)',)),
    ChangeKind("int_bigint", "IntegerField -> BigIntegerField", "rewrite",
               ((("qty = IntegerField(default=0)", "qty = BigIntegerField(default=0)"),),),
               ('ALTER TABLE "item" ALTER COLUMN "qty" TYPE bigint',)),
    ChangeKind("drop_referencing", "drop a table that references another", "other",
               (((TAG_MODEL, ""),),),
               ('DROP TABLE "tag"',)),
    # Linted only (no stall figure): the other everyday changes.
    ChangeKind("create_models", "create models (the first migration)", "other", ()),
    ChangeKind("add_column", "add a nullable field", "other",
               ((_item_option("memo = TextField(null=true)"),),)),
    ChangeKind("drop_column", "remove a field", "other",
               ((('    note = CharField(100, null=true)\n', ''),),)),
    ChangeKind("add_enum_member", "add an enum member", "other",
               ((("enum Status { NEW, OLD }", "enum Status { NEW, OLD, FRESH }"),),)),
    ChangeKind("drop_index", "remove an index", "other",
               ((_item_option('indexes = [Index(title, name="ix_item_title")]'),),
                (('    indexes = [Index(title, name="ix_item_title")]\n', ''),))),
)

KINDS = {kind.name: kind for kind in _KINDS}
STALL_KINDS = [kind for kind in _KINDS if kind.naive_sql is not None]


MF = (sys.executable, "-m", "mfcore.cli")


def mf_environment(env: Optional[dict] = None) -> dict:
    """The environment to run ``mf`` in: this checkout's mfcore first on the path, and
    MF_DATABASE_URL only where ``env`` gives it."""
    full_env = {k: v for k, v in os.environ.items() if k != "MF_DATABASE_URL"}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return full_env


def mf(root: Path, *args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """``mf`` run in the project ``root``; a failure raises with mf's stderr."""
    completed = subprocess.run([*MF, *args], cwd=root, env=mf_environment(env),
                               capture_output=True, text=True, timeout=600)
    if completed.returncode != 0:
        raise AssertionError(f"mf {' '.join(args)} exited {completed.returncode}: "
                             f"{completed.stderr.strip() or completed.stdout.strip()}")
    return completed


def make_project(root: Path, kind: ChangeKind, base: Optional[Path] = None) -> Path:
    """A project at ``root`` whose last migration (number ``kind.number``) makes the change;
    ``base``: a project made for any kind with no migrations after 001, copied to save time."""
    if base is not None:
        shutil.copytree(base, root)
    else:
        root.mkdir(parents=True)
        (root / "language_config.yaml").write_text(CONFIG)
        (root / "models.mp").write_text(BASE_MODELS)
        mf(root, "db", "makemigrations", "--name", "base")
    models = BASE_MODELS
    for position, edits in enumerate(kind.migrations, start=2):
        for old, new in edits:
            if old not in models:
                raise AssertionError(f"change kind {kind.name}: {old!r} is not in models.mp")
            models = models.replace(old, new, 1)
        (root / "models.mp").write_text(models)
        last = position == kind.number
        mf(root, "db", "makemigrations", "--no-input", *(kind.makemigrations_args if last else ()))
        made = sorted(p.name for p in (root / "migrations").glob("[0-9]*.json"))
        if len(made) != position:
            raise AssertionError(f"change kind {kind.name}: makemigrations wrote {made}, expected {position} files")
    return root
