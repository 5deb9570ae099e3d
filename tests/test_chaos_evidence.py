"""What a failed chaos check tells the operator: the evidence names what the service did say, not only what it
did not."""

from __future__ import annotations

from arbees_core.validation.chaos.probe import port_lines, reconnected

LOG = """2026-12-05T12:48:01.900Z WARNING arbees.transport.zmq: ZMQ subscriber lost connection to tcp://172.24.0.10:5558; reconnecting
2026-12-05T12:48:02.000Z INFO execution_service: End-to-end latency: 0.9ms
2026-12-05T12:48:02.100Z INFO arbees.transport.zmq: ZMQ subscriber connected to tcp://kalshi_monitor:5555
2026-12-05T12:48:02.200Z INFO arbees.transport.zmq: ZMQ subscriber connecting to tcp://game_shard_2:55580 (a new publisher)
"""


class _Log:
    """The part of a StackProbe these helpers read: a service's log since a moment."""

    def __init__(self, text: str) -> None:
        self.text = text

    def logs_since(self, service: str, t0_wall: float) -> str:
        return self.text


def test_a_missing_reconnect_is_reported_with_what_the_subscriber_said_about_the_port() -> None:
    probe = _Log(LOG)
    assert not reconnected(probe, "execution_service", 5558, 0.0)  # lost, never connected again
    lines = port_lines(probe, "execution_service", 5558, 0.0)
    assert len(lines) == 1 and "lost connection to tcp://172.24.0.10:5558" in lines[0]  # not :55580, not :5555


def test_a_reconnect_to_the_resolved_address_counts() -> None:
    probe = _Log(LOG + "2026-12-05T12:48:03.000Z INFO arbees.transport.zmq: ZMQ subscriber connected to "
                 "tcp://172.24.0.10:5558\n")
    assert reconnected(probe, "execution_service", 5558, 0.0)
    assert port_lines(probe, "execution_service", 5558, 0.0, keep=1)[0].endswith("tcp://172.24.0.10:5558")
