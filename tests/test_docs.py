"""The docs stay true to the code: every module is described, every setting listed."""

from __future__ import annotations

from pathlib import Path

from kgcelery.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _sections(text: str) -> dict[str, str]:
    """Markdown '## ' sections by the first word of their heading."""
    sections: dict[str, str] = {}
    for chunk in text.split("\n## ")[1:]:
        heading, _, body = chunk.partition("\n")
        sections[heading.split()[0]] = body
    return sections


def test_architecture_describes_every_module() -> None:
    """Each module is named (by its path inside its folder) in its folder's section."""
    sections = _sections((ROOT / "docs" / "ARCHITECTURE.md").read_text())
    missing = []
    for path in sorted((ROOT / "kgcelery").rglob("*.py")):
        if path.name == "__init__.py":
            continue
        parts = path.relative_to(ROOT / "kgcelery").parts
        folder, name = (f"{parts[0]}/", "/".join(parts[1:])) if len(parts) > 1 else ("Top",
                                                                                     parts[0])
        if f"`{name}`" not in sections.get(folder, ""):
            missing.append("/".join(parts))
    assert not missing, f"docs/ARCHITECTURE.md does not describe {missing}"


def test_readme_lists_every_setting_and_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    missing = [f"KGCELERY_{name.upper()}" for name in Settings.model_fields
               if f"`KGCELERY_{name.upper()}`" not in text]
    assert not missing, f"README.md's configuration table lacks {missing}"
    lines = [line.strip() for line in text.splitlines()]
    assert "make up" in lines and "make test" in lines


def test_settings_docstring_names_every_field() -> None:
    doc = Settings.__doc__ or ""
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in doc]
    assert not missing, f"Settings' docstring does not explain {missing}"
