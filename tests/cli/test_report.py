"""The one printer of listings: ``--format json``/``{{json .}}``, templates, ``table``
headers and columns laid out as podman's tabwriter lays them out (outputs copied from
podman 4.3 on the same image)."""

from __future__ import annotations

import json

import pytest

from unionfs.cli import report
from unionfs.cli.govalues import TemplateError

ROWS = [
    {"Repository": "localhost/bb", "Tag": "latest", "ID": "96f83566ac05",
     "CreatedSince": "About a minute ago", "Size": "2 MB", "VirtualSize": 1997905},
    {"Repository": "localhost/bb", "Tag": "v2", "ID": "96f83566ac05",
     "CreatedSince": "About a minute ago", "Size": "2 MB", "VirtualSize": 1997905},
]  # fmt: skip
DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {"ID": "IMAGE ID", "CreatedSince": "CREATED"}
LISTING = report.Listing(ROWS, [{"Id": "96f8"}], DEFAULT, HEADERS)


def test_default_table_is_laid_out_as_podman_images() -> None:
    assert report.render(LISTING, None) == (
        "REPOSITORY    TAG         IMAGE ID      CREATED             SIZE\n"
        "localhost/bb  latest      96f83566ac05  About a minute ago  2 MB\n"
        "localhost/bb  v2          96f83566ac05  About a minute ago  2 MB\n"
    )


def test_table_template_with_typed_tabs_gets_headers_from_field_names() -> None:
    # podman images --format 'table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.VirtualSize}}'
    out = report.render(LISTING, r"table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.VirtualSize}}")
    assert out == (
        "IMAGE ID      REPOSITORY:TAG       VIRTUAL SIZE\n"
        "96f83566ac05  localhost/bb:latest  1997905\n"
        "96f83566ac05  localhost/bb:v2      1997905\n"
    )


def test_a_plain_template_is_one_line_per_row_and_not_aligned() -> None:
    out = report.render(LISTING, r"{{.ID}}\t{{.Repository}}")
    assert out == "96f83566ac05\tlocalhost/bb\n96f83566ac05\tlocalhost/bb\n"


def test_noheading_drops_the_header_row() -> None:
    assert report.render(LISTING, None, noheading=True).splitlines()[0].startswith("localhost/bb")


@pytest.mark.parametrize("fmt", ["json", "JSON", "{{json .}}", "{{ json . }}"])
def test_json_and_json_dot_print_the_verbs_json(fmt: str) -> None:
    assert json.loads(report.render(LISTING, fmt)) == [{"Id": "96f8"}]


def test_an_unclosed_action_is_an_error() -> None:
    with pytest.raises(TemplateError):
        report.render(LISTING, "{{.ID")


def test_header_names_split_camel_case_as_podman() -> None:
    assert report.header_name("CreatedAt") == "CREATED AT"
    assert report.header_name("ID") == "ID"
    assert report.header_name("VirtualSize") == "VIRTUAL SIZE"
    assert report.header_name("ImageID") == "IMAGE ID"


def test_tabwriter_aligns_blocks_as_go() -> None:
    # cells at least 12 wide, 2 of padding, the last cell of a line not aligned
    assert report.tabwriter("a\tb\tc\nlonger-than-twelve\tx\ty\n") == (
        "a                   b           c\n"
        "longer-than-twelve  x           y\n"
    )
    # a line with fewer cells ends a column block
    assert report.tabwriter("a\tb\nc\nd\te\n") == "a           b\nc\nd           e\n"
