"""The quiz: the key holds together, the handout gives nothing away, and the grader scores
answer files written the way students write them (none of them is in the repository)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workshop.errors import WorkshopError
from workshop.labs import quiz

# How a student who knows the material answers: letters in any of the usual forms, short
# answers in their own words (not the model answers).
RIGHT = {
    1: "C",
    2: "(d)",
    3: "a) they are deleted with the container",
    4: "Linux namespaces isolate what it sees, and control groups cap CPU and memory",
    5: "c",
    6: "b",
    7: "d. exec form",
    8: "a",
    9: "The USER instruction; as root, an exploit in the model server gets root privileges",
    10: "a",
    11: "c",
    12: "The final stage has no build-essential compilers and no pip cache",
    13: "a",
    14: "c",
    15: "A BuildKit secret mount: RUN --mount=type=secret,id=pypi plus docker build --secret",
    16: "b",
    17: "b",
    18: "d",
    19: "Run nvidia-smi -l 1 in another terminal",
    20: "deploy.resources.reservations.devices with driver nvidia and capabilities [gpu]",
}
# Plausible wrong answers, one per question.
WRONG = {
    1: "a",
    2: "a",
    3: "c",
    4: "chroot and ulimit",
    5: "a",
    6: "c",
    7: "c",
    8: "c",
    9: "RUN adduser app",  # 'adduser' is not the USER instruction
    10: "c",
    11: "a",
    12: "compilers and gcc",  # one kind of thing, named twice
    13: "b",
    14: "a",
    15: "pass it with --build-arg TOKEN=...",
    16: "c",
    17: "a",
    18: "a",
    19: "docker stats",
    20: "docker run --gpus all",
}


def write_answers(directory: Path, name: str, answers: dict, student: str = "") -> Path:
    path = directory / f"{name}.yml"
    path.write_text(yaml.safe_dump({"student": student or name, "answers": answers}))
    return path


def mixed(right: int) -> dict[int, str]:
    """The first ``right`` questions answered right, the rest wrong."""
    return {n: (RIGHT if n <= right else WRONG)[n] for n in RIGHT}


def test_the_key_holds_together():
    key = quiz.load()
    assert len(key.questions) == 20
    assert {q.kind for q in key.questions} == {"choice", "short"}
    assert {q.topic for q in key.questions} >= {
        "Docker architecture",
        "Dockerfile syntax",
        "Image optimisation",
        "GPU containers",
    }
    assert key.pass_mark == 14


def test_a_key_whose_answer_is_not_an_option_is_refused(tmp_path):
    raw = yaml.safe_load(quiz.QUIZ_FILE.read_text())
    raw["questions"][0]["answer"] = "e"
    broken = tmp_path / "quiz.yml"
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(WorkshopError, match="question 1: the answer must be one of its options"):
        quiz.load(broken)


def test_right_answers_in_students_own_words_score_every_point(tmp_path):
    [result] = quiz.grade_files([write_answers(tmp_path, "student01", RIGHT)])
    assert [a.id for a in result.answers if not a.correct] == []
    assert (result.score, result.passed, result.status) == (20, True, quiz.GRADED)


def test_every_wrong_answer_scores_nothing_and_short_ones_are_flagged_for_review(tmp_path):
    [result] = quiz.grade_files([write_answers(tmp_path, "student02", WRONG)])
    assert [a.id for a in result.answers if a.correct] == []
    assert result.score == 0
    assert not result.passed
    short = [a for a in result.answers if a.kind == "short"]
    assert all(a.review for a in short), "a short answer that did not score is for review"
    nine = next(a for a in result.answers if a.id == 9)
    assert nine.matched == [], "'adduser' does not name USER"
    twelve = next(a for a in result.answers if a.id == 12)
    assert twelve.matched == ["compilers"], "two words of one group are one kind of thing"
    assert len(twelve.missing) == 6
    assert twelve.expected.startswith("Compilers"), "the model answer comes along, for review"


@pytest.mark.parametrize(("right", "passed"), [(14, True), (13, False)])
def test_the_pass_mark_is_fourteen_of_twenty(tmp_path, right, passed):
    [result] = quiz.grade_files([write_answers(tmp_path, f"s{right}", mixed(right))])
    assert result.score == right
    assert result.passed is passed


def test_blank_unknown_and_malformed_answers(tmp_path):
    answers = {**RIGHT, 3: "", 5: "e", "x": "b", 21: "a"}
    del answers[7]
    [result] = quiz.grade_files([write_answers(tmp_path, "student03", answers)])
    by_id = {a.id: a for a in result.answers}
    assert by_id[3].note == "no answer"
    assert by_id[5].note == "not one of a, b, c, d"
    assert by_id[7].note == "no answer"
    assert result.score == 17
    assert result.warnings == [
        "'x' is not a question number; ignored",
        "question 21 is not in the quiz; ignored",
    ]


def test_a_broken_file_is_named_and_the_others_are_graded(tmp_path):
    good = write_answers(tmp_path, "student04", RIGHT)
    not_yaml = tmp_path / "student05.yml"
    not_yaml.write_text("answers:\n  1: b\n  2: [unclosed\n")
    no_answers = tmp_path / "student06.yml"
    no_answers.write_text("student: student06\n1: b\n")
    results = quiz.grade_files([not_yaml, good, no_answers])
    assert [r.status for r in results] == [quiz.ERROR, quiz.GRADED, quiz.ERROR]
    assert "not valid YAML at line" in results[0].message
    assert "answers.yml" in results[0].message
    assert "no 'answers:' mapping" in results[2].message
    assert results[1].score == 20


def test_the_handout_gives_the_questions_without_the_key(tmp_path):
    written = quiz.write_handout(tmp_path)
    assert sorted(p.name for p in written) == ["QUIZ.md", "answers.yml"]
    page = (tmp_path / "QUIZ.md").read_text()
    key = quiz.load()
    for question in key.questions:
        assert f"**{question.id}.**" in page
        if question.why:
            assert question.why not in page
        if question.model_answer:
            assert question.model_answer.strip()[:40] not in page
    # The blank template is a valid answer file: everything unanswered.
    [result] = quiz.grade_files([tmp_path / "answers.yml"])
    assert result.status == quiz.GRADED
    assert result.score == 0
    assert all(a.note == "no answer" for a in result.answers)


def test_the_command_prints_the_table_and_review_and_fails_for_an_ungraded_file(tmp_path):
    good = write_answers(tmp_path, "student07", mixed(15))
    broken = tmp_path / "student08.yml"
    broken.write_text(":::")
    command = [sys.executable, "-m", "workshop.cli", "quiz", "grade", str(good), str(broken)]
    shown = subprocess.run(command, capture_output=True, text=True, check=False)
    assert shown.returncode == 1
    assert "student07" in shown.stdout
    assert "15/20" in shown.stdout
    assert "passed" in shown.stdout
    assert "review" in shown.stdout, "short answers that did not score are shown for review"
    assert "not graded" in shown.stderr
    assert "student08.yml" in shown.stderr
    as_json = subprocess.run([*command[:-1], "--json"], capture_output=True, text=True, check=True)
    [result] = json.loads(as_json.stdout)
    assert (result["student"], result["score"], result["passed"]) == ("student07", 15, True)


def test_the_key_is_spread_over_the_letters():
    """No letter is a safe guess: each is the answer of at most a third of the questions."""
    choices = [q for q in quiz.load().questions if q.kind == "choice"]
    for letter in "abcd":
        share = sum(q.answer == letter for q in choices)
        assert share * 3 <= len(choices), (letter, share)


def test_every_group_can_be_named_without_repeating_the_question():
    """A keyword the question itself uses does not count, so every group must have one
    the student has to know."""
    for question in quiz.load().questions:
        text = quiz._normalise(question.text)
        for group in question.groups:
            assert any(not quiz._names(text, word) for word in group), (question.id, group)


# Every keyword of the quiz, as a student who games a keyword grader writes it.
DUMP = (
    "namespaces cgroups USER root privileges compilers build tools pip cache source tests "
    "BuildKit mount type=secret secret id nvidia-smi nvtop deploy reservations devices gpus"
)


@pytest.mark.parametrize("letter", list("abcd"))
def test_a_gamed_sheet_does_not_pass_and_its_keyword_lists_are_flagged(tmp_path, letter):
    key = quiz.load()
    gamed = {q.id: (letter if q.kind == "choice" else DUMP) for q in key.questions}
    [result] = quiz.grade_files([write_answers(tmp_path, f"gamer-{letter}", gamed)])
    assert not result.passed, result.score
    shorts = [a for a in result.answers if a.kind == "short"]
    assert all(not a.correct and a.review for a in shorts)
    assert all("also answers questions" in a.note for a in shorts)


def test_words_the_question_gives_do_not_score():
    key = {q.id: q for q in quiz.load().questions}
    assert not quiz.score_answer(key[15], "use a secret, a private one").correct
    assert not quiz.score_answer(key[9], "USER, because root").correct  # 'root' is given
    assert quiz.score_answer(key[9], "USER, because root in the container can escape").correct


# Other ways a student who knows it answers the short questions (their words, not the key's).
PARAPHRASES = {
    4: ["kernel namespaces and cgroups", "control groups limit it; namespaces isolate it"],
    9: ["USER appuser: a bug in the server would otherwise have root privileges on the box"],
    12: ["gcc and the other build deps stay in the builder, and so does the pip cache"],
    15: [
        "docker build --secret id=npmrc,src=$HOME/.npmrc then RUN --mount=type=secret,id=npmrc",
        "with buildx, a secret mount in the RUN step",
    ],
    19: ["watch -n1 nvidia-smi", "nvtop"],
    20: ["under deploy: resources: reservations: devices: - driver: nvidia, capabilities: [gpu]"],
}


@pytest.mark.parametrize(
    ("number", "answer"), [(n, a) for n, answers in PARAPHRASES.items() for a in answers]
)
def test_a_knowing_paraphrase_still_scores(number, answer):
    key = quiz.load()
    question = next(q for q in key.questions if q.id == number)
    scored = quiz.score_answer(question, answer, key.questions)
    assert scored.correct, (scored.matched, scored.missing, scored.note)
    assert not scored.review


def test_a_long_answer_is_read_by_the_instructor_but_keeps_its_point():
    key = quiz.load()
    question = next(q for q in key.questions if q.id == 4)
    long = "Namespaces isolate what the process sees and cgroups cap it. " + "Really. " * 90
    scored = quiz.score_answer(question, long, key.questions)
    assert scored.correct
    assert scored.review
    assert "over 80 words" in scored.note
