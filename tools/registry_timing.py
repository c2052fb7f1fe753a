"""Time ``unionfs push``/``pull`` of a ~100 MB image through a local docker-registry:
first time, then a second image whose top layer alone changed.

    .venv/bin/python tools/registry_timing.py [--mb 100] [--layers 4]

Starts Debian's docker-registry on 127.0.0.1 (a temp dir, stopped by pid at the end); the
layers are random bytes (incompressible), imported into a source store first (not timed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from registry.regutil import build_image, random_bytes, start_registry

from unionfs.registry.blobdir import OciLayout
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, pull

MB = 1 << 20


def uf(root: Path, *args: str) -> float:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "unionfs", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"unionfs {' '.join(args)} failed: {proc.stderr.strip()}")
    print(f"  {took:6.2f} s  unionfs {args[0]}: {proc.stdout.strip().split(': ', 1)[-1]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100, help="image size (MB)")
    ap.add_argument("--layers", type=int, default=4, help="base layers (plus one small top)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="regtiming-"))
    reg = start_registry(work / "registry")
    try:
        per = args.mb * MB // args.layers
        base = [{f"data/{i}": random_bytes(per, i)} for i in range(args.layers)]
        layout = work / "layout"
        build_image(layout, "v1", [*base, {"app/top": random_bytes(MB, 1001)}])
        build_image(layout, "v2", [*base, {"app/top": random_bytes(MB, 1002)}])
        src, dst = work / "src", work / "dst"
        for tag in ("v1", "v2"):
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "unionfs",
                    "--root",
                    str(src),
                    "import",
                    f"{layout}:{tag}",
                    f"app:{tag}",
                ],
                check=True,
                capture_output=True,
            )
        ref = f"{reg.host}/timing/app"
        print(f"{args.mb} MB in {args.layers} layers + a 1 MB top layer")
        print("first time:")
        uf(src, "push", "app:v1", f"{ref}:v1", "--tls-verify=false")
        uf(dst, "pull", f"{ref}:v1", "--tls-verify=false")
        t = time.perf_counter()
        r = parse_reference(f"{ref}:v1")
        with connect(r, tls_verify=False) as client:
            pull(client, r, OciLayout(str(work / "layout-pull")), "v1")
        took = time.perf_counter() - t
        print(f"  {took:6.2f} s  (the same pull's download + verify alone, into an OCI layout)")
        print("only the top layer changed:")
        uf(src, "push", "app:v2", f"{ref}:v2", "--tls-verify=false")
        uf(dst, "pull", f"{ref}:v2", "--tls-verify=false")
    finally:
        reg.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
