"""Request fields shared by stateless cells and sessions: limits and grants."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ._duration import Duration, to_text

__all__ = ["limits", "split_list"]


def split_list(value: Optional[Union[str, Sequence[str]]]) -> List[str]:
    """A list of strings from `None`, a string, or a sequence of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def limits(message: Dict[str, Any], *, timeout: Optional[Duration], ram: Optional[str],
            compute: Optional[Union[str, int]], allow_hosts: Optional[Sequence[str]],
            env: Optional[Mapping[str, str]]) -> None:
    """Adds the given limits (`timeout`, `ram`, `compute`) and grants (`allow_hosts`, `env`)
    to `message`, in the worker's forms; a bad value raises `ValueError` or `TypeError`."""
    if timeout is not None:
        message["timeout"] = to_text(timeout)
    if ram is not None:
        message["ram"] = str(ram)
    if compute is not None:
        message["compute"] = str(compute)
    if allow_hosts is not None:
        message["allow_hosts"] = split_list(allow_hosts)
    if env is not None:
        if not isinstance(env, Mapping):
            raise TypeError(f"`env` must be a dict of strings, got {type(env).__name__}")
        message["env"] = {str(k): str(v) for k, v in env.items()}
