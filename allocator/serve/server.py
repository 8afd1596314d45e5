"""Starting the room: load and solve the base, bind the socket, run uvicorn.

The socket is bound here, before uvicorn starts, so a port in use is a clear error (exit 2)
and port 0 gives a free port whose number is known before the URL is printed.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from allocator.errors import InputError
from allocator.serve.app import make_app
from allocator.serve.engine import open_engine
from allocator.serve.room import Room


def open_room(source: Path, workdir: Path, queue_seconds: float = 30.0) -> Room:
    engine, base = open_engine(source, workdir)
    return Room(engine, base, source, queue_seconds)


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = {errno.EADDRINUSE: "the port is in use (another server?): pick another "
                                    "with --port, or --port 0 for any free one",
                  errno.EADDRNOTAVAIL: "this machine has no such address",
                  errno.EACCES: "ports below 1024 need root: pick another with --port"}
        raise InputError(reason.get(exc.errno or 0, str(exc)), f"{host}:{port}") from None
    except socket.gaierror as exc:
        raise InputError(f"not a host name or address: {exc}", host) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


@dataclass
class Served:
    url: str
    token: str
    room: Room
    server: uvicorn.Server
    thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.url.split("/?", 1)[0]


def _server(room: Room, token: str) -> uvicorn.Server:
    config = uvicorn.Config(make_app(room, token), log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


def serve(source: Path, host: str = "127.0.0.1", port: int = 8750, token: str | None = None,
          say: Callable[[str], None] = print) -> None:
    """Run the room until interrupted (Ctrl-C): the CLI's `allocator serve`."""
    token = token or secrets.token_urlsafe(24)
    sock = bind(host, port)  # before the solve: a busy port fails at once
    try:
        with tempfile.TemporaryDirectory(prefix="allocator-serve-") as tmp:
            say(f"loading and solving {source} ...")
            room = open_room(source, Path(tmp))
            kpis = room.base.kpis()
            if kpis.get("cost") is None:  # infeasible: no plan, no figures to say
                say(f"base: {room.base.status} (no plan: relax a budget, capacity or "
                    "floor in the room and solve)")
            else:
                say(f"base: {room.base.status}, weighted shortfall "
                    f"{kpis['weighted_shortfall']:,.6g}, cost {kpis['cost']:,.2f}")
            if not is_local(host):
                say(f"warning: listening on {host}, reachable from other machines; anyone "
                    "with the token can solve (plain HTTP: use it on a trusted network)")
            say(f"open: {url_of(host, sock.getsockname()[1], token)}")
            say("Ctrl-C stops the server")
            _server(room, token).run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def served(source: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
           queue_seconds: float = 30.0) -> Iterator[Served]:
    """The room on a free port in a background thread (tests, benchmarks, notebooks),
    stopped cleanly on leaving the block."""
    token = token or secrets.token_urlsafe(24)
    sock = bind(host, port)
    with tempfile.TemporaryDirectory(prefix="allocator-serve-") as tmp:
        try:
            room = open_room(source, Path(tmp), queue_seconds)
            server = _server(room, token)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                      name="allocator-serve", daemon=True)
            thread.start()
            while not server.started and thread.is_alive():
                thread.join(0.02)
            if not server.started:
                raise RuntimeError("the server did not start")
            done = Served(url_of(host, sock.getsockname()[1], token), token, room, server,
                          thread)
            try:
                yield done
            finally:
                server.should_exit = True
                thread.join(10)
        finally:
            sock.close()
