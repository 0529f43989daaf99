"""Template files: JSON or YAML (safe_load only), every problem a ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.template import load_template

DATA = Path(__file__).parent / "data" / "issue4"
ROW = {"name": "Ava", "script": "Hello Ava", "speed": "1.1"}


def test_json_and_yaml_templates_render_the_same_body() -> None:
    from_json = load_template(DATA / "template.json")
    from_yaml = load_template(DATA / "template.yaml")

    assert from_json.render(ROW) == from_yaml.render(ROW)
    assert from_json.columns == {"name", "script", "speed"}
    assert from_yaml.render(ROW)["video_inputs"][0]["voice"]["input_text"] == "Hello Ava"


def test_a_yaml_python_object_tag_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.yml"
    path.write_text(f'title: !!python/object/apply:os.system ["touch {marker}"]\n')

    with pytest.raises(ConfigError, match=r"!!python/object\) are not allowed"):
        load_template(path)
    with pytest.raises(ConfigError, match="are not allowed in a template"):
        load_template(DATA / "python-object.yaml")
    assert not marker.exists()


def test_a_yaml_date_must_be_quoted(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("title: 2024-01-31\nvideo_inputs: []\n")

    with pytest.raises(ConfigError, match="quote dates"):
        load_template(path)


def test_a_self_referencing_yaml_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("video_inputs: &loop [*loop]\n")

    with pytest.raises(ConfigError, match="nested too deeply"):
        load_template(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("t.json", b'{"title": "x",}', "not valid JSON at line 1 column 15"),
        ("t.json", b"[1, 2]", "must be an object"),
        ("t.yaml", b"", "must be an object"),
        ("t.yaml", b"title: [unclosed\n", "not valid YAML"),
        ("t.json", b'{"title": "Jos\xe9"}', "not UTF-8"),
        ("t.json", b"[" * 100_000, "nested too deeply"),
    ],
)
def test_unusable_template_files(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(ConfigError, match=message):
        load_template(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such template file"):
        load_template(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="is a directory"):
        load_template(tmp_path)


def test_a_bom_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"title": "{{ x }}"}).encode())

    assert load_template(path).render({"x": "y"}) == {"title": "y"}
