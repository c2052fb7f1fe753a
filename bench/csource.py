"""A generated C project, deterministic by seed: modules under ``mod/``, shared headers under
``include/``, and a Makefile that compiles each module and links one program. The C build
and the git repository of the real workloads are made of it. Writes files; runs nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

HEADERS = 24
FUNCS_PER_MODULE = 12
SYSTEM_HEADERS = ("stdio.h", "stdlib.h", "string.h", "stdint.h", "errno.h", "unistd.h")

MAKEFILE = """\
CFLAGS ?= -O1 -Iinclude
SRCS := $(wildcard mod/*.c)
OBJS := $(SRCS:.c=.o)

prog: $(OBJS) main.o
\t$(CC) -o $@ $^

%.o: %.c
\t$(CC) $(CFLAGS) -c -o $@ $<

clean:
\trm -f prog main.o $(OBJS)
"""


def _module(rng: random.Random, index: int) -> str:
    includes = [f"#include <{h}>" for h in rng.sample(SYSTEM_HEADERS, 3)]
    includes += [f'#include "h{h}.h"' for h in rng.sample(range(HEADERS), 4)]
    body = []
    for j in range(FUNCS_PER_MODULE):
        k = rng.randrange(1, 1000)
        body.append(
            f"int m{index}_f{j}(int x)\n{{\n    int acc = {k};\n"
            f"    for (int i = 0; i < x; i++)\n        acc = (acc * 31 + i) ^ {k * 7};\n"
            f"    return acc + (int)strlen(\"m{index}_f{j}\");\n}}\n"
        )
    return "\n".join(includes) + "\n\n" + "\n".join(body)


def _header(index: int) -> str:
    decls = "\n".join(f"int h{index}_decl{j}(int);" for j in range(40))
    return f"#ifndef H{index}_H\n#define H{index}_H\n{decls}\n#endif\n"


def write_project(root: Path, modules: int, seed: int, with_makefile: bool = True) -> None:
    rng = random.Random(f"csource:{seed}")
    (root / "mod").mkdir(parents=True)
    (root / "include").mkdir()
    for h in range(HEADERS):
        (root / "include" / f"h{h}.h").write_text(_header(h))
    for i in range(modules):
        (root / "mod" / f"m{i:05d}.c").write_text(_module(rng, i))
    (root / "main.c").write_text("int main(void)\n{\n    return 0;\n}\n")
    if with_makefile:
        (root / "Makefile").write_text(MAKEFILE)


def touch_some(root: Path, round_: int, share: float) -> None:
    """Change *share* of the modules (one history step of the git repository)."""
    rng = random.Random(f"csource-touch:{round_}")
    mods = sorted((root / "mod").iterdir())
    for path in rng.sample(mods, max(1, round(len(mods) * share))):
        with open(path, "a") as f:
            f.write(f"\nint touched_{round_}_{path.stem}(void) {{ return {round_}; }}\n")
