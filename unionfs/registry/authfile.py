"""Where registry credentials live, as podman keeps them, and ``login``/``logout`` writing
them (``{"auths": {"host[/repo]": {"auth": base64("user:password")}}}``, 0600, replaced
whole). Written to ``--authfile``, ``$REGISTRY_AUTH_FILE`` or
``$XDG_RUNTIME_DIR/containers/auth.json``; read from those, then podman's, docker's and
unionfs's files in the home directory (``read_paths``).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path

from unionfs.errors import UserError


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def write_path(authfile: str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Where ``login`` writes: podman's place for this user."""
    env = os.environ if env is None else env
    if authfile:
        return Path(authfile)
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"])
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.getuid()}/auth.json")


def read_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where credentials are looked for, first found wins (after ``--authfile`` and the
    environment's user and password)."""
    env = os.environ if env is None else env
    config = Path(env.get("XDG_CONFIG_HOME") or _home(env) / ".config")
    found = [write_path(None, env), config / "containers" / "auth.json",
             _home(env) / ".docker" / "config.json", config / "unionfs" / "auth.json"]  # fmt: skip
    return list(dict.fromkeys(found))


def key_for(server: str) -> str:
    """The auths key for what the user typed: ``https://`` and a trailing ``/`` dropped;
    Docker Hub's other spellings as docker.io."""
    key = server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not key or any(c.isspace() for c in key):
        raise UserError(f"invalid registry {server!r}", exit_code=2)
    if key in ("index.docker.io", "registry-1.docker.io", "index.docker.io/v1"):
        return "docker.io"
    return key


def _load(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserError(f"cannot read auth file {path}: {exc.strerror}") from None
    except ValueError:
        raise UserError(f"auth file {path} is not valid JSON: fix or remove it") from None
    if not isinstance(data, dict):
        raise UserError(f"auth file {path} is not a JSON object: fix or remove it")
    return data


def _save(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write auth file {path}: {exc.strerror}") from None


def store(path: Path, server: str, username: str, password: str) -> None:
    """Record *username* and *password* for *server* in *path* (other entries kept)."""
    data = _load(path)
    auths = data.get("auths")
    auths = auths if isinstance(auths, dict) else {}
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    auths[key_for(server)] = {"auth": token}
    data["auths"] = auths
    _save(path, data)


def remove(path: Path, server: str | None) -> bool:
    """Forget *server*'s entry (every entry when None); False when there was none."""
    data = _load(path)
    auths = data.get("auths")
    if not isinstance(auths, dict) or not auths:
        return False
    if server is None:
        data["auths"] = {}
    elif key_for(server) in auths:
        del auths[key_for(server)]
    else:
        return False
    _save(path, data)
    return True


def username(path: Path, server: str) -> str | None:
    """The user recorded for *server* in *path*, or None."""
    auths = _load(path).get("auths")
    entry = auths.get(key_for(server)) if isinstance(auths, dict) else None
    token = entry.get("auth") if isinstance(entry, dict) else None
    if not isinstance(token, str):
        return None
    try:
        return base64.b64decode(token).decode().partition(":")[0]
    except ValueError:
        return None
