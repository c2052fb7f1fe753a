"""Overlapping layers and in-use marks (``unionfs.layercheck``) on plain directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unionfs import layercheck
from unionfs.errors import UserError
from unionfs.layercheck import Layer


def layers(tmp_path: Path, *spec: tuple[str, str]) -> list[Layer]:
    found = []
    for role, rel in spec:
        path = tmp_path / rel
        path.mkdir(parents=True, exist_ok=True)
        found.append(Layer(role, rel, str(path)))
    return found


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ((("lowerdir", "l"), ("lowerdir", "l")), "given twice"),
        ((("lowerdir", "w"), ("upperdir", "u"), ("workdir", "w")), "also the workdir"),
        ((("lowerdir", "l/sub"), ("lowerdir", "l")), "inside the lowerdir 'l'"),
        ((("lowerdir", "l"), ("lowerdir", "l/sub")), "inside the lowerdir 'l'"),
        ((("lowerdir", "u/in"), ("upperdir", "u"), ("workdir", "w")), "inside the upperdir"),
        ((("lowerdir", "w/x/y"), ("upperdir", "u"), ("workdir", "w")), "inside the workdir"),
    ],
)
def test_overlapping_layers_are_refused(
    tmp_path: Path, spec: tuple[tuple[str, str], ...], words: str
) -> None:
    with pytest.raises(UserError) as info:
        layercheck.overlaps(layers(tmp_path, *spec))
    assert words in info.value.message and "ELOOP" in info.value.message


def test_separate_layers_and_an_upper_inside_a_lower_pass(tmp_path: Path) -> None:
    layercheck.overlaps(layers(tmp_path, ("lowerdir", "a"), ("lowerdir", "b"),
                               ("upperdir", "a/up"), ("workdir", "w")))  # fmt: skip


def test_a_lower_given_through_a_symlink_is_the_same_layer(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "l")
    twice = [Layer("lowerdir", "l", str(tmp_path / "l")),
             Layer("lowerdir", "link", str(tmp_path / "link"))]  # fmt: skip
    with pytest.raises(UserError):
        layercheck.overlaps(twice)


def test_a_mark_is_seen_below_it_and_goes_with_its_descriptor(tmp_path: Path) -> None:
    (tmp_path / "u" / "in").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    assert not layercheck.in_use(str(tmp_path / "u" / "in"), set())
    marks = layercheck.mark_in_use([str(tmp_path / "u")])
    assert len(marks) == 1
    assert not layercheck.marked_by_others(marks[0])  # one's own mark
    assert layercheck.in_use(str(tmp_path / "u"), set())
    assert layercheck.in_use(str(tmp_path / "u" / "in"), set())
    assert not layercheck.in_use(str(tmp_path / "other"), set())
    os.close(marks[0])
    assert not layercheck.in_use(str(tmp_path / "u" / "in"), set())


def test_in_use_refuses_with_index_and_warns_without(tmp_path: Path) -> None:
    (tmp_path / "u").mkdir()
    marks = layercheck.mark_in_use([str(tmp_path / "u")])
    try:
        layer = Layer("upperdir", "u", str(tmp_path / "u"))
        warnings = layercheck.check_in_use([layer], index=False)
        assert len(warnings) == 1 and "undefined" in warnings[0]
        with pytest.raises(UserError) as info:
            layercheck.check_in_use([layer], index=True)
        assert "EBUSY" in info.value.message
    finally:
        os.close(marks[0])


def test_an_upper_keeps_the_origin_of_its_first_lower(tmp_path: Path) -> None:
    for d in ("u", "l1", "l2"):
        (tmp_path / d).mkdir()
    upper = str(tmp_path / "u")
    layercheck.check_origin(upper, "u", str(tmp_path / "l1"))  # records it
    layercheck.check_origin(upper, "u", str(tmp_path / "l1"))
    with pytest.raises(UserError) as info:
        layercheck.check_origin(upper, "u", str(tmp_path / "l2"))
    assert "ESTALE" in info.value.message
