"""Reference parsing: hosts, ports, Docker Hub defaults, tags, digests, malformed input."""

from __future__ import annotations

import pytest

from unionfs.errors import UserError
from unionfs.registry.reference import Reference, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000/repo", Reference("127.0.0.1:5000", "repo", None, None)),
        ("localhost:5000/a/b:v1", Reference("localhost:5000", "a/b", "v1", None)),
        ("localhost/x", Reference("localhost", "x", None, None)),
        ("quay.io/org/img:1.2-rc_3", Reference("quay.io", "org/img", "1.2-rc_3", None)),
        ("busybox", Reference("docker.io", "library/busybox", None, None)),
        ("busybox:1.36", Reference("docker.io", "library/busybox", "1.36", None)),
        ("user/img", Reference("docker.io", "user/img", None, None)),
        ("docker.io/alpine", Reference("docker.io", "library/alpine", None, None)),
        ("index.docker.io/alpine", Reference("docker.io", "library/alpine", None, None)),
        (f"host:1/r@{D}", Reference("host:1", "r", None, D)),
        (f"host:1/r:t@{D}", Reference("host:1", "r", "t", D)),
        ("[::1]:5000/r", Reference("[::1]:5000", "r", None, None)),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_reference_forms() -> None:
    ref = parse_reference("busybox")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.reference == "latest"
    assert str(ref) == "docker.io/library/busybox:latest"
    assert parse_reference("h:5/r:t").api_host == "h:5"
    assert parse_reference(f"h:5/r@{D}").reference == D


@pytest.mark.parametrize(
    "text",
    [
        "",
        " x",
        "Upper/case",
        "h:5/",
        "h:5/r:",
        "h:5/r:-bad",
        "h:5/r@sha256:12",
        "h:5/a//b",
        "h:5/r@md5:" + "a" * 32,
        "h:5/a b",
        "h:5/r:t:u",
        "-x/y",
    ],
)
def test_malformed_reference_is_one_line_user_error(text: str) -> None:
    with pytest.raises(UserError) as info:
        parse_reference(text)
    assert "malformed image reference" in info.value.message
    assert "\n" not in info.value.message
    assert info.value.exit_code == 2
