"""Which runtime a CLI command talks to: `--runtime local|compose|swarm[:<stack>]|auto`.

auto = compose when a Docker engine answers and this checkout's compose project has containers (created from
this directory), local otherwise; so an operator with the compose stack up and one with the embedded stack type
the same commands, and a local project is never taken for another checkout's containers on the same engine.
swarm (never chosen by auto) reads a `docker stack deploy` of docker-stack.yml on this node: stack `arbees`, or
`swarm:<stack>` for another name (`runtime/swarm.py`).
"""

from __future__ import annotations

from pathlib import Path

from arbees_core.runtime.base import Runtime, RuntimeError_

RUNTIMES = ("auto", "local", "compose", "swarm")


def select_runtime(kind: str = "auto", root: Path | None = None) -> Runtime:
    """The runtime named by `kind`; `auto` prefers a running compose project, then the local runtime."""
    from arbees_core.runtime.local import LocalRuntime

    if kind == "swarm" or kind.startswith("swarm:"):
        return _swarm(kind.partition(":")[2], root)
    if kind not in RUNTIMES:
        raise RuntimeError_(f"unknown runtime {kind!r}: expected one of {', '.join(RUNTIMES)}")
    if kind == "local":
        return LocalRuntime(root)
    try:
        from arbees_core.runtime.compose import ComposeRuntime, engine_available
    except ImportError as e:
        if kind == "compose":
            raise RuntimeError_(f"the compose runtime needs the 'docker' package: pip install docker ({e})") from e
        return LocalRuntime(root)
    if kind == "compose":
        return ComposeRuntime(root) if root else ComposeRuntime()
    if not engine_available():
        return LocalRuntime(root)
    compose = ComposeRuntime(root) if root else ComposeRuntime()
    return compose if compose.is_ours() else LocalRuntime(root)


def _swarm(stack: str, root: Path | None) -> Runtime:
    try:
        from arbees_core.runtime.swarm import DEFAULT_STACK, SwarmRuntime
    except ImportError as e:
        raise RuntimeError_(f"the swarm runtime needs the 'docker' package: pip install docker ({e})") from e
    return SwarmRuntime(root, stack=stack or DEFAULT_STACK)
