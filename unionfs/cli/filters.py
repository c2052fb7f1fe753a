"""``--filter KEY=VALUE`` as podman reads it: each KEY a verb allows, values of one key
or-ed, different keys and-ed (``label`` and ``label!`` are and-ed, as podman does);
the matching rules the verbs share: labels, ``path.Match`` globs, booleans.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from unionfs.errors import UserError

Test = Callable[[str], bool]


def parse(values: list[str], allowed: tuple[str, ...], verb: str) -> dict[str, list[str]]:
    """``["dangling=true", "label=a"]`` -> ``{"dangling": ["true"], "label": ["a"]}``."""
    found: dict[str, list[str]] = {}
    for text in values:
        key, eq, value = text.partition("=")
        if not eq or key not in allowed:
            raise UserError(f"invalid filter {text!r}: {verb} filters on "
                            f"{', '.join(k + '=' for k in allowed)}", exit_code=2)  # fmt: skip
        found.setdefault(key, []).append(value)
    return found


def matches(wanted: dict[str, list[str]], test: Callable[[str, str], bool]) -> bool:
    """Whether an item passes every key of *wanted*; *test(key, value)* tests one value."""
    for key, values in wanted.items():
        if key in ("label", "label!"):
            if not all(test(key, v) for v in values):
                return False
        elif not any(test(key, v) for v in values):
            return False
    return True


def label(labels: Mapping[str, str] | None, value: str) -> bool:
    """``key`` (present) or ``key=value`` (with that value); ``*`` matches any value."""
    key, eq, want = value.partition("=")
    labels = labels or {}
    if key not in labels:
        return False
    return not eq or want in ("*", labels[key])


def boolean(value: str, key: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise UserError(f"invalid filter {key}={value!r}: give true or false", exit_code=2)


def glob(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` pattern as a regex: ``*`` and ``?`` stop at ``/``; ``[...]``."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise UserError(f"invalid filter pattern {pattern!r}: '[' without ']'", 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def regex(pattern: str, key: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UserError(f"invalid filter {key}={pattern!r}: {exc}", exit_code=2) from None
