"""Room templates render row values into room names."""

from __future__ import annotations

import pytest

from cdc_sio.templates import Template, TemplateError


@pytest.mark.parametrize(
    ("text", "row", "room"),
    [
        ("thing:{id}", {"id": 7}, "thing:7"),
        ("org:{org_id}:{kind}", {"org_id": 1, "kind": "a b"}, "org:1:a b"),
        ("static", {}, "static"),
        ("{{literal}}:{id}", {"id": 1}, "{literal}:1"),
        ("flag:{on}", {"on": True}, "flag:true"),
        ("f:{x}", {"x": 1.5}, "f:1.5"),
        ("j:{x}", {"x": {"b": 1, "a": [2]}}, 'j:{"a":[2],"b":1}'),
        ("{Mixed Case}", {"Mixed Case": "é"}, "é"),
    ],
)
def test_render(text: str, row: dict[str, object], room: str) -> None:
    assert Template.parse(text).render(row) == room


def test_null_value_means_no_room() -> None:
    assert Template.parse("org:{org_id}").render({"org_id": None}) is None


def test_columns_are_listed() -> None:
    assert Template.parse("a:{x}:{y}").columns == ("x", "y")


@pytest.mark.parametrize("text", ["a:{x", "a:{}", "a}b"])
def test_malformed_templates_are_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        Template.parse(text)


def test_missing_column_names_template_and_column() -> None:
    with pytest.raises(TemplateError, match=r"template 'a:\{x\}': the row has no column 'x'"):
        Template.parse("a:{x}").render({"y": 1})


@pytest.mark.parametrize(
    "value",
    [7, -3, 2**70, "a b", "", True, False, 1.5, None, {"b": 1, "a": [2]}, [1, "x"]],
)
@pytest.mark.parametrize("text", ["{x}", "thing:{x}", "{x}:end", "{{a}}:{x}:{{b}}"])
def test_one_column_templates_render_like_the_general_path(text: str, value: object) -> None:
    template = Template.parse(text)
    general = Template(template.text, template.parts)  # without the one-column shortcut
    assert template.one_column is not None and general.one_column is None
    assert template.render({"x": value}) == general.render({"x": value})
    assert template == general
