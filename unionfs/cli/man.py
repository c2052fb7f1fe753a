"""``unionfs man [VERB...]``: the manual page of unionfs or a verb, generated from the parser
(synopsis, description, arguments, options, choices), through ``man -l`` on a terminal and
as roff otherwise; ``tools/manpages.py DIR`` writes them all. Generated at run time rather
than kept as docs/man/*.1: a kept page goes stale the day a flag changes; this one is the
parser, and needs no build step.
"""

from __future__ import annotations

import argparse
import datetime
import re
import shutil
import subprocess
import sys

from unionfs import __version__
from unionfs.cli import parsertree
from unionfs.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("man", help="show the manual page of unionfs or of a command",
                       description=__doc__)  # fmt: skip
    p.add_argument("verb", nargs="*", metavar="VERB", help="e.g. images, or image ls")


def _roff(text: str) -> str:
    """Text safe in roff: backslashes and dashes escaped, no line starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text, flags=re.MULTILINE)


def _flag(action: argparse.Action) -> str:
    names = ", ".join(f"\\fB{_roff(o)}\\fR" for o in action.option_strings)
    if parsertree.takes_value(action):
        choices = "{" + ",".join(str(c) for c in action.choices or ()) + "}"
        metavar = action.metavar or (choices if action.choices else action.dest.upper())
        names += f" \\fI{_roff(str(metavar))}\\fR"
    return names


def page(verb: parsertree.Verb, date: str | None = None) -> str:
    """The roff source of *verb*'s manual page (section 1)."""
    title = "-".join(("unionfs", *verb.path))
    date = date or datetime.date.today().isoformat()
    summary = verb.help or "a union filesystem in userspace, and containers on it"
    lines = [f'.TH "{title.upper()}" "1" "{date}" "unionfs {__version__}" "User Commands"',
             ".SH NAME", f"{_roff(title)} \\- {_roff(summary)}", ".SH SYNOPSIS", ".nf",
             _roff(verb.parser.format_usage().removeprefix("usage: ").strip()), ".fi"]
    description = verb.parser.description or verb.help
    if description:
        lines += [".SH DESCRIPTION", _roff(" ".join(description.split()))]
    if verb.aliases:
        lines.append(f"Also spelled: {_roff(', '.join(verb.aliases))}.")
    subverbs = verb.subverbs()
    if subverbs:
        lines.append(".SH COMMANDS")
        for child in parsertree.walk(verb.parser, verb.path):
            if len(child.path) == len(verb.path) + 1:
                lines += [".TP", f"\\fB{_roff(child.path[-1])}\\fR", _roff(child.help or "")]
    positionals = [a for a in verb.positionals() if a.help != argparse.SUPPRESS]
    if positionals:
        lines.append(".SH ARGUMENTS")
        for action in positionals:
            lines += [".TP", f"\\fI{_roff(str(action.metavar or action.dest))}\\fR",
                      _roff(action.help or "")]  # fmt: skip
    flags = verb.flags()
    if flags:
        lines.append(".SH OPTIONS")
        for action in flags:
            text = action.help or ""
            if action.choices and "{" not in _flag(action):
                text += f" (one of: {', '.join(str(c) for c in action.choices)})"
            lines += [".TP", _flag(action), _roff(" ".join(text.split()) % {
                "default": action.default, "prog": verb.parser.prog})]  # fmt: skip
    related = [f"unionfs\\-{'-'.join(v)}(1)" for v in ([verb.path[:-1]] if verb.path else [])
               if v]  # fmt: skip
    lines += [".SH SEE ALSO", ", ".join([*related, "unionfs(1)"] if verb.path else ["podman(1)"])]
    return "\n".join(lines) + "\n"


def find(parser: argparse.ArgumentParser, words: list[str]) -> parsertree.Verb:
    for verb in parsertree.walk(parser):
        names = {verb.path, (*verb.path[:-1], *verb.aliases[:1])} if verb.path else {()}
        if tuple(words) in names or (verb.aliases and tuple(words[:-1]) == verb.path[:-1]
                                     and words[-1:] and words[-1] in verb.aliases):  # fmt: skip
            return verb
    raise UserError(f"no manual page for {' '.join(words)!r}: see unionfs --help", exit_code=2)


def run(args: argparse.Namespace) -> int:
    from unionfs.cli import build_parser

    text = page(find(build_parser(), args.verb))
    if sys.stdout.isatty() and shutil.which("man"):
        return subprocess.run(["man", "-l", "-"], input=text.encode(), check=False).returncode
    sys.stdout.write(text)
    return 0
