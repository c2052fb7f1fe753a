"""The measurement loop: for each workload, layer count, first pass and run, every system
in turn on a fresh mount, so drift on a shared machine spreads over all of them alike.

Owns the cache handling (cold: the page cache dropped; hot: the stack's files read into
it first), the placeholders' values, the profile mode's recording around each pass, and
turning every failure (mount error, non-zero exit, hang, daemon death) into a recorded
result. Running and timing one command is ``bench.timing``'s.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from bench import realstacks
from bench.config import BENCH_DIR, Config
from bench.fusetrace import Trace, Tracer
from bench.stacks import Stack, StackCache, fingerprint, forget
from bench.systems import (
    Mounted,
    MountError,
    System,
    abort_fuse,
    is_mounted,
    mounted,
    remove_place,
)
from bench.timing import Sample, drop_caches, sh
from bench.workloads import Workload


class LowerModified(Exception):
    """A system wrote to a lower layer: every later number on that stack would be wrong."""


class Runner:
    def __init__(
        self, cfg: Config, cache: StackCache, scratch: Path, say: Callable[[str], None]
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self.scratch = scratch
        self.say = say
        self._places = 0
        self._prints: dict[str, tuple[int, int, int]] = {}
        self.aborted: str | None = None  # why the run stopped early
        self.tracer: Tracer | None = None  # set by the caller in --profile mode

    # -- what runs where -------------------------------------------------------------------

    def layer_counts(self, wl: Workload) -> tuple[int, ...]:
        if wl.stack.startswith("real:"):
            return (self.cache.real(wl.stack[5:]).depth,)
        counts = self.cfg.layers if wl.sweep else (1,)
        if wl.deep:
            counts = tuple(dict.fromkeys(counts + self.cfg.deep_layers))
        return counts

    def stack(self, wl: Workload, layers: int, system: System) -> Stack:
        if wl.stack == "big":
            return self.cache.big()
        if wl.stack.startswith("real:"):
            return self.cache.real(wl.stack[5:])
        return self.cache.source(layers, system.flavor)

    def context(self, mnt: Path, template: str) -> dict[str, str]:
        """The values of the placeholders *template* uses (built lazily: some cost a build)."""
        sizes = self.cache.sizes
        values: dict[str, Callable[[], object]] = {
            "mnt": lambda: mnt,
            "tar": self.cache.tarball,
            "src": self.cache.source_dir,
            "n": lambda: sizes.create_files,
            "links": lambda: sizes.links,
            "mib": lambda: sizes.big_mib,
            "fsops": lambda: f"{shlex.quote(sys.executable)} -I {BENCH_DIR / 'fsops.py'}",
            "chroot": lambda: realstacks.chroot_prefix(mnt),
            "apt": lambda: realstacks.APT_INSTALL,
            "rootfs": lambda: self.cache.real("debian-flat").layers[0],
        }
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        return {k: str(values[k]()) for k in used}

    def _place(self) -> Path:
        self._places += 1
        return self.scratch / f"m{self._places:05d}"

    @staticmethod
    def unsupported(wl: Workload, layers: int, system: System) -> str | None:
        """Why *system* does not run *wl* at *layers*, or None."""
        if system.max_lowers is not None and layers > system.max_lowers:
            return f"skipped: {system.name} takes at most {system.max_lowers} lower layers"
        if wl.stack.startswith("real:") and system.flavor != "overlay":
            return f"skipped: the real stacks have kernel whiteouts, which {system.name} ignores"
        if wl.writes and not system.copy_up:
            return f"skipped: {system.name} has no copy-up (a write would change a lower layer)"
        return None

    def prepare(self, wls: list[Workload], systems: list[System]) -> dict[str, Stack]:
        """Every stack the run needs, generated now (or found in the cache)."""
        stacks = {}
        for wl in wls:
            for layers in self.layer_counts(wl):
                for system in systems:
                    if not self.unsupported(wl, layers, system):
                        stack = self.stack(wl, layers, system)
                        stacks[stack.key] = stack
        if any("{tar}" in w.command for w in wls):
            self.cache.tarball()
        if any("{rootfs}" in w.command for w in wls):
            self.cache.real("debian-flat")
        return stacks

    # -- the merged view is what it should be ------------------------------------------------

    def check(self, wls: list[Workload], systems: list[System]) -> list[dict[str, object]]:
        """Mount every stack once per system and count what the merged view shows."""
        results: list[dict[str, object]] = []
        for system in systems:
            seen_keys = set()
            for wl in wls:
                for layers in self.layer_counts(wl):
                    stack = self.stack(wl, layers, system)
                    if stack.key in seen_keys or self.unsupported(wl, layers, system):
                        continue
                    seen_keys.add(stack.key)
                    results.append(self._check_one(system, stack))
        return results

    def _check_one(self, system: System, stack: Stack) -> dict[str, object]:
        result: dict[str, object] = {
            "system": system.name,
            "stack": stack.key,
            "expected": stack.expected(),
        }
        place = self._place()
        try:
            with mounted(system, stack.layers, place, self.cache.dir / "state") as m:
                out = subprocess.run(
                    ["find", str(m.mnt), "-mindepth", "1", "-printf", "%y\\n"],
                    capture_output=True,
                    text=True,
                    timeout=self.cfg.timeout,
                    check=False,
                )
                kinds: dict[str, int] = {}
                for k in out.stdout.split():
                    kinds[k] = kinds.get(k, 0) + 1
                result["seen"] = kinds
                result["ok"] = out.returncode == 0 and kinds == stack.expected()
                if out.returncode != 0:
                    result["error"] = out.stderr.strip().splitlines()[-1:]
            result["log_problems"] = m.log_problems()
        except (MountError, OSError, subprocess.TimeoutExpired) as exc:
            result.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            remove_place(place)
        if not result["ok"]:
            self.say(
                f"check: {system.name} on {stack.key}: expected {result['expected']}, "
                f"saw {result.get('seen')} {result.get('error', '')}"
            )
        return result

    # -- measurements ----------------------------------------------------------------------

    def plan(
        self, wls: list[Workload], systems: list[System]
    ) -> Iterator[tuple[Workload, int, str, int, System]]:
        for wl in wls:
            for layers in self.layer_counts(wl):
                for first in self.cfg.first_passes:
                    for run in range(self.cfg.runs):
                        for system in systems:
                            yield wl, layers, first, run, system

    def run(self, wls: list[Workload], systems: list[System]) -> list[Sample]:
        samples: list[Sample] = []
        steps = list(self.plan(wls, systems))
        for i, (wl, layers, first, run, system) in enumerate(steps, 1):
            try:
                got = self.measure(wl, layers, first, run, system)
            except LowerModified as exc:
                self.aborted = str(exc)
                self.say(f"bench: STOPPED: {exc}")
                samples.append(Sample(wl.name, layers, system.name, first, run, error=str(exc)))
                break
            samples += got
            shown = ", ".join(
                f"{s.pass_} " + (f"{s.seconds:.3f} s" if s.seconds is not None else str(s.error))
                for s in got
            )
            self.say(
                f"[{i}/{len(steps)}] {wl.name} layers={layers} run {run + 1}/"
                f"{self.cfg.runs} {system.name}: {shown}"
            )
        return samples

    def measure(
        self, wl: Workload, layers: int, first: str, run: int, system: System
    ) -> list[Sample]:
        def sample(pass_: str, **kw: object) -> Sample:
            return Sample(wl.name, layers, system.name, pass_, run, **kw)  # type: ignore[arg-type]

        skip = self.unsupported(wl, layers, system)
        if skip:
            return [sample(first, error=skip)] if run == 0 else []
        stack = self.stack(wl, layers, system)
        if wl.writes and stack.key not in self._prints:
            self._prints[stack.key] = fingerprint(stack)
        place = self._place()
        samples: list[Sample] = []
        try:
            if first == "cold":
                drop_caches()
            else:
                self._prime(stack)
            env = None
            if self.tracer is not None and _is_unionfs(system):
                env = {**os.environ, "UNIONFS_PROFILE": str(place / "profile.json")}
            with mounted(system, stack.layers, place, self.cache.dir / "state", env) as m:
                if wl.mount_only:
                    samples.append(
                        sample(first, seconds=m.mount_seconds, mount_seconds=m.mount_seconds)
                    )
                else:
                    samples += self._passes(wl, first, m, sample)
                problems = m.log_problems()
            for s in samples:
                s.log_problems = problems
        except MountError as exc:
            samples.append(sample(first, error=f"mount failed: {exc}"[:300]))
        finally:
            remove_place(place)
            if wl.writes:
                os.sync()  # written data must not be flushed during the next measurement
        if wl.writes and fingerprint(stack) != self._prints[stack.key]:
            forget(stack)
            raise LowerModified(
                f"{system.name} changed the lower layers of {stack.key} during {wl.name} "
                f"(layers={layers}, {first}); the stack will be regenerated on the next run"
            )
        return samples

    def _passes(
        self, wl: Workload, first: str, m: Mounted, sample: Callable[..., Sample]
    ) -> list[Sample]:
        if wl.setup:
            ctx = self.context(m.mnt, wl.setup)
            _, error, _ = sh(wl.setup.format(**ctx), self.cfg.timeout, lambda: self._unhang(m))
            if error:
                return [
                    sample(first, error=f"setup failed: {error}", mount_seconds=m.mount_seconds)
                ]
        labels = [first]
        if wl.repeatable and "warm" in self.cfg.passes and first == self.cfg.first_passes[-1]:
            labels.append("warm")
        samples = []
        command = wl.command.format(**self.context(m.mnt, wl.command))
        for label in labels:
            handlers = self._handler_profile(m)  # starts the daemon's count afresh
            recording: AbstractContextManager[Trace | None] = nullcontext()
            if self.tracer is not None and m.system.kind == "fuse":
                recording = self.tracer.record(m.mnt)
            cpu0 = m.daemon_cpu()
            with recording as trace:
                seconds, error, client_cpu = sh(command, self.cfg.timeout,
                                                 lambda: self._unhang(m))  # fmt: skip
            cpu1 = m.daemon_cpu()
            handlers = self._handler_profile(m)
            if error and not error.startswith("hang"):
                error += f" (after {seconds:.1f} s)"
            s = sample(
                label,
                seconds=None if error else seconds,
                error=error,
                client_cpu=round(client_cpu, 4),
                mount_seconds=m.mount_seconds,
            )
            if cpu0 is not None and cpu1 is not None:
                s.daemon_cpu = round(cpu1 - cpu0, 4)
            s.load = round(os.getloadavg()[0], 2)
            if trace is not None:
                s.requests = trace.as_json()
            s.handlers = handlers
            samples.append(s)
            dead = m.alive()
            if dead:
                s.error = f"{s.error + '; ' if s.error else ''}{dead}"
                s.seconds = None
                break
            if error:
                break
        if wl.probe is not None and samples and samples[-1].error is None:
            try:
                samples[-1].note = wl.probe(m.mnt)
            except OSError as exc:
                samples[-1].note = f"probe failed: {exc}"
        return samples

    def _handler_profile(self, m: Mounted) -> dict[str, dict[str, float]] | None:
        """unionfs's own count per handler since the last call (SIGUSR1 makes the daemon
        write it and start afresh); None when not profiling unionfs."""
        if self.tracer is None or m.proc is None or not _is_unionfs(m.system):
            return None
        path = m.log.parent / "profile.json"
        path.unlink(missing_ok=True)
        m.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not path.exists():
            if m.proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.01)
        table: dict[str, dict[str, float]] = json.loads(path.read_text())
        return table

    def _unhang(self, m: Mounted) -> None:
        self.say(f"hang on {m.system.name}: aborting its FUSE connection")
        if m.system.kind == "fuse" and is_mounted(m.mnt):
            abort_fuse(m.mnt)

    def _prime(self, stack: Stack) -> None:
        """Read the stack's files and metadata into the page cache (a "hot" start)."""
        layers = " ".join(shlex.quote(str(p)) for p in stack.layers)
        subprocess.run(
            f"find {layers} -type f -print0 | xargs -0 -r cat > /dev/null",
            shell=True,
            cwd="/",
            check=False,
        )


def _is_unionfs(system: System) -> bool:
    return system.name.startswith("unionfs") and system.name != "unionfs-fuse"


def say_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
