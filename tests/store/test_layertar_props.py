"""Properties over random uppers: whatever marker forms an upper holds, write_layer then
extract_layer gives the same tree in the style asked for, the same digest twice, and the
extracted tree written again gives the same layer."""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layers import WHITEOUT_CHR, File, Opaque, Symlink, build, read_tree

from unionfs.layerfmt import KERNEL_STYLE, ROOTLESS_STYLE, MarkerStyle
from unionfs.store.layertar import extract_layer, open_layer, write_layer

NAMES = st.sampled_from(["a", "b", "c", "dd", "e.f", "é"])
LEAVES = st.one_of(
    st.binary(max_size=40).map(lambda b: File(b)),
    st.sampled_from(["x", "../up", "/abs"]).map(Symlink),
    st.sampled_from(["whiteout-chr", "whiteout-file"]),
)


def _dirs(children: Any) -> Any:
    return st.one_of(
        children.map(dict),
        st.tuples(children, st.sampled_from(["trusted", "user", "marker"])).map(
            lambda cf: Opaque(dict(cf[0]), form=cf[1])
        ),
    )


TREES = st.recursive(
    LEAVES,
    lambda inner: _dirs(st.lists(st.tuples(NAMES, inner), max_size=4, unique_by=lambda t: t[0])),
    max_leaves=12,
)
UPPERS = st.lists(st.tuples(NAMES, TREES), max_size=5, unique_by=lambda t: t[0]).map(dict)


def to_spec(tree: dict[str, Any]) -> dict[str, Any]:
    """Literal specs for layers.build: whiteouts in the form drawn, directories keyed "x/"."""
    spec: dict[str, Any] = {}
    for name, value in tree.items():
        if value == "whiteout-chr":
            spec[name] = WHITEOUT_CHR
        elif value == "whiteout-file":
            spec[".wh." + name] = ""
        elif isinstance(value, dict):
            spec[name + "/"] = to_spec(value)
        elif isinstance(value, Opaque):
            spec[name + "/"] = Opaque(to_spec(dict(value.children)), form=value.form)
        else:
            spec[name] = value
    return spec


def expected(tree: dict[str, Any], style: MarkerStyle) -> dict[str, Any]:
    """What read_tree shows after extraction in *style*."""
    out: dict[str, Any] = {}
    for name, value in tree.items():
        if value in ("whiteout-chr", "whiteout-file"):
            if style.device_whiteouts:
                out[name] = WHITEOUT_CHR
            else:
                out[".wh." + name] = ""
        elif isinstance(value, dict):
            out[name + "/"] = expected(value, style)
        elif isinstance(value, Opaque):
            form = "marker" if style.opaque_file else "trusted"
            out[name + "/"] = Opaque(expected(dict(value.children), style), form=form)
        elif isinstance(value, File):
            content = value.content
            try:
                out[name] = bytes(content).decode()  # type: ignore[arg-type]
            except UnicodeDecodeError:
                out[name] = content
        else:
            out[name] = value
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=UPPERS, rootless=st.booleans())
def test_any_upper_round_trips(tree: dict[str, Any], rootless: bool) -> None:
    style = ROOTLESS_STYLE if rootless else KERNEL_STYLE
    with tempfile.TemporaryDirectory() as tmp:
        upper = build(os.path.join(tmp, "upper"), to_spec(tree))
        first, second = io.BytesIO(), io.BytesIO()
        blob = write_layer(str(upper), first)
        assert write_layer(str(upper), second) == blob
        assert first.getvalue() == second.getvalue()
        dest = os.path.join(tmp, "out")
        os.mkdir(dest)
        with open_layer(io.BytesIO(first.getvalue())) as stream:
            diff_id = extract_layer(stream, dest, style, warn=print)
        assert diff_id == blob.diff_id
        assert read_tree(dest) == expected(tree, style)
        # What we extracted writes back to the very same layer, whatever the style.
        assert write_layer(dest, io.BytesIO()) == blob
