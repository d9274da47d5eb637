"""PostgreSQL connection strings as libpq reads them, and their printable (masked) form.

libpq accepts two forms (PostgreSQL manual, 34.1.1 "Connection Strings"):

    postgresql://user:password@host1:5432,host2:5432/db?sslmode=require&password=...
    host=db.internal port=5432 dbname=shop user=app password='s3 cret'

In a URL, libpq takes the user information up to the first ``@`` or ``/``, so a
password holding an unescaped ``#`` or ``?`` is still a password; several hosts are
separated by commas. asyncpg reads URLs with urllib, which gets both wrong, so mf
parses the string here and hands asyncpg an equivalent URL with every part escaped.

Nothing outside this module looks inside a DSN: messages print ``mask(dsn)``, and
text that may quote one (a driver's error) goes through ``hide(text, dsn)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

SCHEMES = ("postgresql://", "postgres://")
SECRET_KEYS = ("password", "sslpassword")
# libpq's connection keywords (34.1.2 "Parameter Key Words")
KEYWORDS = frozenset("""
    host hostaddr port dbname user password passfile require_auth channel_binding connect_timeout
    client_encoding options application_name fallback_application_name keepalives keepalives_idle
    keepalives_interval keepalives_count tcp_user_timeout replication gssencmode sslmode requiressl
    sslnegotiation sslcompression sslcert sslkey sslpassword sslcertmode sslrootcert sslcrl sslcrldir
    sslsni requirepeer ssl_min_protocol_version ssl_max_protocol_version krbsrvname gsslib gssdelegation
    service target_session_attrs load_balance_hosts
""".split())
MASK = "***"


class DsnError(ValueError):
    """The string is not a connection string libpq would accept; the message shows no secret."""


@dataclass
class Dsn:
    user: str = ""
    password: str = ""
    hosts: list = field(default_factory=list)     # [(host, port or ""), ...]
    dbname: str = ""
    params: dict = field(default_factory=dict)    # the other keywords, decoded

    def to_url(self) -> str:
        """The same connection as a URL with every part escaped (what asyncpg reads correctly)."""
        auth = ""
        if self.user or self.password:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        hosts = ",".join(
            (f"[{host}]" if ":" in host else quote(host, safe="")) + (f":{port}" if port else "")
            for host, port in self.hosts if not host.startswith("/"))
        params = dict(self.params)
        sockets = [host for host, _ in self.hosts if host.startswith("/")]
        if sockets:
            params["host"] = ",".join(sockets)
            ports = [port for host, port in self.hosts if host.startswith("/") and port]
            if ports:
                params["port"] = ",".join(ports)
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
        return f"postgresql://{auth}{hosts}/{quote(self.dbname, safe='')}" + (f"?{query}" if query else "")


def is_url(text: str) -> bool:
    return text.lower().startswith(SCHEMES)


def looks_like_keywords(text: str) -> bool:
    """``host=... dbname=...``: the libpq key/value form (every word a known keyword)."""
    if "=" not in text or "://" in text:
        return False
    try:
        _parse_keywords(text)
    except DsnError:
        return False
    return True


def parse(text: str) -> Dsn:
    """A URL or key/value connection string, as libpq reads it (DsnError if it cannot)."""
    text = text.strip()
    return _parse_url(text) if is_url(text) else _parse_keywords(text)


def _parse_url(text: str) -> Dsn:
    rest = text.split("://", 1)[1]
    dsn = Dsn()
    # user information: up to the first '@' or '/', as libpq's conninfo_uri_parse_options
    stop = re.search(r"[@/]", rest)
    if stop and stop.group() == "@":
        userinfo, rest = rest[:stop.start()], rest[stop.end():]
        user, colon, password = userinfo.partition(":")
        dsn.user, dsn.password = unquote(user), unquote(password) if colon else ""
    end = re.search(r"[/?]", rest)
    hostlist, rest = (rest[:end.start()], rest[end.start():]) if end else (rest, "")
    if hostlist:
        dsn.hosts = [_host_and_port(spec, unquote_host=True) for spec in hostlist.split(",")]
    if rest.startswith("/"):
        path, _, query = rest[1:].partition("?")
        dsn.dbname = unquote(path)
    else:
        query = rest[1:]
    for pair in filter(None, query.split("&")):
        key, equals, value = pair.partition("=")
        if not equals:
            raise DsnError(f"'{_mask_pair(pair)}' in the query string is not key=value")
        _set(dsn, unquote(key), unquote(value))
    return dsn


def _host_and_port(spec: str, unquote_host: bool = False) -> tuple:
    if spec.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", spec)
        if not match:
            raise DsnError(f"'{spec}' is not a valid IPv6 host")
        host, port = match.group(1), match.group(2) or ""
    else:
        host, _, port = spec.partition(":")
    if port and not port.isdigit():
        raise DsnError(f"the port of host '{host}' must be a number")
    if not host:
        raise DsnError("a host in the host list is empty")
    return (unquote(host) if unquote_host else host), port


_WORD = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*")


def _parse_keywords(text: str) -> Dsn:
    dsn = Dsn()
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _WORD.match(text, position)
        if not match:
            raise DsnError("expected key=value pairs")
        key, position = match.group(1), match.end()
        if key not in KEYWORDS:
            raise DsnError(f"unknown connection keyword '{key}'")
        value, position = _keyword_value(text, position)
        _set(dsn, key, value)
    if not dsn.hosts and "port" in dsn.params:
        dsn.hosts = [("", "")]
    return dsn


def _keyword_value(text: str, position: int) -> tuple:
    if position < len(text) and text[position] == "'":
        chars, position = [], position + 1
        while position < len(text):
            char = text[position]
            if char == "\\" and position + 1 < len(text):
                chars.append(text[position + 1])
                position += 2
                continue
            if char == "'":
                return "".join(chars), position + 1
            chars.append(char)
            position += 1
        raise DsnError("a quoted value is not closed")
    chars = []
    while position < len(text) and not text[position].isspace():
        if text[position] == "\\" and position + 1 < len(text):
            position += 1
        chars.append(text[position])
        position += 1
    return "".join(chars), position


def _set(dsn: Dsn, key: str, value: str) -> None:
    if key == "user":
        dsn.user = value
    elif key == "password":
        dsn.password = value
    elif key == "dbname":
        dsn.dbname = value
    elif key == "host" and value:
        ports = [port for _, port in dsn.hosts]
        dsn.hosts = [(host, ports[i] if i < len(ports) else "") for i, host in enumerate(value.split(","))]
    elif key == "port" and value:
        ports = value.split(",")
        if not all(port.isdigit() for port in ports):
            raise DsnError("port must be a number (or a comma-separated list of numbers)")
        hosts = dsn.hosts or [("", "")]
        if len(ports) not in (1, len(hosts)):
            raise DsnError(f"{len(ports)} ports given for {len(hosts)} hosts")
        dsn.hosts = [(host, ports[i] if len(ports) > 1 else ports[0]) for i, (host, _) in enumerate(hosts)]
    else:
        dsn.params[key] = value


def to_asyncpg(text: str) -> str:
    """The DSN as a URL asyncpg reads the way libpq would (DsnError if libpq would refuse it)."""
    dsn = parse(text)
    dsn.hosts = [(host or "localhost", port) for host, port in dsn.hosts]
    return dsn.to_url()


# ---------------------------------------------------------------- printing

_URL_AUTH = re.compile(r"((?:postgres(?:ql)?)://)([^@/\s]*?):([^@/\s]*)@", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"([?&](?:ssl)?password=)([^&\s]*)", re.IGNORECASE)
_KEYWORD_SECRET = re.compile(r"((?<![?&\w])(?:ssl)?password\s*=\s*)('(?:\\.|[^'\\])*'?|\S+)", re.IGNORECASE)


def mask(text: str) -> str:
    """``text`` (a DSN, or a sentence quoting one) with every password replaced by ***."""
    text = _URL_AUTH.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _KEYWORD_SECRET.sub(lambda m: m.group(1) + MASK, text)


def _mask_pair(pair: str) -> str:
    key = pair.partition("=")[0]
    return f"{key}={MASK}" if key.lower() in SECRET_KEYS else pair


def secrets(text: str) -> list:
    """The passwords in a DSN, in every spelling a message could quote them."""
    found = []
    try:
        dsn = parse(text)
        values = [dsn.password, dsn.params.get("sslpassword", "")]
    except DsnError:
        values = []
    values += [m.group(3) for m in re.finditer(r"(://)([^@/]*?):([^@/]*)@", text)]
    values += [m.group(2) for m in _QUERY_SECRET.finditer(text)]
    for value in values:
        for spelling in (value, unquote(value), quote(value, safe="")):
            if spelling and spelling not in found:
                found.append(spelling)
    return sorted(found, key=len, reverse=True)


def hide(text: str, dsn: str) -> str:
    """A message from a driver with the DSN's passwords taken out, wherever they appear."""
    for secret in secrets(dsn):
        text = text.replace(secret, MASK)
    return mask(text)
