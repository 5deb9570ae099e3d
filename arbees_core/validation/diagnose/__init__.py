"""`arbees diagnose <target>`: the plan's "Troubleshooting Common Issues" debug steps, run as code.

Targets follow the plan's issues: `zmq-listener` (Issue 1: zmq_listener not receiving), `game-shard` (Issue 2:
game_shard not receiving prices, plus why it publishes no signals), `execution-service` (Issue 3: execution_service
not receiving signals), `latency` (Issue 4: high latency). `_` is accepted for `-`.

Which probes a target runs, their names and the plan's fix for each live in `playbooks/diagnose/<target>.yaml`;
this module implements every probe id. A probe reads the stack only through the runtime (status, logs, the running
process's real environment, metrics snapshots, resources) plus a TCP connect, the plan's `nc -zv`. Each probe
becomes one `Check`; each fault it finds becomes a finding `{"probe", "fault", "fix"}` in `result.data["findings"]`,
worded with the real values ("game_shard ZMQ_SUB_ENDPOINTS has tcp://127.0.0.1:5557 but kalshi_monitor binds 5555").

Log lines are only counted from the service's current instance (a restarted service's log file still holds the
previous instance's lines), and within `since_s`. A probe that needs a service which is not running says so and is
skipped (advisory): `services_running` names the stopped service once, as the fault.
"""

from arbees_core.validation.diagnose.context import TARGETS
from arbees_core.validation.diagnose.playbooks import PlaybookError, load_all_playbooks, load_playbook, normalize_target
from arbees_core.validation.diagnose.probes import PROBES
from arbees_core.validation.diagnose.run import diagnose

__all__ = ["PROBES", "TARGETS", "PlaybookError", "diagnose", "load_all_playbooks", "load_playbook",
           "normalize_target"]
