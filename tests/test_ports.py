"""The one port check (`runtime/ports.py`) answers the question the service's own bind will face.

The oracle is a real libzmq bind of an XPUB socket, as a publisher does it: the check says "free" exactly when that
bind succeeds, on real sockets in the states an `arbees down` leaves behind or another program creates.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

import psutil
import pytest
import zmq

from arbees_core.polling import eventually
from arbees_core.runtime.ports import PortCheckError, free_port, port_free, port_holder
from tests.conftest import listening_process


def _zmq_binds(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a publisher's bind (an XPUB, as `ZmqPublisher`) of `host:port` succeeds now."""
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.bind(f"tcp://{host}:{port}")
        return True
    except zmq.ZMQError as e:
        assert e.errno == errno.EADDRINUSE, e
        return False
    finally:
        sock.close(0)


def _time_wait_on(port: int) -> bool:
    return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_TIME_WAIT
               for c in psutil.net_connections("tcp"))


def _leave_closed_connection(reuse_address: bool) -> int:
    """A port whose only socket left is a closed connection in TIME-WAIT, as a publisher's port after `down`: the
    server end closes first (the stopped publisher), so the TIME-WAIT entry has this port as its local end. Its
    listener set SO_REUSEADDR as libzmq does, or not."""
    port = free_port()
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        srv.bind(("127.0.0.1", port))
        srv.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = srv.accept()
            conn.close()
            eventually(lambda: client.recv(1) == b"", 10, what="the server's FIN reached the client")
    eventually(lambda: _time_wait_on(port), 10, what=f"TIME-WAIT on port {port}")
    return port


def test_a_port_with_only_closed_connections_is_free_as_the_publisher_bind_finds_it() -> None:
    port = _leave_closed_connection(reuse_address=True)
    with socket.socket() as plain, pytest.raises(OSError) as refused:  # the probe of issue 24: no SO_REUSEADDR
        plain.bind(("127.0.0.1", port))
    assert refused.value.errno == errno.EADDRINUSE
    assert port_holder(port) is None and port_free(port)
    assert _zmq_binds(port)


def test_closed_connections_of_a_program_without_so_reuseaddr_still_hold_the_port() -> None:
    """The kernel lets such TIME-WAIT entries block even a SO_REUSEADDR bind: refused too, and said so."""
    port = _leave_closed_connection(reuse_address=False)
    holder = port_holder(port)
    assert not _zmq_binds(port)
    assert holder is not None and holder.pid is None and holder.state == psutil.CONN_TIME_WAIT
    assert "closed connections in TIME-WAIT of a program that bound without SO_REUSEADDR" in str(holder)


def test_a_listener_holds_the_port_and_is_named_with_pid_and_command() -> None:
    port = free_port()
    with listening_process(port) as listener:
        holder = port_holder(port)
        assert not _zmq_binds(port)
    assert holder is not None
    assert (holder.port, holder.pid, holder.state) == (port, listener.pid, psutil.CONN_LISTEN)
    assert holder.command.startswith(f"{sys.executable} -c import socket, sys, time s = socket.socket()")
    assert str(holder) == f"pid {listener.pid} ({holder.command})"
    assert port_free(port) and _zmq_binds(port)  # the listener is gone: nothing is left on the port


@pytest.mark.parametrize(("listen_on", "check_on"), [("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "*")])
def test_a_listener_on_an_overlapping_address_holds_the_port(listen_on: str, check_on: str) -> None:
    port = free_port()
    with listening_process(port, listen_on) as listener:
        holder = port_holder(port, check_on)
        assert holder is not None and holder.pid == listener.pid
        assert not _zmq_binds(port, check_on)


def test_a_connection_whose_local_end_is_the_port_holds_it() -> None:
    """An outgoing connection given the port as its local end (what free_port_block keeps test stacks away from)
    makes the publisher's bind fail too; the check says so and names the connection's owner."""
    port, server_port = free_port(), free_port()
    with socket.socket() as srv, socket.socket() as client:
        srv.bind(("127.0.0.1", server_port))
        srv.listen()
        client.bind(("127.0.0.1", port))
        client.connect(("127.0.0.1", server_port))
        holder = port_holder(port)
        assert not _zmq_binds(port)
    assert holder is not None and holder.pid == os.getpid() and holder.state == psutil.CONN_ESTABLISHED
    assert f"pid {os.getpid()} (" in str(holder) and "ESTABLISHED connection whose local port is" in str(holder)


def test_an_address_that_is_not_ours_cannot_be_checked_and_is_not_free() -> None:
    port = free_port()
    with pytest.raises(PortCheckError, match=f"cannot bind 192.0.2.1:{port}"):
        port_holder(port, "192.0.2.1")  # TEST-NET-1: no interface of this machine has it
    assert not port_free(port, "192.0.2.1")


def test_compose_up_refuses_a_fixed_host_port_another_program_holds(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compose runtime asks the same check before `docker compose up`, for the Redis / PostgreSQL host ports an
    operator fixed (unset, Docker picks a free one); a port its own running container holds is no clash."""
    from arbees_core.runtime.compose_cli import host_port_clash

    for var in ("ARBEES_REDIS_HOST_PORT", "ARBEES_POSTGRES_HOST_PORT"):
        monkeypatch.delenv(var, raising=False)
    port = free_port()
    (tmp_path / ".env").write_text(f"ARBEES_REDIS_HOST_PORT={port}\n")
    with listening_process(port) as holder:
        clash = host_port_clash(tmp_path, running=set())
        assert host_port_clash(tmp_path, running={"redis"}) == ""
    assert clash.startswith(f"host port {port} of redis (ARBEES_REDIS_HOST_PORT) is already in use by pid "
                            f"{holder.pid} ({sys.executable} -c import socket"), clash
    assert clash.endswith("; stop it, or set ARBEES_REDIS_HOST_PORT to another port (unset: any free port)")
    assert host_port_clash(tmp_path, running=set()) == ""
