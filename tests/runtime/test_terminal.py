"""The terminal: a container never holds the caller's terminal (without -t: pipes, stdin
/dev/null unless -i; with -t a pty of its own, relayed), so the TIOCSTI injection that
typed into the host's shell fails; ``run -it IMAGE sh`` works in a real terminal, window
size changes reach it, and the exit code comes back; ``exec -it`` and a bundle's
``process.terminal`` too. The caller's terminal is a pty (``ptyutil``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from patience import scaled

from runtime import ptyutil
from runtime.containerutil import Runtime, unique_name


def unionfs(runtime: Runtime, *args: str) -> list[str]:
    return [sys.executable, "-m", "unionfs", *args]


def test_tiocsti_from_a_container_cannot_type_into_the_callers_terminal(
    runtime: Runtime, busybox_rootfs: Path, probes: Path
) -> None:
    argv = unionfs(runtime, "run", "--rm", "-v", f"{probes}:/probe:ro", "--rootfs",
                   str(busybox_rootfs), "/probe/tiocsti")  # fmt: skip
    seen = ptyutil.run(argv, runtime.env)
    report = seen.output.decode(errors="replace")
    assert seen.code == 0, report
    for fd in ("stdin", "stdout", "stderr", "/dev/tty"):
        assert f"{fd}: " in report, report
    assert "INJECTED" not in report, report  # the kernel took no byte on any fd
    assert b"INJECTED" not in seen.typed  # nothing waits for the user's shell


def test_with_a_tty_the_container_types_only_into_its_own_terminal(
    runtime: Runtime, busybox_rootfs: Path, probes: Path
) -> None:
    argv = unionfs(runtime, "run", "--rm", "-t", "-v", f"{probes}:/probe:ro", "--rootfs",
                   str(busybox_rootfs), "/probe/tiocsti")  # fmt: skip
    seen = ptyutil.run(argv, runtime.env)
    assert seen.code == 0, seen.output
    assert b"INJECTED" not in seen.typed


def test_run_it_image_sh_works_in_a_real_terminal_and_the_exit_code_comes_back(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    assert runtime("import", str(busybox_rootfs), "busybox:tty").returncode == 0
    argv = unionfs(runtime, "run", "--rm", "-it", "busybox:tty", "sh")
    seen = ptyutil.run(argv, runtime.env, script=[(b"# ", b"tty; echo hi $((40+2)); exit 3\r")])
    text = seen.output.decode(errors="replace")
    assert "hi 42" in text, text
    assert "/dev/pts/0" in text  # its own devpts: the first pty there
    assert seen.code == 3


def test_window_size_and_its_changes_reach_the_container(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    # The new size reaches the container's own pty through the runtime's SIGWINCH relay,
    # a moment after the caller's terminal changed: the container waits for it (a size
    # that never changes keeps it waiting until ptyutil's deadline kills it: a failure).
    argv = unionfs(runtime, "run", "--rm", "-it", "--rootfs", str(busybox_rootfs), "sh", "-c",
                   "stty size; echo resize-now; "
                   "while [ \"$(stty size)\" = '33 101' ]; do sleep 0.05; done; "
                   "stty size")  # fmt: skip
    seen = ptyutil.run(argv, runtime.env, size=(33, 101), resize=(b"resize-now", (40, 120)))
    text = seen.output.decode(errors="replace")
    assert seen.code == 0, text
    assert "33 101" in text and "40 120" in text, text


def test_without_i_stdin_is_dev_null_and_with_i_it_is_the_callers(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    base = ["run", "--rm", "--rootfs", str(busybox_rootfs)]
    closed = subprocess.run(unionfs(runtime, *base, "sh", "-c", "cat; readlink /proc/self/fd/0"),
                            input="typed", capture_output=True, text=True, env=runtime.env,
                            timeout=scaled(120), check=False)  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout == "/dev/null\n"
    kept = subprocess.run(unionfs(runtime, *base[:1], "-i", *base[1:], "cat"), input="typed",
                          capture_output=True, text=True, env=runtime.env, timeout=scaled(120),
                          check=False)  # fmt: skip
    assert kept.stdout == "typed", kept.stderr


def test_without_t_the_callers_terminal_becomes_pipes(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    argv = unionfs(runtime, "run", "--rm", "-i", "--rootfs", str(busybox_rootfs), "sh", "-c",
                   "for fd in 0 1 2; do [ -t $fd ] && echo tty$fd; done; "
                   "ls -l /proc/self/fd/ | grep -c pipe; head -c 5")  # fmt: skip
    seen = ptyutil.run(argv, runtime.env, script=[(b"\n", b"abcde")])
    text = seen.output.decode(errors="replace")
    assert seen.code == 0, text
    assert "tty" not in text, text  # no fd is a terminal
    assert "abcde" in text  # but what is typed still arrives (through a pipe)


def test_exec_it_gets_a_pty_of_the_container(runtime: Runtime, busybox_rootfs: Path) -> None:
    name = unique_name()
    proc = runtime.start("run", "--name", name, "--rm", "--rootfs", str(busybox_rootfs),
                         "sleep", "300")  # fmt: skip
    runtime.wait_running(name, proc)
    seen = ptyutil.run(unionfs(runtime, "exec", "-it", name, "sh"), runtime.env,
                       script=[(b"# ", b"tty; exit 4\r")])  # fmt: skip
    assert seen.code == 4, seen.output
    assert b"/dev/pts/" in seen.output
    plain = ptyutil.run(unionfs(runtime, "exec", name, "sh", "-c", "[ -t 1 ] || echo notty"),
                        runtime.env)  # fmt: skip
    assert b"notty" in plain.output
    assert runtime("kill", name).returncode == 0
    proc.wait(timeout=scaled(60))


def test_a_bundle_with_process_terminal_gets_a_pty(
    runtime: Runtime, busybox_rootfs: Path, tmp_path: Path
) -> None:
    if subprocess.run(["which", "runc"], capture_output=True).returncode != 0:
        pytest.skip("runc is not installed: `runc spec` makes the bundle")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["terminal"] is True  # runc spec's default
    config["process"]["args"] = ["sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty"]
    config["root"]["path"] = str(busybox_rootfs)
    (bundle / "config.json").write_text(json.dumps(config))
    seen = ptyutil.run(unionfs(runtime, "run", "--rm", "--bundle", str(bundle)), runtime.env)
    text = seen.output.decode(errors="replace")
    assert seen.code == 0, text
    assert "/dev/pts/0" in text and "stdin-is-a-tty" in text
