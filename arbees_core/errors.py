"""The one base of the errors an operator sees: `ArbeesError`.

Every failure a command can report without a bug behind it (a bad setting, a playbook that cannot be used, a stack
or engine that is not there) derives from it. The CLI maps it once (`arbees_cli/main.py`): one red line with the
message, which already says what to do, and the error's `exit_code` (3, "could not run", unless the kind says
otherwise). Anything else is a bug or an unexpected environment problem: one line with its type, also exit 3, and
the traceback only with `--debug`.
"""

from __future__ import annotations


class ArbeesError(Exception):
    """An operator-facing failure whose message says what is wrong and what to do."""

    exit_code: int = 3
