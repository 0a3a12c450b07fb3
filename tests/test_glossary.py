"""The Eventos de conexión page's glossary (server/web/ui/glossary.js) says what README.md's
"Event vocabulary" says, word for word, and covers the server's whole vocabulary: the two
cannot drift apart.

glossary.js keeps its data as strict JSON between two markers, read here as it is served.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pytest

from presence_protocol import DEFAULT_STATUSES, SYSTEM_VALUES
from server.state import ACD, DISCONNECT_REASONS, SYSTEM_CHANGED, USER_CHANGED

ROOT: Final = Path(__file__).parent.parent
GLOSSARY_JS: Final = ROOT / "server/web/ui/glossary.js"
README: Final = ROOT / "README.md"


def glossary() -> dict[str, Any]:
    source = GLOSSARY_JS.read_text(encoding="utf-8")
    found = re.search(r"/\* glossary-json \*/(.*?)/\* end-glossary-json \*/", source, re.DOTALL)
    assert found, "glossary.js lost its /* glossary-json */ … /* end-glossary-json */ markers"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def vocabulary_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Event vocabulary\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def tables(section: str) -> dict[tuple[str, ...], list[list[str]]]:
    """The section's Markdown tables, by their header row: each row's cells, stripped."""
    found: dict[tuple[str, ...], list[list[str]]] = {}
    block: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if block:
            header, separator, *rows = block
            assert all(set(cell) <= set("-: ") for cell in separator), block
            assert tuple(header) not in found, f"two tables headed {header}"
            found[tuple(header)] = rows
            block = []
    return found


def plain(cell: str) -> str:
    """A cell's text without Markdown code marks."""
    return cell.replace("`", "")


def word(cell: str) -> str:
    match = re.fullmatch(r"`([a-z0-9-]+)`", cell)
    assert match, f"{cell!r} is not a `value`"
    return match.group(1)


TABLES: Final = tables(vocabulary_section())
TYPES: Final = TABLES[("Tipo", "Descripción", "description")]
SYSTEM: Final = TABLES[("Valor", "Tipo", "Descripción", "description")]
STATUSES: Final = TABLES[("Valor", "Descripción", "description")]
REASONS: Final = TABLES[("reason", "when")]


def test_the_readme_has_the_tables_this_test_reads() -> None:
    assert len(TABLES) == 4
    assert len(TYPES) == 3 and len(SYSTEM) == 12 and len(STATUSES) == 6 and len(REASONS) == 11


@pytest.mark.parametrize(
    ("rows", "key"),
    [(TYPES, "types"), (STATUSES, "statuses")],
    ids=["Tipo", "Valor-statuses"],
)
def test_types_and_default_statuses_say_what_the_readme_says(
    rows: list[list[str]], key: str
) -> None:
    entries = glossary()[key]
    readme = {word(name): (es, plain(en)) for name, es, en in rows}
    assert list(entries) == list(readme)  # the same words, in the README's order
    for name, (es, en) in readme.items():
        assert entries[name]["es"] == es, name
        assert entries[name]["en"] == en, name


def test_system_values_say_what_the_readme_says_with_their_types() -> None:
    values = glossary()["values"]
    readme = {word(value): row for value, *row in SYSTEM}
    assert list(values) == list(readme)
    for value, (types, es, en) in readme.items():
        assert values[value]["types"] == types.split(", "), value
        assert values[value]["es"] == es, value
        assert values[value]["en"] == plain(en), value


def test_disconnect_reasons_say_what_the_readme_says_in_both_languages() -> None:
    reasons = glossary()["reasons"]
    readme = {word(reason): plain(when) for reason, when in REASONS}
    assert list(reasons) == list(readme)
    for reason, when in readme.items():
        assert reasons[reason]["en"] == when, reason
        # The README has no Spanish column for these: the page's own, present and not English.
        assert reasons[reason]["es"] and reasons[reason]["es"] != when, reason


def test_release_reasons_are_the_readmes_with_its_spanish_words() -> None:
    section = vocabulary_section()
    start = re.search(r"A release\s+may give a reason", section)
    assert start, "the README no longer lists the release reasons"
    paragraph = " ".join(section[start.start() :].split("\n\n")[0].split())
    readme = dict(re.findall(r"`([a-z-]+)` \(([^)]+)\)", paragraph))
    assert len(readme) == 4, paragraph
    releases = glossary()["releaseReasons"]
    assert list(releases) == list(readme)
    for reason, spanish in readme.items():
        assert releases[reason]["es"].lower() == spanish.lower(), reason
        assert releases[reason]["en"], reason


def test_the_glossary_covers_the_servers_vocabulary() -> None:
    data = glossary()
    assert set(data["types"]) == {SYSTEM_CHANGED, USER_CHANGED, ACD}
    assert set(data["values"]) == SYSTEM_VALUES
    assert tuple(data["statuses"]) == DEFAULT_STATUSES
    assert set(data["reasons"]) == DISCONNECT_REASONS
    for entries in data.values():
        for name, entry in entries.items():
            assert set(entry) >= {"es", "en"}, name
    for name, entry in data["types"].items():
        assert set(entry["short"]) == {"es", "en"}, name
