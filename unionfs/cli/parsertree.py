"""The command tree of the built parser, for what is generated from it (``completion``,
``man``): each verb's path (``("image", "ls")``), its parser, its flags and its choices.
It reads argparse's own structures; nothing is written down twice."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verb:
    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str
    aliases: tuple[str, ...]

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def subverbs(self) -> list[str]:
        return [c for a in self.parser._actions if isinstance(a, argparse._SubParsersAction)
                for c in a.choices]  # fmt: skip

    def flags(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions
                if a.option_strings and a.help != argparse.SUPPRESS]  # fmt: skip

    def positionals(self) -> list[argparse.Action]:
        sub = argparse._SubParsersAction
        return [a for a in self.parser._actions
                if not a.option_strings and not isinstance(a, sub)]  # fmt: skip


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Verb]:
    """*parser* and every verb below it, each once (aliases are listed with their verb)."""
    yield Verb(path, parser, parser.description or "", ())
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {c.dest: c.help or "" for c in action._choices_actions}
        seen: dict[int, list[str]] = {}
        for name, sub in action.choices.items():
            seen.setdefault(id(sub), []).append(name)
        for names in seen.values():
            sub = action.choices[names[0]]
            for verb in walk(sub, (*path, names[0])):
                if verb.path == (*path, names[0]):
                    yield Verb(verb.path, sub, helps.get(names[0], ""), tuple(names[1:]))
                else:
                    yield verb


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0 and not isinstance(
        action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._HelpAction
        | argparse._VersionAction | argparse._CountAction | argparse._StoreConstAction
    )
