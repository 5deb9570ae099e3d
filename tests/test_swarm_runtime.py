"""`--runtime swarm[:<stack>]`: the swarm runtime reads a deployed stack and leaves deploying to `docker stack`
(its reads and the chaos scenario on a real swarm: tests/test_swarm.py)."""

from __future__ import annotations

import pytest

from arbees_core.runtime.base import RuntimeError_
from arbees_core.runtime.faults import ComposeFaults, faults_for
from arbees_core.runtime.select import select_runtime


def test_swarm_runtime_is_selected_by_name_and_stack_and_uses_the_engines_faults() -> None:
    rt = select_runtime("swarm:arbeeswarm")
    assert rt.kind == "swarm" and rt.stack == "arbeeswarm"  # type: ignore[attr-defined]
    assert select_runtime("swarm").stack == "arbees"  # type: ignore[attr-defined]
    assert isinstance(faults_for(rt), ComposeFaults)
    with pytest.raises(RuntimeError_, match="docker stack deploy"):
        rt.up()
    with pytest.raises(RuntimeError_, match="docker service scale"):
        rt.restart(["game_shard"])
