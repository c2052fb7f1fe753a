"""Registry credentials, ``WWW-Authenticate`` challenges and bearer tokens. Secrets are
never shown: not in a repr, not in a message.

Where credentials come from, first found wins: an explicit ``--authfile``; the environment
(``UNIONFS_REGISTRY_USERNAME`` + ``UNIONFS_REGISTRY_PASSWORD``); then the auth files
``authfile.read_paths`` lists (podman's places, docker's, ours of before). Auth files have
podman's format: ``{"auths": {"host[:port][/repo]": {"auth": base64("user:password")}}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from unionfs.errors import UserError
from unionfs.registry.authfile import read_paths as authfile_paths

ENV_USER = "UNIONFS_REGISTRY_USERNAME"
ENV_PASSWORD = "UNIONFS_REGISTRY_PASSWORD"


class RegistryError(UserError):
    """The registry refused or failed a request (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _host_keys(registry: str, repository: str) -> list[str]:
    """auth.json keys to try, most specific first (podman also accepts ``host/repo``)."""
    keys = []
    parts = repository.split("/")
    for n in range(len(parts), 0, -1):
        keys.append(f"{registry}/{'/'.join(parts[:n])}")
    keys += [registry, f"https://{registry}", f"http://{registry}"]
    if registry == "docker.io":
        keys += ["index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"]
    return keys


def _from_file(path: Path, registry: str, repository: str) -> Credentials | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except PermissionError:
        if not os.access(path.parent, os.X_OK):
            return None  # a place this user cannot enter (root's /run/containers) holds none
        raise UserError(f"cannot read auth file {path}: permission denied") from None
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise UserError(f"cannot read auth file {path}: {why}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise UserError(f'auth file {path} has no "auths" object')
    for key in _host_keys(registry, repository):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        token = entry.get("auth")
        if isinstance(token, str) and token:
            try:
                user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                sep = ""
            if not sep:
                raise UserError(
                    f"auth file {path}: the entry for {key} is not base64(user:password)"
                )
            return Credentials(user, password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
    return None


def find_credentials(
    registry: str, repository: str, authfile: str | None = None
) -> Credentials | None:
    """Credentials for *registry* (host[:port]) and *repository*, or None."""
    if authfile is not None:
        path = Path(authfile)
        if not path.exists():
            raise UserError(f"auth file {authfile} does not exist")
        return _from_file(path, registry, repository)
    user, password = os.environ.get(ENV_USER), os.environ.get(ENV_PASSWORD)
    if user and password is not None:
        return Credentials(user, password)
    for path in authfile_paths():
        found = _from_file(path, registry, repository)
        if found is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lowercase
    params: dict[str, str]


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """``Bearer realm="...",service="...",scope="..."`` -> Challenge; None if unreadable."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = m.end()
    return Challenge(scheme.lower(), params)


def fetch_token(
    http: httpx.Client,
    registry: str,
    challenge: Challenge,
    scopes: tuple[str, ...],
    credentials: Credentials | None,
) -> str:
    """A bearer token for *scopes* (and the one the challenge names) from the challenge's
    realm, asked with the Basic credentials when there are any (anonymously otherwise)."""
    realm = challenge.params.get("realm")
    if not realm:
        raise RegistryError(f"registry {registry} asked for a token but named no realm")
    wanted = list(scopes)
    if challenge.params.get("scope") and challenge.params["scope"] not in wanted:
        wanted.append(challenge.params["scope"])
    params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in wanted]
    if challenge.params.get("service"):
        params.insert(0, ("service", challenge.params["service"]))
    headers = {}
    if credentials is not None:
        headers["Authorization"] = credentials.basic_header()
    try:
        resp = http.get(realm, params=params, headers=headers)
    except httpx.TransportError as exc:
        raise RegistryError(f"cannot reach the token server of {registry}: {exc}") from None
    if resp.status_code in (401, 403):
        if credentials is not None:
            why = f"authentication to {registry} failed: the token server refused the credentials"
        else:
            why = f"registry {registry} needs credentials (none found; see --authfile)"
        raise RegistryError(why, resp.status_code)
    if resp.status_code != 200:
        raise RegistryError(
            f"token server of {registry} answered {resp.status_code}", resp.status_code
        )
    try:
        body = resp.json()
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"token server of {registry} sent no token")
    return token
