"""squawk (the PostgreSQL migration linter) over the SQL mf generates for each change
kind of tests/changekinds.py: `mf db sql` of the migration makemigrations wrote for the
change, given to `squawk`, must report nothing but the rules the README lists as
accepted ("What squawk says about mf's SQL"), each where its reason holds.

Optional: it runs only where squawk is installed (``pip install 'mfcore[lint-check]'``);
elsewhere the module is skipped with that reason. squawk is never a dependency of mf
or of its default test run.

When `mf db sql` prints no transaction statements and no CONCURRENTLY statement, the
whole migration runs in one transaction (mf wraps it), and squawk is told so
(``--assume-in-transaction``); otherwise squawk reads the transactions as printed.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import changekinds

SQUAWK = shutil.which("squawk")
if SQUAWK is None:
    pytest.skip("squawk is not installed (pip install 'mfcore[lint-check]' to run this check)",
                allow_module_level=True)

README = changekinds.REPO / "README.md"
README_SECTION = "### What squawk says about mf's SQL"
CONCURRENTLY = re.compile(r"\bCONCURRENTLY\b", re.IGNORECASE)  # runs outside any transaction
TRANSACTION_EDGE = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    line: int          # 0-based, as squawk numbers them
    statement: str     # the lines squawk points at


@dataclass(frozen=True)
class Accepted:
    """A rule mf accepts, and the test of whether its reason holds for one finding."""

    reason: str
    holds: Callable  # (finding, kind, sql lines) -> bool


def _transaction_around(lines: list, line: int) -> tuple:
    """(the lines before ``line``, the lines after it) within its transaction."""
    start = line
    while start > 0 and not TRANSACTION_EDGE.match(lines[start - 1]):
        start -= 1
    end = line + 1
    while end < len(lines) and not TRANSACTION_EDGE.match(lines[end]):
        end += 1
    return "\n".join(lines[start:line]), "\n".join(lines[line + 1:end])


def _default_set_again(finding: Finding, kind, lines: list) -> bool:
    column = re.search(r'ALTER COLUMN ("[^"]+") DROP DEFAULT', finding.statement)
    _before, after = _transaction_around(lines, finding.line)
    return column is not None and f"ALTER COLUMN {column.group(1)} SET DEFAULT" in after


def _constraint_replaced_or_redundant(finding: Finding, kind, lines: list) -> bool:
    dropped = re.search(r'DROP CONSTRAINT ("[^"]+")', finding.statement)
    before, after = _transaction_around(lines, finding.line)
    if dropped is None:
        return False
    replaced = f"ADD CONSTRAINT {dropped.group(1)}" in after
    # a key of a table dropped in the next step, taken off first in a short step of its own
    table = re.match(r'\s*ALTER TABLE ("[^"]+")', finding.statement)
    if table is not None and any(line.startswith(f"DROP TABLE {table.group(1)}") for line in lines[finding.line:]):
        return True
    # the CHECK (col IS NOT NULL) that let SET NOT NULL skip its scan, dropped once NOT NULL holds
    redundant = "SET NOT NULL" in before
    return replaced or redundant


def _concurrent_index_build(finding: Finding, kind, lines: list) -> bool:
    return re.match(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY\b", finding.statement, re.IGNORECASE) is not None


def _concurrently(finding: Finding, kind, lines: list) -> bool:
    return re.match(r"\s*(CREATE\s+(UNIQUE\s+)?|DROP\s+)INDEX\s+CONCURRENTLY\b", finding.statement,
                    re.IGNORECASE) is not None


def _in(*kinds: str) -> Callable:
    return lambda finding, kind, lines: kind.name in kinds


ACCEPTED = {
    "prefer-text-field": Accepted(
        "CharField(max_length=n) is varchar(n) by contract: the length is the user's rule; TextField is text",
        lambda finding, kind, lines: True),
    "prefer-bigint-over-int": Accepted(
        "IntegerField is integer by contract; BigIntegerField and BigAutoField are there to choose",
        lambda finding, kind, lines: True),
    "changing-column-type": Accepted(
        "a type change that rewrites the table (narrowing a varchar, int to bigint) is announced as a rewrite; "
        "the README's expand/contract recipe avoids it",
        lambda finding, kind, lines: kind.group == "rewrite"),
    "ban-drop-table": Accepted(
        "the model was removed from models.mp; makemigrations marks the drop with a warning",
        _in("drop_referencing")),
    "ban-drop-column": Accepted(
        "the field was removed from models.mp; makemigrations marks the drop with a warning",
        _in("drop_column")),
    "ban-drop-default": Accepted(
        "mf drops a default only to set it again later in the same transaction (around a type change)",
        _default_set_again),
    "ban-drop-constraint": Accepted(
        "a constraint is dropped only to be added again in the same transaction (a new on_delete), or, "
        "after SET NOT NULL, the CHECK (col IS NOT NULL) that spared its scan, or as the key of a table "
        "dropped in the next step",
        _constraint_replaced_or_redundant),
    "require-lock-timeout": Accepted(
        "on CREATE/DROP INDEX CONCURRENTLY only, a step outside a transaction: its SHARE UPDATE EXCLUSIVE lock "
        "blocks no reads or writes, and it waits by design for the transactions already using the table",
        _concurrently),
    "require-statement-timeout": Accepted(
        "on CREATE/DROP INDEX CONCURRENTLY only: a build takes as long as the table needs and blocks no traffic; "
        "it runs under the connection's statement_timeout (command_timeout, one hour by default)",
        _concurrently),
    "prefer-robust-stmts": Accepted(
        "on CREATE/DROP INDEX CONCURRENTLY only, which run outside a transaction: mf finds an index an "
        "interrupted build left INVALID, drops and rebuilds it, and takes a valid one as built; a drop "
        "resumed after a stopped run finds the index gone and takes it as done (no IF EXISTS, so that an "
        "index dropped outside mf stops the migration)",
        _concurrently),
}


def squawk(sql: str, directory: Path, name: str) -> list:
    """squawk's findings on ``sql`` (with --assume-in-transaction when the text has no
    transaction statements of its own and nothing that runs outside one)."""
    path = directory / f"{name}.sql"
    path.write_text(sql)
    lines = sql.splitlines()
    arguments = [SQUAWK, "--reporter", "json"]
    if not any(TRANSACTION_EDGE.match(line) or CONCURRENTLY.search(line) for line in lines):
        arguments.append("--assume-in-transaction")
    # Run where no .squawk.toml of the checkout or the user is found.
    completed = subprocess.run([*arguments, path.name], cwd=directory, capture_output=True, text=True, timeout=60)
    try:
        found = json.loads(completed.stdout)
    except ValueError:
        raise AssertionError(f"squawk exited {completed.returncode} without its report: "
                             f"{completed.stderr.strip() or completed.stdout.strip()}") from None
    return [Finding(item["rule_name"], item["message"], item["line"],
                    "\n".join(lines[item["line"]:item["line_end"] + 1])) for item in found]


def refused(findings: list, kind, sql: str) -> list:
    """The findings no accepted rule covers, as sentences."""
    lines = sql.splitlines()
    return [f"{finding.rule} at line {finding.line + 1} ({finding.statement.strip()!r}): {finding.message}"
            for finding in findings
            if finding.rule not in ACCEPTED or not ACCEPTED[finding.rule].holds(finding, kind, lines)]


@pytest.fixture(scope="module")
def base_project(tmp_path_factory) -> Path:
    return changekinds.make_project(tmp_path_factory.mktemp("squawk") / "base", changekinds.KINDS["create_models"])


@pytest.mark.parametrize("kind", list(changekinds.KINDS.values()), ids=lambda kind: kind.name)
def test_squawk_reports_only_accepted_rules_on_mf_sql(kind, base_project, tmp_path):
    root = changekinds.make_project(tmp_path / kind.name, kind, base=base_project)
    sql = changekinds.mf(root, "db", "sql", str(kind.number)).stdout
    assert sql.strip(), f"mf db sql {kind.number} printed nothing"
    problems = refused(squawk(sql, tmp_path, kind.name), kind, sql)
    assert not problems, (f"squawk on mf's SQL for {kind.title}:\n  " + "\n  ".join(problems)
                          + f"\n\nmf db sql {kind.number}:\n{sql}")


@pytest.mark.parametrize("kind", [k for k in changekinds.STALL_KINDS if k.group == "online"], ids=lambda k: k.name)
def test_squawk_refuses_the_naive_sql_of_online_changes(kind, tmp_path):
    """The check has teeth: the plain SQL of each change mf must run online is reported
    by squawk for a rule the README does not accept."""
    sql = "".join(statement + ";\n" for statement in kind.naive_sql)
    assert refused(squawk(sql, tmp_path, kind.name), kind, sql) != []


def test_readme_lists_exactly_the_accepted_rules():
    text = README.read_text(encoding="utf-8")
    assert README_SECTION in text, f"README.md has no section {README_SECTION!r}"
    section = text.split(README_SECTION, 1)[1].split("\n#", 1)[0]
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    assert listed == set(ACCEPTED)
