"""registries.conf as podman reads it (``paths``: the environment's or the user's file, else
the system's, then the drop-ins in name order): search registries, aliases, short-name
mode, insecure and blocked registries, in the v1 or v2 format; ``candidates`` resolves a
short name as podman does (no prompt: enforcing mode with several registries refuses).
Mirrors are not used; a file that cannot be read or parsed is a one-line UserError.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field

from unionfs.errors import UserError
from unionfs.registry.reference import Reference, has_registry, parse_reference

SYSTEM = "/etc/containers/registries.conf"
SYSTEM_DIR = "/etc/containers/registries.conf.d"
USER = "containers/registries.conf"  # below $XDG_CONFIG_HOME or ~/.config
ENV = "CONTAINERS_REGISTRIES_CONF"


@dataclass(frozen=True, slots=True)
class Entry:
    prefix: str  # host[/path], or *.domain
    location: str
    insecure: bool = False
    blocked: bool = False

    def matches(self, name: str) -> bool:
        """Whether ``registry/repository`` *name* falls under this entry's prefix."""
        if self.prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return host.endswith(self.prefix[1:])
        return name == self.prefix or name.startswith(self.prefix.rstrip("/") + "/")


@dataclass(slots=True)
class Config:
    search: list[str] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)  # prefix -> entry
    aliases: dict[str, str] = field(default_factory=dict)
    short_name_mode: str = "enforcing"
    files: list[str] = field(default_factory=list)

    def entry(self, ref: Reference) -> Entry | None:
        """The entry with the longest prefix that *ref* falls under, as containers/image."""
        found = [e for e in self.entries.values() if e.matches(ref.name)]
        return max(found, key=lambda e: len(e.prefix), default=None)

    def insecure(self, ref: Reference) -> bool:
        entry = self.entry(ref)
        return entry is not None and entry.insecure

    def check_allowed(self, ref: Reference) -> None:
        entry = self.entry(ref)
        if entry is not None and entry.blocked:
            raise UserError(f"registry {ref.registry} is blocked in registries.conf "
                            f"({', '.join(self.files)})")  # fmt: skip

    def where(self) -> str:
        return ", ".join(self.files) or SYSTEM


def paths(env: Mapping[str, str] | None = None) -> list[str]:
    """The files to read, in order (existing ones only)."""
    env = os.environ if env is None else env
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"
    )
    user_file = os.path.join(config_home, USER)
    user_dir = user_file + ".d"
    if env.get(ENV):
        main, dirs = env[ENV], [SYSTEM_DIR, user_dir]
    elif os.path.exists(user_file):
        main, dirs = user_file, [user_dir]
    else:
        main, dirs = SYSTEM, [SYSTEM_DIR, user_dir]
    found = [main] if os.path.exists(main) else []
    for d in dirs:
        found += sorted(glob.glob(os.path.join(glob.escape(d), "*.conf")))
    return found


def load(env: Mapping[str, str] | None = None) -> Config:
    config = Config()
    for path in paths(env):
        _merge(config, path, _read(path))
        config.files.append(path)
    return config


def _read(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}") from None


def _strings(value: object, path: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{path}: {key} must be a list of strings")
    return list(value)


def _merge(config: Config, path: str, data: dict[str, object]) -> None:
    v1 = data.get("registries")
    if isinstance(v1, dict):
        if "unqualified-search-registries" in data or "registry" in data:
            raise UserError(f"{path} mixes the v1 [registries.*] tables with v2 keys")
        for kind in ("search", "insecure", "block"):
            table = v1.get(kind)
            if isinstance(table, dict) and "registries" in table:
                hosts = _strings(table["registries"], path, f"registries.{kind}")
                if kind == "search":
                    config.search = hosts
                for host in hosts if kind != "search" else ():
                    old = config.entries.get(host, Entry(host, host))
                    config.entries[host] = Entry(host, old.location,
                                                 old.insecure or kind == "insecure",
                                                 old.blocked or kind == "block")  # fmt: skip
        return
    if "unqualified-search-registries" in data:
        config.search = _strings(data["unqualified-search-registries"], path,
                                 "unqualified-search-registries")  # fmt: skip
    mode = data.get("short-name-mode")
    if mode is not None:
        if mode not in ("enforcing", "permissive", "disabled"):
            raise UserError(f"{path}: short-name-mode must be enforcing, permissive or disabled")
        config.short_name_mode = str(mode)
    tables = data.get("registry")
    for table in tables if isinstance(tables, list) else []:
        if not isinstance(table, dict):
            continue
        location = str(table.get("location", ""))
        prefix = str(table.get("prefix") or location)
        if not prefix:
            raise UserError(f"{path}: a [[registry]] needs a location or a prefix")
        config.entries[prefix] = Entry(prefix, location or prefix, bool(table.get("insecure")),
                                       bool(table.get("blocked")))  # fmt: skip
    aliases = data.get("aliases")
    if isinstance(aliases, dict):
        config.aliases.update({str(k): str(v) for k, v in aliases.items()})


_TAG_OR_DIGEST = re.compile(r"(@.*|:[^/:]*)$")


def candidates(text: str, config: Config) -> list[Reference]:
    """The references a pull of *text* tries, in order: itself if it names its registry;
    else its alias; else the name on each unqualified-search registry."""
    if has_registry(text):
        return [parse_reference(text)]
    parse_reference(text)  # malformed input says so before anything else
    m = _TAG_OR_DIGEST.search(text)
    suffix = m.group(1) if m else ""
    bare = text[: len(text) - len(suffix)]
    alias = config.aliases.get(bare)
    if alias is not None:
        return [parse_reference(alias + suffix)]
    if not config.search:
        raise UserError(f"short name {text!r} did not resolve to an alias and no "
                        f"unqualified-search registries are defined in {config.where()}: "
                        f"give the full name (e.g. docker.io/library/{text})")  # fmt: skip
    found = [parse_reference(text, default_registry=host) for host in config.search]
    if len(found) > 1 and config.short_name_mode == "enforcing":
        shown = " or ".join(str(r) for r in found[:3])
        raise UserError(f"short name {text!r} is ambiguous (short-name-mode is enforcing and "
                        f"there is no prompt here): give the full name, {shown}")  # fmt: skip
    return found
