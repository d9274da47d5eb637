"""language_config.yaml (SPEC §1)."""
from __future__ import annotations

import os

import pytest

from mfcore import ConfigError
from mfcore.config import load_config, mask_dsn


def write(tmp_path, text):
    path = tmp_path / "language_config.yaml"
    path.write_text(text)
    return path


def test_defaults_and_paths_relative_to_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    monkeypatch.chdir("/")
    config = load_config(str(write(tmp_path, 'database:\n  driver: "sqlite"\n  dsn: "./dev.db"\nname: x\n')))
    assert config.driver == "sqlite"
    assert config.dsn == str(tmp_path / "dev.db")
    assert config.models_path == str(tmp_path / "models.mp")
    assert config.migrations_dir == str(tmp_path / "migrations")


@pytest.mark.parametrize("dsn,expected", [
    ("sqlite:///data/app.db", "data/app.db"),
    (":memory:", ":memory:"),
])
def test_sqlite_dsn_forms(tmp_path, monkeypatch, dsn, expected):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    config = load_config(str(write(tmp_path, f'database:\n  driver: sqlite\n  dsn: "{dsn}"\n')))
    assert config.dsn == (expected if expected == ":memory:" else str(tmp_path / expected))


def test_environment_variables_in_the_dsn(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    monkeypatch.delenv("DB_HOST", raising=False)
    config = load_config(str(write(tmp_path, 'database:\n  driver: postgres\n'
                                   '  dsn: "postgresql://app:${DB_PASSWORD}@${DB_HOST:-db.internal}:5432/shop"\n')))
    assert config.driver == "postgresql"
    assert config.dsn == "postgresql://app:s3cret@db.internal:5432/shop"
    assert config.display_dsn == "postgresql://app:***@db.internal:5432/shop"


def test_an_unset_variable_without_default_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, 'database:\n  driver: postgresql\n  dsn: "${NOPE_NOT_SET}"\n'))).check_database_settings()
    assert "NOPE_NOT_SET is not set" in str(caught.value)


def test_mf_database_url_overrides_driver_and_dsn(tmp_path, monkeypatch):
    monkeypatch.setenv("MF_DATABASE_URL", "postgresql://u:pw@127.0.0.1:5432/other")
    config = load_config(str(write(tmp_path, 'database:\n  driver: sqlite\n  dsn: "./dev.db"\n')))
    assert (config.driver, config.dsn) == ("postgresql", "postgresql://u:pw@127.0.0.1:5432/other")


def test_passwords_are_masked():
    assert mask_dsn("postgresql://app:hunter2@host/db") == "postgresql://app:***@host/db"
    assert mask_dsn("postgresql://app@host/db") == "postgresql://app@host/db"
    assert "hunter2" not in mask_dsn("postgresql://app:hunter2@host:6543/db?sslmode=require")


@pytest.mark.parametrize("text,message", [
    ("database: {driver: oracle, dsn: x}\n", "unknown database driver 'oracle'"),
    ("database: {driver: postgresql, dsn: ./file.db}\n", "must be a URL"),
    ("database: {driver: sqlite}\n", "database.dsn is missing"),
    ("- a list\n", "expected a mapping"),
    ("database: {driver: sqlite, dsn: x, lock_timeout: soon}\n", "lock_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, command_timeout: 0}\n", "database.command_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, command_timeout: .inf}\n", "database.command_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, command_timeout: true}\n", "database.command_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, connect_timeout: -1}\n", "database.connect_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, connect_timeout: .nan}\n", "database.connect_timeout must be a number"),
    ("database: {driver: sqlite, dsn: x, connect_timeout: 5s}\n", "database.connect_timeout must be a number"),
])
def test_bad_configs_are_reported(tmp_path, monkeypatch, text, message):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, text))).check_database_settings()
    assert message in str(caught.value)


def test_walks_up_to_find_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    write(tmp_path, "database: {driver: sqlite, dsn: db.sqlite}\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert load_config(cwd=str(deep)).dsn == os.path.join(str(tmp_path), "db.sqlite")


def test_makemigrations_needs_no_database_settings(tmp_path, monkeypatch):
    """An unset ${DB_PASSWORD} stops the commands that connect, never makemigrations."""
    import mfcore
    from mfcore import api

    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    monkeypatch.delenv("DB_PASSWORD_NOT_SET", raising=False)
    path = write(tmp_path, 'database:\n  driver: postgresql\n  dsn: "postgresql://app:${DB_PASSWORD_NOT_SET}@db/app"\n')
    (tmp_path / "models.mp").write_text("model A extends Model {\n    a = IntegerField()\n}\n")
    result = api.makemigrations(str(path))
    assert result.written and (tmp_path / "migrations" / "001_create_a.json").exists()
    statements = api.sql(str(path), 1)[1]  # one transaction: BEGIN, the prologue, the statements, COMMIT
    assert statements[0] == "BEGIN" and statements[3].startswith('CREATE TABLE "a"')
    with pytest.raises(ConfigError, match="DB_PASSWORD_NOT_SET is not set"):
        import anyio

        anyio.run(lambda: mfcore.migrate(str(path)))


def test_connect_and_command_timeouts_are_read_with_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    config = load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x, connect_timeout: 2.5, "
                                              "command_timeout: 30}\n")))
    assert (config.connect_timeout, config.command_timeout) == (2.5, 30.0)
    config = load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x}\n")))
    assert (config.connect_timeout, config.command_timeout) == (15.0, 3600.0)


def test_lock_waits_and_statement_timeout_are_read_with_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    config = load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x}\n")))
    assert (config.statement_lock_timeout, config.statement_timeout) == ("1s", "1min")
    assert (config.lock_retries, config.lock_retry_max_wait) == (10, 10.0)
    config = load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x, statement_lock_timeout: 250ms, "
                                              "statement_timeout: 2h, lock_retries: 0, lock_retry_max_wait: 0.5}\n")))
    assert (config.statement_lock_timeout, config.statement_timeout) == ("250ms", "2h")
    assert (config.lock_retries, config.lock_retry_max_wait) == (0, 0.5)
    # Digits alone are milliseconds, as PostgreSQL reads them.
    assert load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x, statement_timeout: 1500}\n"))) \
        .statement_timeout == "1500"


@pytest.mark.parametrize("setting,message", [
    ("lock_retries: -1", "database.lock_retries must be a whole number from 0 to 1000"),
    ("lock_retries: 1.0", "database.lock_retries must be a whole number"),
    ("lock_retries: .nan", "database.lock_retries must be a whole number"),
    ("lock_retry_max_wait: .nan", "database.lock_retry_max_wait must be a number of seconds from 0 to 3600"),
    ("lock_retry_max_wait: .inf", "database.lock_retry_max_wait must be a number of seconds"),
    ("lock_retry_max_wait: true", "database.lock_retry_max_wait must be a number of seconds"),
    ("statement_timeout: .inf", "database.statement_timeout must be a duration"),
    ("statement_timeout: 5 min", "database.statement_timeout must be a duration"),
    ("statement_timeout: [1s]", "database.statement_timeout must be a duration"),
    ("statement_lock_timeout: -5s", "database.statement_lock_timeout must be a duration"),
])
def test_bad_lock_wait_settings_name_the_key(tmp_path, monkeypatch, setting, message):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, f"database:\n  driver: sqlite\n  dsn: x\n  {setting}\n")))
    assert message in str(caught.value)


def test_online_is_read_as_a_boolean_default_true(tmp_path, monkeypatch):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    assert load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x}\n"))).online is True
    assert load_config(str(write(tmp_path, "database: {driver: sqlite, dsn: x, online: false}\n"))).online is False


@pytest.mark.parametrize("written", ['"false"', "0", "1", "null", "[false]"])
def test_an_online_that_is_not_a_boolean_names_the_key(tmp_path, monkeypatch, written):
    monkeypatch.delenv("MF_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_config(str(write(tmp_path, f"database:\n  driver: sqlite\n  dsn: x\n  online: {written}\n")))
    assert "database.online must be true or false" in str(caught.value)
