"""Turning a task source file into a bundle the worker can run.

`capsule build FILE --reuse --sign KEY` builds once per content (the same cache `capsule run`
uses, one entry per signer) and afterwards only prints the cached path. The key is this user's
local SDK key, made once with `capsule keygen`; the worker trusts it, so sources you run are
trusted the way `capsule run` trusts them, without allowing other unsigned bundles.
"""

from __future__ import annotations

import asyncio
import os
import platform
from pathlib import Path
from typing import Dict, Mapping, Optional

from ._errors import CapsuleError

__all__ = ["BuildError", "Builder", "SOURCE_SUFFIXES", "is_source"]

# The task files `capsule build` accepts.
SOURCE_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts")


class BuildError(CapsuleError):
    """A task source failed to build (a syntax error, a bad option, an import that fails);
    nothing ran. The message is the compiler's."""


def is_source(path: Path) -> bool:
    """Whether `path` names a task source rather than a bundle."""
    return path.suffix in SOURCE_SUFFIXES


def cache_dir(env: Optional[Mapping[str, str]] = None) -> Path:
    """Capsule's cache directory, as the binary computes it."""
    source: Mapping[str, str] = os.environ if env is None else env
    if source.get("CAPSULE_CACHE_DIR"):
        return Path(source["CAPSULE_CACHE_DIR"])
    base = source.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capsule"


class Builder:
    """Builds sources with the `capsule` binary; concurrent builds of one file share one run."""

    def __init__(self, binary: str, env: Optional[Dict[str, str]] = None) -> None:
        self.binary = binary
        self.env = env
        self.key = cache_dir(env) / "sdk" / "local.key"
        self._key_lock = asyncio.Lock()
        self._building: Dict[Path, "asyncio.Future[Path]"] = {}

    @property
    def public_key(self) -> Path:
        """The public half of the local SDK key (what the worker is told to trust)."""
        return self.key.with_name(self.key.name + ".pub")

    async def ensure_key(self) -> Path:
        """Creates the local SDK key on first use; returns its public key file."""
        async with self._key_lock:
            if not self.public_key.is_file():
                self.key.parent.mkdir(parents=True, exist_ok=True)
                # Another process may create it at the same moment: keygen into a private
                # name, then rename both halves into place.
                staging = self.key.with_name(f"local.{os.getpid()}.key")
                await self._capsule("keygen", "-o", str(staging))
                os.replace(staging, self.key)
                os.replace(staging.with_name(staging.name + ".pub"), self.public_key)
        return self.public_key

    async def bundle(self, source: Path) -> Path:
        """The bundle for `source` (absolute), built or taken from the cache."""
        running = self._building.get(source)
        if running is None:
            running = asyncio.ensure_future(self._build(source))
            self._building[source] = running
            running.add_done_callback(lambda _: self._building.pop(source, None))
        return await asyncio.shield(running)

    async def _build(self, source: Path) -> Path:
        await self.ensure_key()
        out = await self._capsule(
            "build", str(source), "--reuse", "--sign", str(self.key), "--target", _host_target(),
            cwd=str(source.parent),
        )
        lines = out.strip().splitlines()
        if not lines:
            raise BuildError(f"`capsule build {source}` printed no bundle path")
        return Path(lines[-1])

    async def _capsule(self, *args: str, cwd: Optional[str] = None) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary, *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=self.env,
            )
        except OSError as error:
            raise CapsuleError(f"cannot start `{self.binary}`: {error}") from error
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            message = stderr.decode("utf-8", "replace").strip()
            raise BuildError(message or f"`capsule {args[0]}` failed with exit status {process.returncode}")
        return stdout.decode("utf-8", "replace")


def _host_target() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
