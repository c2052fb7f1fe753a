"""What ``ps``, ``inspect``, ``mount`` and ``system df`` show of a container, in podman's
words: its state, its status line (``Up 3 minutes``, ``Exited (0) 2 minutes ago``), its
image's name, its JSON and template fields. From the state directory as it is today: what
the runtime does not record has podman's empty value.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from unionfs.cli import humanize
from unionfs.cli.govalues import GoMap
from unionfs.runtime.network import Port
from unionfs.runtime.spec import RunSpec
from unionfs.runtime.state import State, describe, is_alive
from unionfs.store import catalog
from unionfs.store.meta import Meta

GO_ZERO_UNIX = -62135596800  # Go's zero time as a Unix time, as podman prints an unset one


def state_word(state: State) -> str:
    """podman's State: created, running, stopping, exited, or unknown (runtime gone)."""
    status = describe(state)
    if status.startswith("exited"):
        return "exited"
    if status.startswith("dead"):
        return "unknown"
    return {"starting": "created"}.get(status, status)


def _when(seconds: float | None) -> datetime.datetime | None:
    return None if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.UTC)


def started(state: State) -> datetime.datetime | None:
    """When the container last started (for a container of an older runtime, which did not
    record it: its creation time)."""
    if state.started is not None:
        return _when(state.started)
    return _when(state.created) if state.pid is not None or state.finished else None


def status_line(state: State, now: datetime.datetime | None = None) -> str:
    """``Created``, ``Up 3 minutes``, ``Exited (0) 2 minutes ago``, ``Stopping``..."""
    word = state_word(state)
    if word == "running":
        begun = started(state)
        return "Up " + humanize.duration(((now or _now()) - begun).total_seconds()) if begun \
            else "Up"  # fmt: skip
    if word == "exited":
        return f"Exited ({state.exit_code}) " + humanize.ago(_when(state.finished), now)
    if word == "unknown":
        return "Unknown (its runtime is gone: unionfs rm cleans up)"
    return word.capitalize()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class Images:
    """The names and ids of the store's images, to show a container's image by name."""

    names: dict[str, tuple[str, ...]]
    ids: dict[str, str]

    @staticmethod
    def of(meta: Meta | None) -> Images:
        return Images(catalog.names_by_image(meta), catalog.image_ids(meta))

    @staticmethod
    def at(home: str) -> Images:
        with catalog.metadata(home) as meta:
            return Images.of(meta)

    def name(self, state: State) -> str:
        if state.image is None:
            return state.rootfs
        found = self.names.get(state.image)
        return found[0] if found else state.image[7:19]

    def image_id(self, state: State) -> str:
        return self.ids.get(state.image or "", "")


def ps_json(state: State, images: Images, ports: tuple[Port, ...] = (),
            labels: dict[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    """One container as ``podman ps --format json`` shows it (*ports*: its -p; *labels*:
    its own and its image's)."""
    word = state_word(state)
    begun = started(state)
    return {
        "AutoRemove": state.remove, "Command": list(state.command),
        "CreatedAt": humanize.ago(_when(state.created)), "Exited": word == "exited",
        "ExitedAt": int(state.finished) if state.finished else GO_ZERO_UNIX,
        "ExitCode": state.exit_code or 0, "Id": state.id, "Image": images.name(state),
        "ImageID": images.image_id(state), "IsInfra": False, "Labels": labels or None,
        "Mounts": [],
        "Names": [state.name], "Namespaces": {}, "Networks": [],
        "Pid": state.pid if word == "running" and state.pid is not None and is_alive(state)
        else 0,
        "Pod": "", "PodName": "", "Size": None,
        "Ports": [{"host_ip": p.host_ip, "container_port": p.container_port,
                   "host_port": p.host_port, "range": 1, "protocol": p.protocol}
                  for p in ports] or None,
        "StartedAt": int(begun.timestamp()) if begun else GO_ZERO_UNIX, "State": word,
        "Status": status_line(state), "Created": int(state.created),
    }  # fmt: skip


def ps_row(state: State, images: Images, no_trunc: bool, ports: tuple[Port, ...] = (),
           labels: dict[str, str] | None = None) -> dict[str, object]:  # fmt: skip
    """The template fields of ``podman ps`` (psReporter) for one container."""
    command = " ".join(state.command)  # podman joins with spaces (no quoting)
    if not no_trunc and len(command) > 17:
        command = command[:17] + "..."
    created = _when(state.created)
    image_id = images.image_id(state)
    return ps_json(state, images, ports, labels) | {
        "ID": state.id if no_trunc else state.short_id, "Names": state.name,
        "Image": images.name(state), "ImageID": image_id if no_trunc else image_id[:12],
        "Command": command, "Created": humanize.go_time(created),
        "CreatedAt": humanize.go_time(created), "CreatedHuman": humanize.ago(created),
        "RunningFor": humanize.ago(created), "State": state_word(state).capitalize(),
        "Ports": ", ".join(map(str, ports)), "Labels": GoMap(labels or {}), "Mounts": [],
        "Networks": "",
    }  # fmt: skip


def _rfc3339nano(when: datetime.datetime | None) -> str:
    if when is None:
        return "0001-01-01T00:00:00Z"
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Dirs:
    """Where a container's directories are (``ContainerDirs.paths``)."""

    upper: str
    work: str
    rootfs: str


def inspect_json(state: State, images: Images, dirs: Dirs, spec: RunSpec | None,
                 stop_timeout: float | None) -> dict[str, object]:  # fmt: skip
    """One container as ``podman container inspect`` shows it (the fields there are here)."""
    word = state_word(state)
    process = spec.process if spec is not None else None
    running = word == "running"
    lowers = list(state.lowers or (state.rootfs,))
    return {
        "Id": state.id, "Created": _rfc3339nano(_when(state.created)),
        "Path": state.command[0] if state.command else "", "Args": list(state.command[1:]),
        "State": {
            "Status": word, "Running": running, "Paused": False, "Restarting": False,
            "OOMKilled": state.oom_killed, "Dead": word == "unknown",
            "Pid": state.pid if running and state.pid is not None else 0,
            "ExitCode": state.exit_code or 0, "Error": "",
            "StartedAt": _rfc3339nano(started(state)),
            "FinishedAt": _rfc3339nano(_when(state.finished)),
        },
        "Image": images.image_id(state), "ImageDigest": state.image or "",
        "ImageName": images.name(state), "Rootfs": "" if state.image else state.rootfs,
        "Name": state.name, "RestartCount": 0, "Driver": "unionfs",
        "GraphDriver": {"Name": "unionfs", "Data": {
            "LowerDir": ":".join(lowers), "UpperDir": dirs.upper, "WorkDir": dirs.work,
            "MergedDir": dirs.rootfs}},
        "Mounts": [{"Type": "bind", "Source": m.source, "Destination": m.destination,
                    "Options": list(m.options)}
                   for m in (spec.mounts if spec is not None else ())
                   if "bind" in m.options or "rbind" in m.options],
        "Config": {
            "Hostname": (spec.hostname if spec is not None else None) or state.short_id,
            "User": f"{process.uid}:{process.gid}" if process is not None else "",
            "Env": list(process.env) if process is not None else [],
            "Cmd": list(state.command), "Image": images.name(state),
            "WorkingDir": process.cwd if process is not None else "/",
            "Entrypoint": "", "Labels": dict(spec.labels) if spec is not None else None,
            "StopTimeout": int(stop_timeout or 10),
            "Tty": bool(process and process.terminal),
            "OpenStdin": bool(process and process.interactive),
        },
        "HostConfig": {"AutoRemove": state.remove,
                       "Privileged": bool(spec is not None and spec.privileged)},
    }  # fmt: skip
