"""No password reaches the user's screen: every command, every way a connection fails,
every DSN form libpq accepts, with and without -v and --json (and the API's errors)."""
from __future__ import annotations

from urllib.parse import urlsplit

import anyio
import pytest

from mfcore import DatabaseError, MfError, api, cli
from mfcore.config import mask_dsn
from mfcore.dsn import DsnError, parse, to_asyncpg

MODELS = 'model Secretive extends Model {\n    id = AutoField()\n    table = "mf_secretive"\n}\n'
SECRET = "S3cr#t?Zq9"         # an unescaped '#' and '?', as libpq allows in the user information
PLAIN = "Zq9plainSecret"


def dsn_forms(host: str, port: str, db: str) -> dict:
    return {
        "userinfo": f"postgresql://postgres:{PLAIN}@{host}:{port}/{db}",
        "userinfo-hash-question": f"postgresql://postgres:{SECRET}@{host}:{port}/{db}",
        "query-password": f"postgresql://postgres@{host}:{port}/{db}?password={PLAIN}&sslmode=disable",
        "keywords": f"host={host} port={port} dbname={db} user=postgres password={PLAIN}",
        "keywords-quoted": f"host={host} port={port} dbname={db} user=postgres password='{PLAIN} x'",
        "several-hosts": f"postgresql://postgres:{PLAIN}@{host}:{port},{host}:{port}/{db}",
    }


SECRETS = (SECRET, PLAIN, "S3cr%23t", "Zq9")
COMMANDS = [
    ("db", "migrate"), ("db", "migrate", "--dry-run"), ("db", "status"), ("db", "sql", "1"),
    ("db", "reset", "--drop-db", "--yes"), ("db", "resolve", "1", "--applied"), ("db", "makemigrations"),
    ("db", "rollback"), ("db", "rollback", "--dry-run"), ("db", "migrate", "--to", "1"), ("db", "status", "--drift"),
    ("db", "drift"), ("db", "drift", "--sql"), ("db", "inspect"), ("db", "baseline"), ("db", "rebase"),
    ("db", "squash"), ("db", "makemigrations", "--dry-run"),
]
MODES = [(), ("-v",), ("--json",)]


@pytest.fixture
def server(pg_session, pg_url):
    """(host, port, database) of the module's database, which holds a table in the way
    of the migration, so that migrate fails at a statement."""
    pg_session.execute("CREATE TABLE IF NOT EXISTS mf_secretive (id integer)")
    parts = urlsplit(pg_url)
    return parts.hostname, str(parts.port or 5432), parts.path.lstrip("/")


def error_paths(server) -> dict:
    host, port, db = server
    return {
        "refused": ("127.0.0.1", "1", db),
        "no-such-database": (host, port, "mf_no_such_database"),
        "bad-port": (host, "5x", db),
        "statement-fails": (host, port, db),
    }


def run(tmp_path, monkeypatch, capsys, dsn: str, args: tuple, via_env: bool):
    root = tmp_path / "app"
    if not root.exists():
        root.mkdir()
        (root / "models.mp").write_text(MODELS)
        (root / "language_config.yaml").write_text("database:\n  driver: sqlite\n  dsn: dev.db\n")
        monkeypatch.chdir(root)
        assert cli.main(["db", "makemigrations"]) == 0
        capsys.readouterr()
    dsn_line = "  dsn: 'sqlite:///dev.db'\n" if via_env else "  dsn: '" + dsn.replace("'", "''") + "'\n"
    (root / "language_config.yaml").write_text("database:\n  driver: postgresql\n" + dsn_line
                                               if not via_env else "database:\n  driver: sqlite\n" + dsn_line)
    monkeypatch.chdir(root)
    if via_env:
        monkeypatch.setenv("MF_DATABASE_URL", dsn)
    else:
        monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_no_secret(text: str):
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.parametrize("form", list(dsn_forms("h", "1", "d")))
@pytest.mark.parametrize("path", ["refused", "no-such-database", "bad-port", "statement-fails"])
def test_no_command_prints_a_password(server, tmp_path, monkeypatch, capsys, form, path):
    host, port, db = error_paths(server)[path]
    dsn = dsn_forms(host, port, db)[form]
    failures = 0
    for command in COMMANDS:
        for mode in MODES:
            code, out, err = run(tmp_path, monkeypatch, capsys, dsn, command + mode, via_env=False)
            assert_no_secret(out + err)
            if mode != ("-v",):
                assert "Traceback" not in err
            failures += code != 0
            if path == "bad-port":
                assert code in (0, 2), (command, mode, out, err)
            elif path in ("refused", "no-such-database") and command[1] in (
                    "migrate", "status", "resolve", "drift", "inspect"):
                assert code == 3, (command, mode, out, err)
                assert "***" in (out + err)
            elif path == "statement-fails" and command == ("db", "migrate"):
                assert code == 3 and "already exists" in (out + err), (mode, out, err)
    assert failures


@pytest.mark.parametrize("form", list(dsn_forms("h", "1", "d")))
def test_mf_database_url_is_masked_too(server, tmp_path, monkeypatch, capsys, form):
    host, port, db = error_paths(server)["refused"]
    dsn = dsn_forms(host, port, db)[form]
    for mode in MODES:
        code, out, err = run(tmp_path, monkeypatch, capsys, dsn, ("db", "migrate") + mode, via_env=True)
        assert code == 3, (out, err)
        assert_no_secret(out + err)


@pytest.mark.parametrize("form", list(dsn_forms("h", "1", "d")))
def test_the_api_raises_database_error_without_the_password(server, tmp_path, form):
    host, port, db = error_paths(server)["refused"]
    (tmp_path / "migrations").mkdir()
    with pytest.raises(DatabaseError) as caught:
        anyio.run(lambda: api.migrate(dsn=dsn_forms(host, port, db)[form],
                                      migrations_dir=str(tmp_path / "migrations")))
    assert_no_secret(str(caught.value))
    assert "cannot connect to" in str(caught.value)


def test_the_forms_libpq_accepts_connect(server, tmp_path):
    """Several hosts, '#' and '?' in the password, key/value pairs: each reaches the server."""
    host, port, db = server
    (tmp_path / "migrations").mkdir()
    for form, dsn in dsn_forms(host, port, db).items():
        assert anyio.run(lambda: api.status(api.resolve_config(dsn=dsn, migrations_dir=str(tmp_path / "migrations")))) \
            == [], form


@pytest.mark.parametrize("text,shown", [
    ("postgresql://app:hunter2@host/db", "postgresql://app:***@host/db"),
    ("postgresql://app@host/db?sslmode=require&password=hunter2", "postgresql://app@host/db?sslmode=require&password=***"),
    ("host=db password=hunter2 dbname=shop", "host=db password=*** dbname=shop"),
    ("host=db password='hunter 2' dbname=shop", "host=db password=*** dbname=shop"),
    ("postgresql://app:p#ss?9@h1:5432,h2:5432/db", "postgresql://app:***@h1:5432,h2:5432/db"),
])
def test_every_form_is_masked(text, shown):
    assert mask_dsn(text) == shown


def test_libpq_parsing():
    dsn = parse("postgresql://app:p#ss?9@h1:5432,h2:6543/shop?sslmode=disable")
    assert (dsn.user, dsn.password, dsn.hosts, dsn.dbname) == ("app", "p#ss?9", [("h1", "5432"), ("h2", "6543")], "shop")
    assert to_asyncpg("host=a,b port=1,2 dbname=x password='a b\\'c'") == "postgresql://:a%20b%27c@a:1,b:2/x"
    for bad in ("postgresql://u:p@h:5x/db", "host=x pasword=y", "host=x password='open"):
        with pytest.raises(DsnError) as caught:
            parse(bad)
        assert "p@" not in str(caught.value) and "open" not in str(caught.value)


@pytest.mark.parametrize("yaml_text,message", [
    ("database:\n  driver: postgresql\n  dsn: [postgresql://a:b@h/db]\n", "database.dsn must be a string, not a list"),
    ("database:\n  driver: sqlite\n  dsn: '${MF_TEST_EMPTY}'\n", "database.dsn is empty after expanding '${MF_TEST_EMPTY}'"),
    ("database:\n  driver: sqlite\n  dsn: ''\n", "database.dsn is empty"),
    ("database:\n  driver: sqlite\n  dsn: x.db\n  lock_timeout: .nan\n", "database.lock_timeout must be a number"),
    ("database:\n  driver: sqlite\n  dsn: x.db\n  lock_timeout: .inf\n", "database.lock_timeout must be a number"),
    ("database:\n  driver: postgresql\n  dsn: 'postgresql://u:Zq9plainSecret@h:5x/db'\n",
     "cannot read the dsn 'postgresql://u:***@h:5x/db': the port of host 'h' must be a number"),
])
def test_settings_refused_with_the_key_named(tmp_path, monkeypatch, capsys, yaml_text, message):
    (tmp_path / "language_config.yaml").write_text(yaml_text)
    (tmp_path / "migrations").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    monkeypatch.setenv("MF_TEST_EMPTY", "")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = cli.main(["db", "migrate"])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err and captured.err.count("\n") == 1, captured.err
    assert_no_secret(captured.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no :memory: run, no dev.db


def test_an_mf_error_is_what_the_api_raises_for_an_unreadable_dsn(tmp_path):
    with pytest.raises(MfError) as caught:
        api.resolve_config(dsn="postgresql://u:Zq9plainSecret@h:1,h:x/db", migrations_dir=str(tmp_path))
    assert_no_secret(str(caught.value))
