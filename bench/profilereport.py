"""The profile mode's tables: FUSE requests per workload and system (the kernel's count),
and per opcode the count, the kernel's round trip and, for unionfs, the time in its handler.

Pure: built from the samples alone (the first run of each workload, layer count and pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.timing import Sample

# unionfs handler names that are not their opcode's name in lower case
HANDLER_OPCODE = {"readdir": "READDIRPLUS", "forget": "FORGET"}


def _key(s: Sample) -> tuple[str, int, str]:
    return (s.workload, s.layers, s.pass_)


def _first(samples: Sequence[Sample]) -> dict[tuple[str, int, str], dict[str, Sample]]:
    got: dict[tuple[str, int, str], dict[str, Sample]] = {}
    for s in samples:
        if s.requests is not None or s.handlers is not None or s.seconds is not None:
            got.setdefault(_key(s), {}).setdefault(s.system, s)
    return got


def _ops(s: Sample | None) -> dict[str, dict[str, float]]:
    if s is None or s.requests is None:
        return {}
    ops = s.requests.get("ops", {})
    assert isinstance(ops, dict)
    return ops


def _handlers(s: Sample | None) -> dict[str, dict[str, float]]:
    if s is None or s.handlers is None:
        return {}
    return {HANDLER_OPCODE.get(k, k.upper()): v for k, v in s.handlers.items()}


def _n(v: object) -> str:
    return f"{int(v):,}" if isinstance(v, (int, float)) else "-"


def _us(seconds: float, count: float) -> str:
    return f"{seconds / count * 1e6:.0f}" if count else "-"


def requests_table(samples: Sequence[Sample], systems: Sequence[str]) -> str:
    """One line per workload and pass: each FUSE system's requests (and the pass's seconds),
    and unionfs's requests over fuse-overlayfs's."""
    first = _first(samples)
    fuse = [n for n in systems if any(n in by and by[n].requests for by in first.values())]
    ratio = "unionfs" in fuse and "fuse-overlayfs" in fuse
    head = "| workload | layers | pass | " + " | ".join(f"{n}: requests (s)" for n in fuse)
    head += " | unionfs / fuse-overlayfs requests |" if ratio else " |"
    lines = [head, "|---|---:|---|" + "---:|" * (len(fuse) + ratio)]
    for key, by in first.items():
        counts: dict[str, int] = {}
        cells = []
        for n in fuse:
            s = by.get(n)
            got = (s.requests or {}).get("requests") if s is not None else None
            if not isinstance(got, int) or s is None:
                cells.append("-")
                continue
            counts[n] = got
            secs = "-" if s.seconds is None else f"{s.seconds:.3f}"
            cells.append(f"{got:,} ({secs})")
        if ratio:
            a, b = counts.get("unionfs"), counts.get("fuse-overlayfs")
            cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def opcode_tables(samples: Sequence[Sample], systems: Sequence[str]) -> str:
    """Per workload and pass, per opcode: each system's requests (and how many were answered
    with an error, e.g. ENODATA for a missing xattr) and mean round trip (µs);
    unionfs's handler count and mean time inside the handler (µs), and the handler's share
    of the round trip."""
    parts = []
    for key, by in _first(samples).items():
        fuse = [n for n in systems if n in by and by[n].requests]
        if not fuse:
            continue
        per = {n: _ops(by[n]) for n in fuse}
        mine = "unionfs" if "unionfs" in by else None
        handlers = _handlers(by.get(mine)) if mine else {}
        names = sorted(set().union(*per.values(), handlers),
                       key=lambda op: -max([per[n].get(op, {}).get("requests", 0)
                                            for n in fuse] or [0]))  # fmt: skip
        head = "| opcode | " + " | ".join(f"{n} n | {n} µs" for n in fuse)
        sep = "|---|" + "---:|" * (2 * len(fuse))
        if handlers:
            head += " | unionfs handler n | handler µs | handler s"
            sep += "---:|---:|---:|"
        lines = [f"### {key[0]}, {key[1]} layer(s), {key[2]}", "", head + " |", sep]
        for op in names:
            cells = []
            for n in fuse:
                st = per[n].get(op, {})
                errs: object = st.get("errors") or {}
                bad = sum(errs.values()) if isinstance(errs, dict) else 0
                failed = f" ({bad:,} failed)" if bad else ""
                cells += [_n(st.get("requests")) + failed,
                          _us(st.get("seconds", 0.0), st.get("answered", 0))]  # fmt: skip
            if handlers:
                h = handlers.get(op, {})
                cells += [_n(h.get("requests")), _us(h.get("seconds", 0.0), h.get("requests", 0)),
                          f"{h.get('seconds', 0.0):.3f}" if h else "-"]  # fmt: skip
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        totals = []
        for n in fuse:
            s = by[n]
            req = s.requests or {}
            rt = sum(v.get("seconds", 0.0) for v in _ops(s).values())
            cpu = f", daemon CPU {s.daemon_cpu:.2f} s" if s.daemon_cpu is not None else ""
            lost = req.get("lost_events")
            totals.append(
                f"{n}: {_n(req.get('requests'))} requests in "
                f"{'-' if s.seconds is None else f'{s.seconds:.3f}'} s wall, summed round trips "
                f"{rt:.3f} s{cpu}{f', {lost} trace events LOST' if lost else ''}"
            )
        if handlers:
            inside = sum(h.get("seconds", 0.0) for h in handlers.values())
            totals.append(f"unionfs: {inside:.3f} s inside its handlers")
        lines += ["", "; ".join(totals) + ".", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)
