"""Is a TCP port free, and who holds it: the one check behind every "port in use" decision of arbees.

The question is the one the real bind will face. libzmq binds a TCP endpoint with SO_REUSEADDR and then listens
(so do redis-server and Docker's port proxy). Under SO_REUSEADDR a port whose only sockets are the closed
connections of an earlier publisher (TIME-WAIT, or FIN-WAIT after its process exited; they inherit its
SO_REUSEADDR) binds at once, while a listener, or a socket opened without SO_REUSEADDR, makes the bind fail with
EADDRINUSE. The probe here binds and listens the same way, so it answers "free" exactly when the service's bind
would succeed. A probe without SO_REUSEADDR refused the
port for about a minute after every `arbees down` (the kernel's TIME-WAIT) and blamed a process that did not exist.

When the port is held, the holder is named as far as the OS tells (pid and command line, from the kernel's socket
table and each process's open files through psutil; a process of another user shows without a pid unless we run
as root).
"""

from __future__ import annotations

import errno
import random
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

#: Below this are well-known service ports (PostgreSQL 5432, the plan's 5555-5560, ...); test and benchmark
#: stacks take their ports from here up to the kernel's ephemeral range.
_LISTEN_PORTS_FROM = 20000
#: How much of a command line an error message shows (characters).
_COMMAND_CHARS = 120


class PortCheckError(OSError):
    """No usable port: the probe could not bind for a reason other than "in use" (an address of another machine,
    a privileged port: the service's own bind would fail the same way, though nobody holds the port), or no free
    block of ports was found."""


@dataclass(frozen=True)
class PortHolder:
    """Who holds a port. pid/command are None/"" when the OS does not tell (another user's process, a socket bound
    without listening, which the kernel's socket table does not list, or closed connections). state: psutil's TCP
    state of the holding socket (LISTEN for a server; e.g. ESTABLISHED for a connection whose local end is this
    port; TIME_WAIT when only closed connections of a program that did not set SO_REUSEADDR are left)."""

    port: int
    pid: int | None = None
    command: str = ""
    state: str = ""

    def __str__(self) -> str:
        if self.state == psutil.CONN_TIME_WAIT:
            return ("closed connections in TIME-WAIT of a program that bound without SO_REUSEADDR (the kernel "
                    "clears them within a minute)")
        who = (f"pid {self.pid} ({self.command})" if self.pid and self.command else
               f"pid {self.pid}" if self.pid else "a process the OS does not name (`ss -ltnp` as root may)")
        if self.state and self.state != psutil.CONN_LISTEN:
            who += f", through a {self.state} connection whose local port is {self.port}"
        return who


def _bind_host(host: str) -> str:
    """ZMQ_BIND_HOST spelling -> an address to bind: libzmq's `*` (and an empty host) is every interface."""
    return "0.0.0.0" if host in ("", "*") else host


def bind_refused(port: int, host: str = "127.0.0.1") -> bool:
    """Whether binding `host:port` the way libzmq does (SO_REUSEADDR, then listen) fails with EADDRINUSE.

    Raises PortCheckError for any other failure (an address of another machine, a privileged port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((_bind_host(host), port))
            s.listen(1)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise PortCheckError(e.errno, f"cannot bind {host}:{port}: {e.strerror or e}") from e
    return False


def port_holder(port: int, host: str = "127.0.0.1") -> PortHolder | None:
    """None when `host:port` is free for a publisher's bind (see the module docstring); else who holds it."""
    if not bind_refused(port, host):
        return None
    return find_holder(port)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a bind of `host:port` as libzmq does it would succeed now (False too when it cannot bind at all)."""
    try:
        return not bind_refused(port, host)
    except PortCheckError:
        return False


def find_holder(port: int) -> PortHolder:
    """The process whose socket holds local TCP `port`: a listener first, then any other live socket, and only
    then TIME-WAIT entries (they belong to no process, and block a bind only when opened without SO_REUSEADDR)."""
    try:
        conns = [c for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port]
    except psutil.Error:
        return PortHolder(port)
    conns.sort(key=lambda c: (c.status == psutil.CONN_TIME_WAIT, c.status != psutil.CONN_LISTEN, c.pid is None))
    if not conns:
        return PortHolder(port)
    pid = conns[0].pid
    return PortHolder(port, pid, _command(pid) if pid else "", conns[0].status)


def _command(pid: int) -> str:
    """The command line of `pid` (its name when the command line cannot be read), shortened for one line."""
    try:
        proc = psutil.Process(pid)
        text = " ".join(" ".join(proc.cmdline()).split()) or proc.name()  # one line, even for `python -c "..."`
    except psutil.Error:
        return ""
    return text if len(text) <= _COMMAND_CHARS else text[:_COMMAND_CHARS - 1] + "…"


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default 32768-60999)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(n: int = 1) -> int:
    """The first of `n` consecutive TCP ports on 127.0.0.1 that are free now (`port_free`).

    Chosen below the kernel's ephemeral range on purpose: a port the OS hands out with `bind(0)` lies inside that
    range, and between choosing it and a service binding it, any outgoing connection (a service's own Redis or
    PostgreSQL client) may be given the same port as its local end, and the bind then fails with "Address already
    in use". Ports outside the range are only ever taken by someone binding them explicitly.
    """
    low, _high = _ephemeral_range()
    top = max(low, _LISTEN_PORTS_FROM + 1000) - n
    rng = random.SystemRandom()
    for _ in range(200):
        base = rng.randrange(_LISTEN_PORTS_FROM, top)
        if all(port_free(base + i) for i in range(n)):
            return base
    raise PortCheckError(errno.EADDRINUSE,
                         f"no block of {n} free TCP ports between {_LISTEN_PORTS_FROM} and {top + n}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, outside the ephemeral range (see `free_port_block`)."""
    return free_port_block(1)
