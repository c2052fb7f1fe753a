"""``unionfs exec``: another process in a running container's namespaces and cgroups.

The helper joins the namespaces of the container's process with setns (mount last), forks
into its PID namespace, and the child is put into the container's cgroups before it runs
anything; then it takes the container's user, capabilities, no_new_privs, seccomp filter
and environment (with the given changes) and execs, in a session of its own (a pty of the
container's with ``-t``). This module waits for it, relays its stdio and forwards
signals, as ``run`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Sequence

from unionfs.errors import UserError
from unionfs.runtime import cgroups, plan, spec
from unionfs.runtime import namespaces as ns
from unionfs.runtime.helper import Helper, StepError
from unionfs.runtime.proxy import Child, SignalProxy
from unionfs.runtime.run import attach_pty, supervised
from unionfs.runtime.state import ContainerDirs, State, describe, is_alive
from unionfs.runtime.stdio import Streams


def running(dirs: ContainerDirs, ref: str) -> State:
    state = dirs.find(ref)
    if state.status != "running" or not is_alive(state):
        raise UserError(f"container {state.name} is not running ({describe(state)})")
    return state


def process_for(state: State, args: Sequence[str], env: Sequence[str], workdir: str | None,
                user: str | None, interactive: bool = False, tty: bool = False,
                groups: tuple[int, ...] = ()) -> spec.Process:  # fmt: skip
    base = state.process
    if base is None:
        raise UserError(f"container {state.name} has no recorded process")
    changes: dict[str, object] = {"args": tuple(args), "make_cwd": False, "terminal": tty,
                                  "interactive": interactive}  # fmt: skip
    # as podman: a terminal gets TERM=xterm unless the container's environment has a TERM
    term = ["TERM=xterm"] if tty and not any(e.startswith("TERM=") for e in base.env) else []
    changes["env"] = spec.merge_env(base.env, [*term, *env])
    if workdir is not None:
        changes["cwd"] = spec.container_path(workdir, "--workdir")
    if user is not None:
        uid, gid = spec.parse_user(user)
        changes.update(uid=uid, gid=gid, groups=groups)
        if base.capabilities is not None and uid != 0:  # as setuid would leave them
            changes["capabilities"] = spec.Capabilities(base.capabilities.bounding, (), ())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def with_user_namespace(pid: int, namespaces: tuple[str, ...]) -> tuple[str, ...]:
    """A rootless container lives in its runtime's user namespace: join that one first
    (its owner gets every capability in it), then the others, which it owns."""
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/user")
    except OSError as exc:
        raise UserError(f"cannot see the container's namespaces: {exc.strerror}") from None
    if theirs == os.readlink("/proc/self/ns/user") or "user" in namespaces:
        return namespaces
    return ("user", *namespaces)


def exec_in(home: str, ref: str, args: Sequence[str], env: Sequence[str] = (),
            workdir: str | None = None, user: str | None = None, interactive: bool = False,
            tty: bool = False, groups: tuple[int, ...] = ()) -> int:  # fmt: skip
    if not args:
        raise UserError("no command given")
    state = running(ContainerDirs(home), ref)
    assert state.pid is not None
    process = process_for(state, args, env, workdir, user, interactive, tty, groups)
    steps = plan.exec_plan(state.pid, with_user_namespace(state.pid, state.namespaces), process)
    cgroup = cgroups.from_record(dict(state.cgroup))
    proxy = SignalProxy(stop_timeout=10.0)

    def body(cleanup: contextlib.ExitStack) -> int:
        ns.prctl(ns.PR_SET_CHILD_SUBREAPER, 1)
        streams = Streams(interactive, tty)
        cleanup.callback(streams.close)
        helper = Helper(streams.child_fds())
        cleanup.callback(helper.close)
        streams.started()
        helper.send_plan(steps)
        child = Child(helper.child_pid())
        cleanup.callback(child.kill_and_reap)
        cgroup.add(child.pid)
        proxy.attach(child.pid)
        helper.go("cgroup")
        failure = None
        try:
            helper.finish()
        except StepError as exc:
            failure = exc
        attach_pty(helper, streams, proxy)
        code = proxy.wait(child.pid, streams.relay)
        streams.restore()
        child.reaped = True
        if failure is not None:
            print(f"unionfs: {failure.message}", file=sys.stderr)
        return code

    return supervised(proxy, body)
