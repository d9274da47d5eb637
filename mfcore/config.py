"""language_config.yaml -> Config (SPEC §1)."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from typing import Optional

from . import dsn as dsn_text
from .dialects import canonical_driver
from .errors import ConfigError

CONFIG_NAME = "language_config.yaml"
DEFAULT_LOCK_TIMEOUT = 60.0        # seconds to wait for another process's migration lock
# PostgreSQL lock_timeout of each migration transaction: short, so that the queries queued
# behind a migration that waits for a lock wait at most this long; the transaction is
# then rolled back and tried again (lock_retries times, pausing between tries).
DEFAULT_STATEMENT_LOCK_TIMEOUT = "1s"
# PostgreSQL statement_timeout of each statement in a migration transaction: a statement
# that holds its locks longer than this is an outage, not a migration (README).
DEFAULT_STATEMENT_TIMEOUT = "1min"
DEFAULT_LOCK_RETRIES = 10          # tries of a transaction after its first lock timeout
DEFAULT_LOCK_RETRY_MAX_WAIT = 10.0  # seconds: the longest pause between two tries
MAX_LOCK_RETRIES = 1000
MAX_LOCK_RETRY_MAX_WAIT = 3600.0
DEFAULT_CONNECT_TIMEOUT = 15.0     # seconds to reach a PostgreSQL server
DEFAULT_COMMAND_TIMEOUT = 3600.0   # seconds a PostgreSQL server may take to answer one statement
# Tables one migration file may touch before makemigrations splits it: PostgreSQL's
# stock lock table (64 x 100 entries) holds about 700 tables of a typical schema in one
# transaction; 500 leaves room for what other sessions hold (README, "Large schemas").
DEFAULT_MAX_TABLES_PER_MIGRATION = 500


@dataclass(frozen=True)
class Config:
    driver: str                 # "sqlite" or "postgresql"
    dsn: str                    # sqlite: a file path or ":memory:"; postgresql: a URL
    models_path: str
    migrations_dir: str
    config_path: Optional[str] = None
    dsn_problem: Optional[str] = None  # why the database settings cannot be used; raised on connecting
    dsn_source: Optional[str] = None   # where the dsn came from, for connection errors
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    statement_lock_timeout: str = DEFAULT_STATEMENT_LOCK_TIMEOUT
    statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT
    lock_retries: int = DEFAULT_LOCK_RETRIES
    lock_retry_max_wait: float = DEFAULT_LOCK_RETRY_MAX_WAIT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    # A fleet's targets (targets:, tenants:): one PostgreSQL schema of the database
    # when ``schema`` is set (its own ledger and lock), and no .applied file, which
    # mirrors the ledger of one database only.
    schema: Optional[str] = None
    mirrors_applied_file: bool = True
    max_tables_per_migration: int = DEFAULT_MAX_TABLES_PER_MIGRATION
    # PostgreSQL: migrate may cut a migration into steps with the online forms (README,
    # "Online forms on PostgreSQL"); False plans each one as one transaction, all or
    # nothing, with the plain forms.
    online: bool = True
    # index_foreign_keys: as language_config.yaml says, None when it does not (then
    # schema.json's record decides, see store.index_foreign_keys)
    index_foreign_keys: Optional[bool] = None

    @property
    def display_dsn(self) -> str:
        return mask_dsn(self.dsn)

    @property
    def dsn_origin(self) -> str:
        """`` (from MF_DATABASE_URL)``: where the dsn came from, for connection errors."""
        return f" (from {self.dsn_source})" if self.dsn_source else ""

    def with_database(self, dsn: str) -> "Config":
        driver, resolved = driver_and_dsn(dsn, base_dir=os.getcwd())
        return replace(self, driver=driver, dsn=resolved, dsn_problem=None, dsn_source=None)

    def check_database_settings(self) -> None:
        """ConfigError when the database settings could not be read (a command that
        connects calls this; makemigrations never does)."""
        if self.dsn_problem:
            raise ConfigError(self.dsn_problem)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, where: str) -> str:
    """${VAR} and ${VAR:-default} from the environment."""
    def substitute(match):
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(f"{where}: environment variable {name} is not set "
                                  f"(use ${{{name}:-default}} to give a default)")
            return default
        return value
    return _VAR.sub(substitute, text)


def mask_dsn(dsn: str) -> str:
    """A DSN fit to print: every password (userinfo, ``password=`` in the query string or
    among key/value pairs) becomes ***."""
    return dsn_text.mask(dsn)


def driver_and_dsn(url: str, base_dir: str, driver: Optional[str] = None) -> tuple[str, str]:
    """Work out the driver and a usable DSN; a URL's scheme picks the driver, and so does
    libpq's key/value form (``host=... dbname=...``)."""
    url = url.strip()
    if not url:
        raise ConfigError("the dsn is empty (write :memory: for an in-memory SQLite database)")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme:
        if scheme.startswith("postgres"):
            return "postgresql", _checked_postgres("postgresql://" + url.split("://", 1)[1])
        if scheme in ("sqlite", "sqlite3"):
            path = url.split("://", 1)[1]
            # sqlite:///relative.db and sqlite:////abs/path.db, as SQLAlchemy writes them
            if path.startswith("/"):
                path = path[1:]
            return "sqlite", _sqlite_path(path, base_dir)
        raise ConfigError(f"unsupported database URL scheme '{scheme}' (use sqlite:// or postgresql://)")
    canonical = canonical_driver(driver or "sqlite")
    if canonical is None:
        raise ConfigError(f"unknown database driver '{driver}' (use sqlite or postgresql)")
    if dsn_text.looks_like_keywords(url) and (driver is None or canonical == "postgresql"):
        return "postgresql", _checked_postgres(url)
    if canonical == "postgresql":
        raise ConfigError(f"a postgresql dsn must be a URL like postgresql://user:pass@host:5432/db "
                          f"or key=value pairs like 'host=db dbname=shop', got '{mask_dsn(url)}'")
    return "sqlite", _sqlite_path(url, base_dir)


def _checked_postgres(url: str) -> str:
    try:
        dsn_text.parse(url)
    except dsn_text.DsnError as exc:
        raise ConfigError(f"cannot read the dsn '{mask_dsn(url)}': {exc}") from None
    return url


def _sqlite_path(path: str, base_dir: str) -> str:
    if path in (":memory:", ""):
        return ":memory:"
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def find_config(start: str) -> Optional[str]:
    """language_config.yaml in ``start`` or the nearest folder above it."""
    current = os.path.abspath(start)
    while True:
        candidate = os.path.join(current, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(current)
        if parent == current:
            return None
        current = parent


def load_config(path: Optional[str] = None, cwd: Optional[str] = None) -> Config:
    """Read the project's config: ``path`` if given, else found by walking up from ``cwd``."""
    if path is None:
        path = find_config(cwd or os.getcwd())
        if path is None:
            raise ConfigError(f"no {CONFIG_NAME} found in {os.path.abspath(cwd or os.getcwd())} "
                              "or any folder above it (pass --config PATH)")
    elif not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    import yaml

    from .files import read_file

    try:
        data = read_file(path, ConfigError, limit=16 * 1024 * 1024, missing_ok=True)
        if data is None:
            raise ConfigError(f"config file not found: {path}")
        doc = yaml.safe_load(data.decode("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'database' section")
    base_dir = os.path.dirname(os.path.abspath(path))
    database = doc.get("database") or {}
    if not isinstance(database, dict):
        raise ConfigError(f"{path}: 'database' must be a mapping with 'driver' and 'dsn'")

    # The database settings are worked out now but their problems are kept for the
    # commands that connect: makemigrations needs no database, so an unset
    # ${DB_PASSWORD} or an unreachable setting must not stop it.
    dsn_problem = None
    override = os.environ.get("MF_DATABASE_URL")
    if override:
        try:
            driver, dsn = driver_and_dsn(expand_env(override, "MF_DATABASE_URL"), os.getcwd())
        except ConfigError as exc:
            driver, dsn = _guess_driver(override), ""
            dsn_problem = f"MF_DATABASE_URL: {exc}"
    else:
        raw_driver = str(database.get("driver", "sqlite"))
        if canonical_driver(raw_driver) is None:
            raise ConfigError(f"{path}: unknown database driver '{raw_driver}' (use sqlite or postgresql)")
        raw_dsn = database.get("dsn")
        if raw_dsn is not None and not isinstance(raw_dsn, str):
            raise ConfigError(f"{path}: database.dsn must be a string, not a {_yaml_kind(raw_dsn)}")
        try:
            if raw_dsn is None:  # a project of targets: only, or one that only writes migrations
                raise ConfigError(f"{path}: database.dsn is missing")
            driver, dsn = _configured_database(path, raw_driver, raw_dsn, base_dir)
        except ConfigError as exc:
            driver, dsn, dsn_problem = canonical_driver(raw_driver), "", str(exc)

    def relative(key, default):
        value = doc.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: '{key}' must be a path")
        return value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))

    lock_timeout = database.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)
    if not isinstance(lock_timeout, (int, float)) or isinstance(lock_timeout, bool) \
            or not math.isfinite(lock_timeout) or lock_timeout < 0:
        raise ConfigError(f"{path}: database.lock_timeout must be a number of seconds (finite, not negative), "
                          f"got {lock_timeout!r}")
    connect_timeout = _positive_seconds(path, database, "connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    command_timeout = _positive_seconds(path, database, "command_timeout", DEFAULT_COMMAND_TIMEOUT)
    statement_lock_timeout = _duration(path, database, "statement_lock_timeout", DEFAULT_STATEMENT_LOCK_TIMEOUT)
    statement_timeout = _duration(path, database, "statement_timeout", DEFAULT_STATEMENT_TIMEOUT)
    lock_retries = database.get("lock_retries", DEFAULT_LOCK_RETRIES)
    if type(lock_retries) is not int or not 0 <= lock_retries <= MAX_LOCK_RETRIES:
        raise ConfigError(f"{path}: database.lock_retries must be a whole number from 0 to {MAX_LOCK_RETRIES}, "
                          f"got {lock_retries!r:.40}")
    lock_retry_max_wait = database.get("lock_retry_max_wait", DEFAULT_LOCK_RETRY_MAX_WAIT)
    if not isinstance(lock_retry_max_wait, (int, float)) or isinstance(lock_retry_max_wait, bool) \
            or not math.isfinite(lock_retry_max_wait) or not 0 <= lock_retry_max_wait <= MAX_LOCK_RETRY_MAX_WAIT:
        raise ConfigError(f"{path}: database.lock_retry_max_wait must be a number of seconds from 0 to "
                          f"{MAX_LOCK_RETRY_MAX_WAIT:g} (finite), got {lock_retry_max_wait!r:.40}")
    online = database.get("online", True)
    if type(online) is not bool:
        raise ConfigError(f"{path}: database.online must be true or false, got {online!r:.40}")
    max_tables = doc.get("max_tables_per_migration", DEFAULT_MAX_TABLES_PER_MIGRATION)
    if type(max_tables) is not int or max_tables < 1:
        raise ConfigError(f"{path}: max_tables_per_migration must be a whole number of tables, 1 or more, "
                          f"got {max_tables!r:.40}")
    return Config(
        driver=driver,
        dsn=dsn,
        models_path=relative("models", "models.mp"),
        migrations_dir=relative("migrations", "migrations"),
        config_path=os.path.abspath(path),
        dsn_problem=dsn_problem,
        dsn_source="MF_DATABASE_URL" if override else f"database.dsn in {path}",
        lock_timeout=float(lock_timeout),
        statement_lock_timeout=statement_lock_timeout,
        statement_timeout=statement_timeout,
        lock_retries=lock_retries,
        lock_retry_max_wait=float(lock_retry_max_wait),
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        max_tables_per_migration=max_tables,
        online=online,
        index_foreign_keys=_index_foreign_keys(doc, path),
    )


def _index_foreign_keys(doc: dict, path: str) -> Optional[bool]:
    """index_foreign_keys: true or false; None when the config does not say."""
    value = doc.get("index_foreign_keys")
    if "index_foreign_keys" in doc and type(value) is not bool:
        raise ConfigError(f"{path}: index_foreign_keys must be true or false, got {value!r:.40}")
    return value


def _positive_seconds(path: str, database: dict, key: str, default: float) -> float:
    value = database.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{path}: database.{key} must be a number of seconds (finite, more than 0), "
                          f"got {value!r}")
    return float(value)


# A PostgreSQL duration as mf accepts it: digits and a unit; digits alone are
# milliseconds, as PostgreSQL reads them. PostgreSQL's timeouts stop at 2^31-1 ms.
_DURATION = re.compile(r"(\d+)(ms|s|min|h)?")
_UNIT_SECONDS = {None: 0.001, "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
_MAX_DURATION_SECONDS = (2 ** 31 - 1) / 1000


def duration_seconds(text: str) -> float:
    """Seconds of a duration as load_config accepted it ("1s", "500ms", "1min", "2h", "0")."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _duration(path: str, database: dict, key: str, default: str) -> str:
    value = database.get(key, default)
    text = str(value) if type(value) is int else value
    if not isinstance(text, str) or _DURATION.fullmatch(text.strip()) is None \
            or duration_seconds(text.strip()) > _MAX_DURATION_SECONDS:
        raise ConfigError(f"{path}: database.{key} must be a duration like 1s, 500ms, 1min or 2h (0 for none; "
                          f"at most 24 days), got {value!r:.40}")
    return text.strip()


def _configured_database(path: str, raw_driver: str, raw_dsn: str, base_dir: str) -> tuple:
    expanded = expand_env(raw_dsn, f"{path}: database.dsn")
    if not expanded.strip():
        raise ConfigError(f"{path}: database.dsn is empty" +
                          (f" after expanding '{raw_dsn}'" if raw_dsn.strip() else "") +
                          " (write :memory: for an in-memory SQLite database)")
    try:
        driver, dsn = driver_and_dsn(expanded, base_dir, raw_driver)
    except ConfigError as exc:
        raise ConfigError(f"{path}: database.dsn: {exc}") from None
    if canonical_driver(raw_driver) != driver:
        raise ConfigError(f"{path}: driver '{raw_driver}' does not match the dsn '{mask_dsn(dsn)}'")
    return driver, dsn


def _guess_driver(url: str) -> str:
    return "postgresql" if url.strip().lower().startswith("postgres") or "=" in url else "sqlite"


def _yaml_kind(value) -> str:
    return {list: "list", dict: "mapping", bool: "boolean"}.get(type(value), "number")


def config_for(dsn: str, migrations_dir: str, models_path: Optional[str] = None) -> Config:
    """A Config from explicit values (the API's migrate(dsn=..., migrations_dir=...))."""
    driver, resolved = driver_and_dsn(expand_env(dsn, "dsn"), os.getcwd())
    migrations_dir = os.path.abspath(migrations_dir)
    return Config(driver=driver, dsn=resolved,
                  models_path=models_path or os.path.join(os.path.dirname(migrations_dir), "models.mp"),
                  migrations_dir=migrations_dir)


# ---------------------------------------------------------------- a fleet: targets and tenants

@dataclass(frozen=True)
class Tenants:
    """The tenant schemas of one target: a list, or a query run there that returns them."""

    target: str
    schemas: tuple = ()
    query: Optional[str] = None


@dataclass(frozen=True)
class Fleet:
    """The targets of a project (targets:, tenants:), each a Config of its own. A target
    that holds tenants is where their schemas live; it is not migrated itself."""

    targets: dict        # name -> Config
    tenants: tuple = ()  # Tenants, in the order written


def load_fleet(path: Optional[str] = None, cwd: Optional[str] = None) -> Fleet:
    """The targets of the project's config; plain ``database:`` is the one target
    "default" when there is no ``targets:`` section."""
    base = load_config(path, cwd) if _has_database(path, cwd) else None
    path = path or find_config(cwd or os.getcwd())
    doc = _fleet_document(path)
    raw_targets = doc.get("targets")
    if raw_targets is None:
        if doc.get("tenants") is not None:
            raise ConfigError(f"{path}: 'tenants' names a target, so it needs a 'targets' section")
        return Fleet({"default": load_config(path)})
    if not isinstance(raw_targets, dict) or not raw_targets:
        raise ConfigError(f"{path}: 'targets' must map names to {{driver, dsn}}")
    base_dir = os.path.dirname(os.path.abspath(path))
    if base is None:
        base = Config(driver="sqlite", dsn=":memory:", models_path=_relative(doc, "models", "models.mp", path),
                      migrations_dir=_relative(doc, "migrations", "migrations", path),
                      config_path=os.path.abspath(path), index_foreign_keys=_index_foreign_keys(doc, path))
    targets = {}
    for name, entry in raw_targets.items():
        where = f"{path}: targets.{name}"
        if not isinstance(entry, dict) or entry.get("dsn") is None:
            raise ConfigError(f"{where} must be a mapping with 'driver' and 'dsn'")
        raw_driver = str(entry.get("driver", "sqlite"))
        if canonical_driver(raw_driver) is None:
            raise ConfigError(f"{where}: unknown database driver '{raw_driver}' (use sqlite or postgresql)")
        driver, dsn = driver_and_dsn(expand_env(str(entry["dsn"]), f"{where}.dsn"), base_dir, raw_driver)
        if canonical_driver(raw_driver) != driver:
            raise ConfigError(f"{where}: driver '{raw_driver}' does not match the dsn '{mask_dsn(dsn)}'")
        targets[str(name)] = replace(base, driver=driver, dsn=dsn, mirrors_applied_file=False)
    raw_tenants = doc.get("tenants")
    if raw_tenants is None:
        return Fleet(targets)
    groups = raw_tenants if isinstance(raw_tenants, list) else [raw_tenants]
    return Fleet(targets, tuple(_tenants(group, targets, path) for group in groups))


def _tenants(group, targets: dict, path: str) -> Tenants:
    where = f"{path}: tenants"
    if not isinstance(group, dict) or "target" not in group or "schemas" not in group:
        raise ConfigError(f"{where} must be a mapping with 'target' and 'schemas'")
    target = str(group["target"])
    if target not in targets:
        raise ConfigError(f"{where}.target '{target}' is not one of the targets ({', '.join(targets)})")
    from .dialects import dialect_for

    if not dialect_for(targets[target].driver).has_schemas:
        raise ConfigError(f"{where}.target '{target}' is {targets[target].driver}, which has no schemas; "
                          "tenant schemas need postgresql (give each SQLite tenant a target of its own)")
    schemas = group["schemas"]
    if isinstance(schemas, dict) and set(schemas) == {"query"} and isinstance(schemas["query"], str):
        return Tenants(target, query=schemas["query"])
    if isinstance(schemas, list) and schemas and all(isinstance(s, str) and s for s in schemas):
        if len(set(schemas)) != len(schemas):
            raise ConfigError(f"{where}.schemas names a schema twice")
        return Tenants(target, schemas=tuple(schemas))
    raise ConfigError(f"{where}.schemas must be a list of schema names or {{query: \"SELECT ...\"}}")


def _has_database(path: Optional[str], cwd: Optional[str]) -> bool:
    found = path or find_config(cwd or os.getcwd())
    if found is None or not os.path.isfile(found):
        load_config(path, cwd)  # raises the usual error
    doc = _fleet_document(found)
    return isinstance(doc.get("database"), dict) or os.environ.get("MF_DATABASE_URL") is not None


def _fleet_document(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            doc = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError):
        load_config(path)  # reports the problem as every command does
        raise
    return doc if isinstance(doc, dict) else {}


def _relative(doc: dict, key: str, default: str, path: str) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: '{key}' must be a path")
    base_dir = os.path.dirname(os.path.abspath(path))
    return value if os.path.isabs(value) else os.path.normpath(os.path.join(base_dir, value))
