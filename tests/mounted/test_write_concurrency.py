"""Many writers at once in one directory of a mount that has lower contents.

Eight threads run in ``shared/`` for a few seconds and at least a fixed number of
operations each (a busy machine makes the test longer, never thinner): each creates,
rewrites, renames and deletes files of its own names, copies up, rewrites and deletes the
lower files it owns, and appends fixed-size records to lower files that all of them share
(so copy-ups race).
Each thread keeps a model of what it did; afterwards the directory must hold exactly what
the models say, the mount must still answer, and kernel overlayfs over the same upper must
show the tree unionfs showed just before unmount.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mountutil import tree
from patience import Deadline
from treecmp import diff_trees, snapshot
from writeutil import kernel_view, writable

THREADS = 8
SECONDS = 5.0
LEAST_OPS = 25  # each thread's, whatever the time
HUNG = 120.0  # a writer still running past SECONDS plus this (stretched by load) is stuck
RECORD = 16
LOWER_FILES = 40
SHARED = 4


def lower_content(i: int) -> bytes:
    return f"lower file {i}\n".encode() * 50


def app_content(j: int) -> bytes:
    return f"append target {j}\n".encode() * 10


LAYERS = [
    tree({"shared": {f"low{i}": lower_content(i) for i in range(0, LOWER_FILES, 2)}}),
    tree(
        {
            "shared": {
                **{f"low{i}": lower_content(i) for i in range(1, LOWER_FILES, 2)},
                **{f"app{j}": app_content(j) for j in range(SHARED)},
            },
            "other": {"untouched": b"u"},
        }
    ),
]


@dataclass
class Worker:
    """One thread's names and what it believes they hold."""

    tid: int
    shared: Path
    files: dict[str, bytes] = field(default_factory=dict)
    appended: list[tuple[int, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ops: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.tid)
        for i in range(self.tid, LOWER_FILES, THREADS):
            self.files[f"low{i}"] = lower_content(i)

    def own(self) -> str:
        return f"t{self.tid}_{self.rng.randrange(12)}"

    def step(self) -> None:
        rng, path = self.rng, self.shared
        kind = rng.choice(["create", "rewrite", "rename", "delete", "append", "append"])
        if kind == "create":
            name = self.own()
            data = rng.randbytes(rng.randrange(0, 20_000))
            with open(path / name, "wb") as f:
                f.write(data)
            self.files[name] = data
        elif kind == "rewrite" and self.files:
            name = rng.choice(sorted(self.files))
            offset = rng.randrange(0, len(self.files[name]) + 1)
            data = rng.randbytes(rng.randrange(1, 5000))
            with open(path / name, "r+b") as f:
                f.seek(offset)
                f.write(data)
            model = bytearray(self.files[name])
            model[offset : offset + len(data)] = data
            self.files[name] = bytes(model)
        elif kind == "rename" and self.files:
            old, new = rng.choice(sorted(self.files)), self.own()
            os.rename(path / old, path / new)
            self.files[new] = self.files.pop(old)
        elif kind == "delete" and self.files:
            name = rng.choice(sorted(self.files))
            os.unlink(path / name)
            del self.files[name]
        elif kind == "append":
            j = rng.randrange(SHARED)
            record = f"{self.tid}:{self.ops}".encode().ljust(RECORD - 1, b".") + b"\n"
            with open(path / f"app{j}", "ab") as f:
                f.write(record)
            self.appended.append((j, record))
        self.ops += 1

    def run(self, until: float) -> None:
        while time.monotonic() < until or self.ops < LEAST_OPS:
            try:
                self.step()
            except Exception as exc:  # every failure is a finding: keep going, report all
                self.errors.append(f"thread {self.tid} op {self.ops}: {exc!r}")
                self.ops += 1
                if len(self.errors) > 20:
                    return


def test_concurrent_writers_leave_the_tree_their_models_describe(tmp_path: Path) -> None:
    with writable(tmp_path, LAYERS) as m:
        shared = m.path("shared")
        workers = [Worker(t, shared) for t in range(THREADS)]
        until = time.monotonic() + SECONDS
        threads = [threading.Thread(target=w.run, args=(until,)) for w in workers]
        for thread in threads:
            thread.start()
        hung = Deadline(SECONDS + HUNG)
        for thread in threads:
            thread.join(timeout=hung.left())
        assert not any(t.is_alive() for t in threads), "a writer is stuck: the mount hangs"
        errors = [e for w in workers for e in w.errors]
        assert not errors, "\n".join(errors)
        assert sum(w.ops for w in workers) >= THREADS * LEAST_OPS

        # the mount still answers, and holds what the models say
        assert (m.path("other/untouched")).read_bytes() == b"u"
        expected = {name: data for w in workers for name, data in w.files.items()}
        expected |= {f"app{j}": b"" for j in range(SHARED)}
        assert sorted(os.listdir(shared)) == sorted(expected)
        wrong = [
            name
            for name, data in expected.items()
            if not name.startswith("app") and (shared / name).read_bytes() != data
        ]
        assert not wrong, f"contents differ from the writers' models: {wrong}"
        for j in range(SHARED):
            text = (shared / f"app{j}").read_bytes()
            head = app_content(j)
            assert text.startswith(head), f"app{j}: its lower content was lost"
            records = [text[i : i + RECORD] for i in range(len(head), len(text), RECORD)]
            want = [r for w in workers for k, r in w.appended if k == j]
            assert sorted(records) == sorted(want), f"app{j}: appended records differ"
        before_unmount = snapshot(m.mnt)
    again = kernel_view(tmp_path, m.lowers, m.upper)
    problems = diff_trees(again, before_unmount, labels=("kernel on unionfs upper", "unionfs"))
    assert not problems, "\n".join(problems)
