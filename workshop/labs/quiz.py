"""The module's quiz: the student handout, and scoring students' answer files.

``quiz.yml`` beside this file holds the questions and the key. Students get ``QUIZ.md``
(the questions) and ``answers.yml`` (a blank per question); ``grade_files`` scores what
they hand back. A multiple-choice answer is right when its letter is the key's; a short
answer scores when it names at least ``need`` of its keyword groups, and the result says
which it matched and which it did not, so an instructor can review every one. Nothing is
printed here: the CLI renders what these functions return.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from workshop import state, yamlfile
from workshop.errors import WorkshopError
from workshop.labs import LABS_DIR

QUIZ_FILE = LABS_DIR / "quiz" / "quiz.yml"
GRADED, ERROR = "graded", "error"


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1)
    topic: str
    kind: Literal["choice", "short"]
    text: str
    options: dict[str, str] = {}
    answer: str = ""
    why: str = ""
    groups: list[list[str]] = []
    need: int = 0
    model_answer: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.kind == "choice":
            if len(self.options) < 2 or self.answer not in self.options:
                raise ValueError(f"question {self.id}: the answer must be one of its options")
        elif not self.groups or not 1 <= self.need <= len(self.groups):
            raise ValueError(
                f"question {self.id}: a short answer needs groups and 1 <= need <= groups"
            )
        return self


class Quiz(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    pass_percent: int = Field(ge=1, le=100)
    questions: list[Question]

    @model_validator(mode="after")
    def _unique(self) -> Quiz:
        ids = [question.id for question in self.questions]
        if len(set(ids)) != len(ids):
            raise ValueError("question ids must be unique")
        return self

    @property
    def pass_mark(self) -> int:
        """Questions right needed to pass (70% of 20 is 14)."""
        return -(-len(self.questions) * self.pass_percent // 100)


def load(path: Path = QUIZ_FILE) -> Quiz:
    return yamlfile.load_model(path, Quiz)


# --- the handout ------------------------------------------------------------------------


def handout_markdown(quiz: Quiz) -> str:
    """The questions as students see them: no key, no model answers."""
    lines = [
        f"# {quiz.title}",
        "",
        f"{len(quiz.questions)} questions. Write your answers in `answers.yml` (a letter for "
        "a multiple-choice question, a sentence or two for a short answer) and hand that file "
        f"in. You pass with {quiz.pass_mark} right ({quiz.pass_percent}%).",
        "",
    ]
    topic = None
    for question in quiz.questions:
        if question.topic != topic:
            topic = question.topic
            lines += [f"## {topic}", ""]
        kind = "multiple choice" if question.kind == "choice" else "short answer"
        lines += [f"**{question.id}.** {question.text.strip()} *({kind})*", ""]
        lines += [f"- {letter}) {option}" for letter, option in question.options.items()]
        lines += [""] if question.options else []
    return "\n".join(lines)


def answers_template(quiz: Quiz) -> str:
    lines = [
        "# Your quiz answers: a letter (a, b, c or d) for multiple choice, a sentence or two",
        "# for a short answer. Keep the numbers; a blank answer counts as wrong.",
        'student: ""  # your login, e.g. student07',
        "answers:",
    ]
    lines += [f'  {question.id}: ""' for question in quiz.questions]
    return "\n".join(lines) + "\n"


def write_handout(directory: Path, quiz: Quiz | None = None) -> list[Path]:
    """QUIZ.md and answers.yml in ``directory``; returns their paths."""
    quiz = quiz or load()
    directory.mkdir(parents=True, exist_ok=True)
    files = {"QUIZ.md": handout_markdown(quiz), "answers.yml": answers_template(quiz)}
    written = []
    for name, text in files.items():
        path = directory / name
        state.write_file(path, text)
        written.append(path)
    return written


# --- grading ----------------------------------------------------------------------------


@dataclass
class Answer:
    id: int
    kind: str
    given: str
    correct: bool
    expected: str  # the key's letter, or the short answer's model answer
    matched: list[str] = field(default_factory=list)  # short answers: the words found
    missing: list[list[str]] = field(default_factory=list)  # groups not named
    review: bool = False  # a short answer an instructor should read
    note: str = ""


@dataclass
class QuizResult:
    file: str
    status: str
    student: str = ""
    score: int = 0
    total: int = 0
    pass_mark: int = 0
    passed: bool = False
    message: str = ""
    answers: list[Answer] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[-_/]+", " ", text.lower()).split())


def _names(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z0-9]){re.escape(_normalise(word))}(?![a-z0-9])", text) is not None


def _choice_letter(given: str, options: dict[str, str]) -> str | None:
    """'b', 'B', '(b)', 'b)' or 'b. The Docker daemon' all mean b."""
    match = re.match(r"\s*\(?([a-z])\b", given.lower())
    return match.group(1) if match and match.group(1) in options else None


# A short answer is "a sentence or two": one much longer is read by the instructor.
LONG_ANSWER_WORDS = 80


def _given_by_question(question: Question) -> set[str]:
    """The keywords the question's own text already names: repeating them shows nothing."""
    text = _normalise(question.text)
    return {word for group in question.groups for word in group if _names(text, word)}


def _named_groups(question: Question, normal: str) -> tuple[list[str], list[list[str]]]:
    """(the first word named of each group, the groups not named), the question's own
    words left out."""
    given = _given_by_question(question)
    matched, missing = [], []
    for group in question.groups:
        found = next((w for w in group if w not in given and _names(normal, w)), None)
        if found:
            matched.append(found)
        else:
            missing.append(group)
    return matched, missing


def score_answer(question: Question, given: Any, others: list[Question] | None = None) -> Answer:
    """One answer. A short answer also scoring the keywords of other questions is a list
    of the quiz's keywords, not an answer: not counted, and shown for review."""
    text = "" if given is None else str(given).strip()
    if question.kind == "choice":
        letter = _choice_letter(text, question.options)
        note = "" if letter or not text else f"not one of {', '.join(question.options)}"
        return Answer(
            question.id,
            question.kind,
            text,
            letter == question.answer,
            question.answer,
            note=note if text else "no answer",
        )
    normal = _normalise(text)
    matched, missing = _named_groups(question, normal)
    correct = len(matched) >= question.need
    note = "" if text else "no answer"
    dumped = [
        other.id
        for other in others or []
        if other.id != question.id
        and other.kind == "short"
        and len(_named_groups(other, normal)[0]) >= other.need
    ]
    if len(dumped) >= 2:
        correct = False
        note = (
            f"it also answers questions {', '.join(map(str, dumped))}: a list of keywords, "
            "not counted until you have read it"
        )
    elif len(text.split()) > LONG_ANSWER_WORDS:
        note = f"over {LONG_ANSWER_WORDS} words: read it"
    return Answer(
        question.id,
        question.kind,
        text,
        correct,
        question.model_answer.strip(),
        matched=matched,
        missing=missing,
        review=bool(text) and (not correct or bool(note)),
        note=note,
    )


def grade_file(path: Path, quiz: Quiz) -> QuizResult:
    """One answer file; a file that cannot be read is an error result naming the fix."""
    result = QuizResult(str(path), ERROR, total=len(quiz.questions), pass_mark=quiz.pass_mark)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        result.message = f"cannot read it ({exc.__class__.__name__}): hand in answers.yml as text"
        return result
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        result.message = (
            f"not valid YAML{where}: start again from the answers.yml template "
            "(quote an answer that has a ':' in it)"
        )
        return result
    if not isinstance(raw, dict) or not isinstance(raw.get("answers"), dict):
        result.message = "no 'answers:' mapping of question numbers to answers (see answers.yml)"
        return result
    given: dict[int, Any] = {}
    for key, value in raw["answers"].items():
        try:
            given[int(key)] = value
        except (TypeError, ValueError):
            result.warnings.append(f"'{key}' is not a question number; ignored")
    known = {question.id for question in quiz.questions}
    result.warnings += [
        f"question {number} is not in the quiz; ignored" for number in sorted(set(given) - known)
    ]
    result.student = str(raw.get("student") or "").strip() or path.stem
    result.answers = [
        score_answer(question, given.get(question.id), quiz.questions)
        for question in quiz.questions
    ]
    result.score = sum(answer.correct for answer in result.answers)
    result.passed = result.score >= quiz.pass_mark
    result.status = GRADED
    result.message = f"{result.score}/{result.total}, {'passed' if result.passed else 'not passed'}"
    return result


def grade_files(paths: list[Path], quiz: Quiz | None = None) -> list[QuizResult]:
    """Every file scored; one that cannot be is an error result, the others go on."""
    quiz = quiz or load()
    if not paths:
        raise WorkshopError("give the answer files to grade (students' answers.yml)")
    return [grade_file(path, quiz) for path in paths]
