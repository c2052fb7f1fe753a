"""Write a manual page per verb of ``unionfs`` into a directory (``unionfs.1``,
``unionfs-images.1``, ``unionfs-image-ls.1``...), generated from the parser as
``unionfs man VERB`` shows them. For packaging: the pages are not kept in the tree.

    .venv/bin/python tools/manpages.py docs/man
"""

from __future__ import annotations

import os
import sys

from unionfs.cli import build_parser, man, parsertree


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: tools/manpages.py OUTDIR", file=sys.stderr)
        return 2
    out = argv[0]
    os.makedirs(out, exist_ok=True)
    count = 0
    for verb in parsertree.walk(build_parser()):
        name = "-".join(("unionfs", *verb.path)) + ".1"
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(man.page(verb))
        count += 1
    print(f"wrote {count} pages in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
