"""The Go-template subset of ``--format``: what people write in podman formats renders as
Go's text/template renders it, and every mistake is one line."""

from __future__ import annotations

import pytest

from unionfs.cli.gotemplate import execute, parse
from unionfs.cli.govalues import GoMap, TemplateError, go_str

ROW = {
    "ID": "96f83566ac05", "Names": ["localhost/bb:latest", "localhost/bb:v2"],
    "Labels": GoMap({"app": "web", "tier": "1"}), "Size": 1997905, "Dangling": False,
    "Config": {"Cmd": ["sh", "-c", "echo hi"], "Env": None, "State": {"Status": "exited"}},
    "Empty": [], "Ratio": 0.5,
}  # fmt: skip


def render(template: str, value: object = ROW) -> str:
    return execute(parse(template), value)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.ID}}", "96f83566ac05"),
        ("{{.Names}}", "[localhost/bb:latest localhost/bb:v2]"),  # a slice as Go prints it
        ("{{.Labels}}", "map[app:web tier:1]"),  # a map: keys sorted
        ("{{.Config.State.Status}}", "exited"),  # nested fields
        ("{{.Config.Cmd}}", "[sh -c echo hi]"),
        ("{{.Size}} {{.Dangling}} {{.Ratio}}", "1997905 false 0.5"),
        ("{{json .Names}}", '["localhost/bb:latest","localhost/bb:v2"]'),
        ("{{json .Config.Cmd}}", '["sh","-c","echo hi"]'),
        ("{{.Names | json}}", '["localhost/bb:latest","localhost/bb:v2"]'),
        ("{{.Labels.app}} {{.Labels.none}}", "web <no value>"),  # a missing map key
        ('{{index .Labels "tier"}}|{{index .Labels "none"}}|', "1||"),
        ("{{index .Names 1}}", "localhost/bb:v2"),
        ('{{join .Names ","}}', "localhost/bb:latest,localhost/bb:v2"),
        ("{{len .Names}} {{len .Empty}}", "2 0"),
        ("{{upper .ID}} {{lower \"AB\"}} {{title \"web app\"}}", "96F83566AC05 ab Web App"),
        ('{{printf "%-14s|%8d|%q" .ID .Size "x"}}', '96f83566ac05  | 1997905|"x"'),
        ('{{if eq .ID "96f83566ac05"}}same{{else}}other{{end}}', "same"),
        ("{{if .Empty}}a{{else if .Dangling}}b{{else}}c{{end}}", "c"),
        ("{{if not .Dangling}}kept{{end}}", "kept"),
        ("{{if and .ID .Names}}both{{end}}{{if or .Empty .Dangling}}x{{end}}", "both"),
        ("{{range .Names}}<{{.}}>{{end}}", "<localhost/bb:latest><localhost/bb:v2>"),
        ("{{range $i, $n := .Names}}{{$i}}={{$n}};{{end}}",
         "0=localhost/bb:latest;1=localhost/bb:v2;"),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}", "app=web tier=1 "),
        ("{{range .Empty}}x{{else}}none{{end}}", "none"),
        ("{{with .Config.State}}{{.Status}}{{end}}", "exited"),
        ("{{.ID}}  {{- \" x\" -}}  !", "96f83566ac05 x!"),  # trim markers
        ("a{{/* a comment */}}b", "ab"),
        ("{{.id}}", "96f83566ac05"),  # as podman's docs spell some fields
        ('{{(index .Names 0)}}', "localhost/bb:latest"),
        ("{{$.ID}}", "96f83566ac05"),
    ],
)
def test_template_renders_as_go_does(template: str, expected: str) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{.Foo}}", "can't evaluate field Foo"),
        ("{{.ID.Sub}}", "can't evaluate field Sub in type string"),
        ("{{bogus .ID}}", 'function "bogus" not defined'),
        ("{{if .ID}}open", "has no {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{.ID | .Names}}", "non-function"),
        ("{{$x}}", 'undefined variable "$x"'),
    ],
)
def test_template_mistakes_are_one_line(template: str, said: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template)
    assert said in info.value.message and "\n" not in info.value.message
    assert info.value.exit_code == 2


def test_values_print_as_go_prints_them() -> None:
    assert go_str(None) == "<nil>"
    assert go_str(True) == "true"
    assert go_str(3.0) == "3"
    assert go_str({"A": 1, "B": "x"}) == "{1 x}"  # a struct: its values
    assert go_str(GoMap({"b": 2, "a": 1})) == "map[a:1 b:2]"
