"""Detached containers as a podman user drives them: ``run -d`` returns at once with the
id, ``logs`` (``-f``, ``--tail``, ``-t``) shows what it wrote, bounded in size; ``stop``
(TERM, then KILL after ``-t``), ``wait``, ``restart``, ``start`` (detached unless ``-a``),
``rm -f``; ``ps`` says Up / Exited (N). The ``runtime`` fixture then asserts that no
mount, process or cgroup remains."""

from __future__ import annotations

import re

import pytest
from patience import scaled

from runtime.containerutil import Runtime, unique_name
from unionfs.runtime.state import ContainerDirs

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00"


pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")


def _status(runtime: Runtime, name: str) -> str:
    out = runtime("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").stdout
    return out.strip()


def test_run_d_logs_stop_wait_restart_rm(runtime: Runtime, bb: str) -> None:
    c = unique_name()
    script = "echo out; echo err >&2; trap 'echo term; exit 3' TERM; while :; do sleep 1; done"
    made = runtime("run", "-d", "--name", c, bb, "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    cid = made.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{32}", cid) and made.stderr == ""
    assert _status(runtime, c).startswith("Up ")
    assert runtime("ps", "-q").stdout.split() == [cid[:12]]
    # the output is there once the process wrote it: follow until both lines came
    follow = runtime.start("logs", "-f", c)
    assert follow.stdout is not None and follow.stdout.readline() == "out\n"
    shown = runtime("logs", c)
    assert (shown.stdout, shown.stderr) == ("out\n", "err\n")
    stamped = runtime("logs", "-t", c)
    assert re.fullmatch(f"{STAMP} out\n", stamped.stdout), stamped.stdout
    assert re.fullmatch(f"{STAMP} err\n", stamped.stderr), stamped.stderr
    stopped = runtime("stop", c)
    assert (stopped.returncode, stopped.stdout) == (0, f"{c}\n"), stopped.stderr
    rest, _ = follow.communicate(timeout=scaled(30))  # -f ends with the container
    assert rest == "term\n" and follow.returncode == 0
    assert runtime("wait", c).stdout == "3\n"
    assert re.fullmatch(r"Exited \(3\) .* ago", _status(runtime, c))
    assert runtime("logs", "--tail", "1", c).stdout == "term\n"
    again = runtime("restart", c)
    assert (again.returncode, again.stdout) == (0, f"{c}\n"), again.stderr
    assert _status(runtime, c).startswith("Up ")
    assert runtime("logs", c).stdout == "out\nterm\nout\n"  # the log of every run
    gone = runtime("rm", "-f", c)
    assert gone.returncode == 0, gone.stderr
    assert ContainerDirs(str(runtime.home)).all() == []


def test_stop_kills_what_ignores_term_after_the_timeout(runtime: Runtime, bb: str) -> None:
    c = unique_name()
    script = "trap '' TERM; while :; do sleep 1; done"
    made = runtime("run", "-d", "--name", c, bb, "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    assert runtime("stop", "-t", "0.2", c).returncode == 0
    assert runtime("wait", c).stdout == "137\n"
    assert runtime("rm", c).returncode == 0


def test_start_is_detached_unless_attached_and_wait_gives_the_code(
    runtime: Runtime, bb: str
) -> None:
    c = unique_name()
    assert runtime("create", "--name", c, bb, "sh", "-c", "echo ran; exit 5").returncode == 0
    started = runtime("start", c)
    assert (started.returncode, started.stdout) == (0, f"{c}\n"), started.stderr
    assert runtime("wait", c).stdout == "5\n"
    assert runtime("logs", c).stdout == "ran\n"
    attached = runtime("start", "-a", c)
    assert (attached.returncode, attached.stdout) == (5, "ran\n")
    assert runtime("rm", c).returncode == 0


def test_run_d_rm_removes_it_when_it_exits(runtime: Runtime, bb: str) -> None:
    c = unique_name()
    made = runtime("run", "-d", "--rm", "--name", c, bb, "sh", "-c", "read x < /dev/null; exit 0")
    assert made.returncode == 0, made.stderr
    waited = runtime("wait", c)
    assert waited.returncode in (0, 1)  # gone before or after wait looked
    assert ContainerDirs(str(runtime.home)).all() == [] or "removed" in waited.stderr


def test_the_log_is_bounded_and_keeps_the_newest_lines(runtime: Runtime, bb: str) -> None:
    c = unique_name()
    script = "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"
    made = runtime("run", "-d", "--log-opt", "max-size=8k", "--name", c, bb, "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    assert runtime("wait", c).stdout == "0\n"
    cdir = runtime.home / "containers" / made.stdout.strip()
    sizes = [p.stat().st_size for p in cdir.glob("ctr.log*")]
    assert len(sizes) == 2 and max(sizes) <= 8192 + 4096, sizes
    lines = runtime("logs", c).stdout.splitlines()
    first = int(lines[0].removeprefix("line"))
    assert lines == [f"line{i}" for i in range(first, 3000)] and first > 0
    assert runtime("logs", "--tail", "2", c).stdout == "line2998\nline2999\n"
    assert runtime("rm", c).returncode == 0


@pytest.mark.parametrize(("argv", "said"), [
    (["logs", "nosuch"], "unionfs: no such container: nosuch\n"),
    (["stop", "nosuch"], "unionfs: no such container: nosuch\n"),
    (["wait", "nosuch"], "unionfs: no such container: nosuch\n"),
    (["restart", "nosuch"], "unionfs: no such container: nosuch\n"),
    (["run", "-d", "--log-opt", "size=1", "x"],
     "unionfs: --log-opt size=1: give max-size=SIZE (e.g. 10m)\n"),
    (["stop", "-t", "soon", "x"],
     "unionfs: stop: argument -t/--time: invalid float value: 'soon' (see --help)\n"),
])  # fmt: skip
def test_bad_input_is_one_line(runtime: Runtime, argv: list[str], said: str) -> None:
    done = runtime(*argv)
    assert done.returncode != 0 and done.stderr == said


def test_a_detached_command_that_cannot_start_says_why(runtime: Runtime, bb: str) -> None:
    done = runtime("run", "-d", bb, "no-such-program")
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert "no-such-program" in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert lines[-1] == "unionfs: the container did not start (see above)"
    for state in ContainerDirs(str(runtime.home)).all():
        assert state.status == "exited"
        assert runtime("rm", state.id).returncode == 0
