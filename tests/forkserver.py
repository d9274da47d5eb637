"""`mf` commands for the tests, each a process of its own, started without Python's start-up.

A test suite that runs `python -m mfcore.cli` a few thousand times spends most of its
time starting interpreters and importing mf, asyncpg, aiosqlite and Lark again. Here one
server process imports them once; each command is a child forked from it, which takes
the command's working directory, environment, standard input and output, runs
``mfcore.cli.main`` as ``python -m mfcore.cli`` does and exits the way that process would
(atexit handlers, interpreter shutdown, its exit code). The test process is never
forked: whatever a test changes in its own process (monkeypatch) does not reach `mf`.

A command whose environment differs from the server's in what mf or Python reads at
start-up (MF_PURE_PYTHON, the locale, PYTHON*) runs as ``python -m mfcore.cli``, as does every
command when MF_TEST_FRESH_PROCESS=1.
"""
from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import orjson

# What `mf` reads only when it starts: a command that sets one of these differently
# from the server cannot be one of its children.
_AT_START_UP = ("MF_PURE_PYTHON", "LANG", "LC_ALL", "LC_CTYPE")


def _read_request(connection: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError("the request ended early")
        data += chunk
    return orjson.loads(data)


def _run_child(connection: socket.socket, request: dict) -> None:
    """In the forked child: become the command's process, run it, and exit as it would."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.setpgid(0, 0)  # the test can end the command and whatever it started, as with a process group
    connection.sendall(f"{os.getpid()}\n".encode())
    connection.close()
    for fd, path, flags in ((0, request["stdin"], os.O_RDONLY), (1, request["stdout"], os.O_WRONLY),
                            (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()  # the C library reads TZ when a process starts: read it again
    from mfcore import cli

    # As `python -m mfcore.cli` starts: the module's path first in argv, the working
    # directory first on the import path (not this file's folder).
    sys.argv = [cli.__file__, *request["args"]]
    sys.path[0] = os.getcwd()

    sys.exit(cli.main(request["args"]))


def serve(path: str) -> None:
    """Listen at the Unix socket ``path``; fork a child per request; tell each requester
    its child's exit status when the child ends."""
    # What a command needs, imported here once rather than in every child.
    import aiosqlite  # noqa: F401
    import anyio  # noqa: F401
    import asyncpg  # noqa: F401

    from mfcore import api, applier, cli, differ, drivers, store  # noqa: F401
    from mfcore.dialects import postgresql, sqlite  # noqa: F401
    from mfcore.language import parser

    parser.parse("")  # builds the reader (the Lark grammar on the pure-Python path)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    # Standard input is a pipe from the test process: its end, even when that process
    # dies without closing the server, ends the server.
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    waiting = {}  # pidfd -> (pid, the requester's connection)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        for key, _events in selector.select():
            if key.fileobj == sys.stdin.fileno():
                return
            if key.fileobj is listener:
                connection, _ = listener.accept()
                request = _read_request(connection)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    for pidfd, (_pid, other) in waiting.items():
                        os.close(pidfd)
                        other.close()
                    _run_child(connection, request)
                pidfd = os.pidfd_open(pid)
                waiting[pidfd] = (pid, connection)
                selector.register(pidfd, selectors.EVENT_READ)
            else:
                pidfd = key.fileobj
                pid, connection = waiting.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                try:
                    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass  # the requester gave up (its timeout) and closed its end
                connection.close()


class ForkServer:
    """The server process, started on first use; ``run`` is subprocess.run's equivalent."""

    def __init__(self):
        self._process: Optional[subprocess.Popen] = None
        self._folder = tempfile.mkdtemp(prefix="mf-forkserver-")
        self._socket = os.path.join(self._folder, "socket")
        self._environment: dict = {}

    def _start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if os.path.exists(self._socket):
            os.unlink(self._socket)
        self._environment = dict(os.environ)
        self._process = subprocess.Popen([sys.executable, __file__, self._socket], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=self._environment)
        if self._process.stdout.readline() != b"ready\n":
            raise RuntimeError("the mf fork server did not start")

    def can_run(self, env: dict) -> bool:
        if os.environ.get("MF_TEST_FRESH_PROCESS", "") not in ("", "0"):
            return False
        server = self._environment if self._process is not None else os.environ
        return all(env.get(name) == server.get(name) for name in _AT_START_UP) and \
            all(env.get(name) == server.get(name) for name in set(env) | set(server) if name.startswith("PYTHON"))

    def run(self, args: list, cwd: str, env: dict, input: str, timeout: float) -> tuple[int, str, str]:
        self._start()
        with tempfile.TemporaryDirectory(dir=self._folder) as folder:
            stdin, stdout, stderr = (Path(folder, name) for name in ("stdin", "stdout", "stderr"))
            stdin.write_text(input, encoding="utf-8")
            stdout.touch()
            stderr.touch()
            request = {"args": list(args), "cwd": str(cwd), "env": env, "stdin": str(stdin),
                       "stdout": str(stdout), "stderr": str(stderr)}
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.settimeout(timeout)
                connection.connect(self._socket)
                connection.sendall(orjson.dumps(request) + b"\n")
                reader = connection.makefile("rb")
                pid = int(reader.readline())
                try:
                    line = reader.readline()
                except TimeoutError:
                    os.killpg(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(["mf", *args], timeout) from None
                if not line:
                    raise RuntimeError("the mf fork server went away during a command")
                code = int(line)
            return code, stdout.read_text(encoding="utf-8"), stderr.read_text(encoding="utf-8")

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait()
        self._process = None
        if os.path.exists(self._socket):
            os.unlink(self._socket)
        if not os.listdir(self._folder):
            os.rmdir(self._folder)


if __name__ == "__main__":
    serve(sys.argv[1])
