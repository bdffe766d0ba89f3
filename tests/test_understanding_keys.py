"""Every "check your understanding" question has an answer key, and the keys stay instructor-only.

The questions are the numbered lines after a notebook's "Check your understanding" heading; the keys live in
``grading/understanding/<notebook stem>.md`` as ``## Q1``, ``## Q2``, ... sections, each with an answer and a
``Marks:`` line. Nothing under ``grading/`` is released, and no key sentence may appear in a notebook.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kdcourse import notebooks as nt

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT / "grading" / "understanding"
NOTEBOOKS = nt.list_notebooks()
HEADING = re.compile(r"check your understanding", re.IGNORECASE)
QUESTION = re.compile(r"^(\d+)\.\s")
END = re.compile(r"^(#|\*\*References)")


def questions(text: str) -> list[int]:
    """The numbers of the questions listed after the "Check your understanding" heading of ``text``."""
    match = HEADING.search(text)
    if match is None:
        return []
    numbers = []
    for line in text[match.end():].split("\n")[1:]:
        if END.match(line):
            break
        found = QUESTION.match(line)
        if found:
            numbers.append(int(found.group(1)))
    return numbers


def key_sections(text: str) -> dict[int, str]:
    sections = re.split(r"^## Q(\d+)\s*$", text, flags=re.MULTILINE)
    return {int(number): body.strip() for number, body in zip(sections[1::2], sections[2::2])}


def notebook_questions(path: Path) -> list[int]:
    return [n for cell in nt.read_notebook(path).cells if cell.cell_type == "markdown"
            for n in questions(cell.source)]


def test_the_question_reader_can_fail():
    text = "## Summary\n\n**Check your understanding.**\n1. Why?\n   more\n2. How?\n\n**References.** x\n3. no"
    assert questions(text) == [1, 2]
    assert questions("no questions here\n1. a list") == []
    assert key_sections("# t\n## Q1\nA.\nMarks: a\n## Q2\nB.") == {1: "A.\nMarks: a", 2: "B."}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_question_has_a_key_with_a_mark_scheme(path: Path):
    numbers = notebook_questions(path)
    key_file = KEYS / f"{path.stem}.md"
    if not numbers:
        assert not key_file.exists(), f"{key_file.name} has keys but {path.name} asks no questions"
        return
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: questions numbered {numbers}"
    assert key_file.exists(), f"{path.name} asks {len(numbers)} questions but grading/understanding has no key"
    sections = key_sections(key_file.read_text(encoding="utf-8"))
    assert sorted(sections) == numbers, f"{key_file.name}: keys {sorted(sections)} for questions {numbers}"
    for number, body in sections.items():
        answer, _, marks = body.partition("Marks:")
        assert len(answer.split()) >= 15, f"{key_file.name} Q{number}: the answer is too short to be a key"
        assert marks.strip(), f"{key_file.name} Q{number}: no 'Marks:' line"


def test_lectures_two_to_five_ask_their_own_questions():
    asked = {path.stem for path in NOTEBOOKS if path.parent.name == "lectures" and notebook_questions(path)}
    assert {"l02_temperature_and_distillation_loss", "l03_teacher_student", "l04_dissimilarity_and_reverse_kl",
            "l05_distilling_language_models"} <= asked


def test_no_key_sentence_appears_in_a_notebook():
    prose = "\n".join(cell.source for path in NOTEBOOKS for cell in nt.read_notebook(path).cells)
    flat = " ".join(prose.split())
    for key_file in sorted(KEYS.glob("*.md")):
        for body in key_sections(key_file.read_text(encoding="utf-8")).values():
            for sentence in re.split(r"(?<=[.;:])\s+", " ".join(body.split())):
                if len(sentence.split()) >= 8:
                    assert sentence not in flat, f"{key_file.name}: {sentence!r} is in a notebook"
