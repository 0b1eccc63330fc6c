"""Secrets never sit in the config file: `<name>_env` names an environment variable, `<name>_file` a file.

`Secret` keeps the value out of every repr, str and error message; `read_secret` resolves the two keys
of one table and refuses a literal `<name>`. A variable that is not set, or a file that cannot be read,
is a problem of the machine rather than the file (`Problems.add_environment`): `run` refuses it,
`check-config` warns (unless `--strict`), so a config repository can be checked where the secrets are not.
"""

from __future__ import annotations

import os
from pathlib import Path

from stationmon.config.reader import Table

__all__ = ["Secret", "read_secret"]


class Secret:
    """A secret string whose repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret itself; pass it straight to the client that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def read_secret(t: Table, name: str) -> Secret | None:
    """Resolve `<name>_env` / `<name>_file` of table `t`; a literal `<name>` is refused."""
    t.known.update({name, f"{name}_env", f"{name}_file"})
    if name in t.data:
        t.add(
            name,
            f"secrets do not belong in the config file; use {name}_env (an environment variable) "
            f"or {name}_file (a file holding it)",
        )
    env = t.text(f"{name}_env", "")
    path = t.text(f"{name}_file", "")
    if env and path:
        t.add(f"{name}_env", f"give either {name}_env or {name}_file, not both")
        return None
    if env:
        value = os.environ.get(env)
        if not value:
            t.problems.add_environment(t.key(f"{name}_env"), f"environment variable {env} is not set")
            return None
        return Secret(value)
    if path:
        try:
            return Secret(Path(path).expanduser().read_text(encoding="utf-8").strip())
        except OSError as exc:
            t.problems.add_environment(t.key(f"{name}_file"), f"cannot read {path}: {exc.strerror or exc}")
    return None
