"""The grader on submissions written here: two correct ones in different frameworks
(the standard library's http.server; Flask under gunicorn with an entrypoint script) and
variants of the first with one defect each. Each is graded by the real grader on this
machine's engine: built on the classroom's base stand-in, run with limits, checked,
removed. The expected verdicts follow the assignment's requirements, not the samples."""

from __future__ import annotations

import base64
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from tests.conftest import run_workshop
from tests.workshop.labs import work as handout_work
from workshop import checking
from workshop.checking.target import LocalTarget
from workshop.grading import audit, grader
from workshop.labs import catalog

SAMPLES = Path(__file__).with_name("samples")
STDLIB = SAMPLES / "stdlib"


def edit(old: str, new: str, file: str = "Dockerfile") -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        path = directory / file
        text = path.read_text()
        assert old in text, f"{old!r} not in {file}"
        path.write_text(text.replace(old, new))

    return apply


def remove(file: str) -> Callable[[Path], None]:
    return lambda directory: (directory / file).unlink()


HANDLER = "    signal.signal(signal.SIGTERM, stop)\n"
# name -> (changes to the correct stdlib sample, the requirement that must fail)
DEFECTS: dict[str, tuple[list[Callable[[Path], None]], str | None]] = {
    "single stage": (
        [
            edit(
                "FROM ${BASE_IMAGE} AS train\nWORKDIR /train\nCOPY train.py .\n"
                "RUN python train.py /train/model.json\n\n",
                "",
            ),
            edit(
                "COPY --from=train /train/model.json /app/model.json\n",
                "COPY train.py /app/\nRUN python /app/train.py /app/model.json\n",
            ),
        ],
        "multi_stage",
    ),
    "final stage extends the build stage": (
        [
            edit("FROM ${BASE_IMAGE}\nRUN useradd", "FROM train\nRUN useradd"),
            edit("COPY --from=train /train/model.json", "RUN cp /train/model.json"),
        ],
        "multi_stage",
    ),
    "over 500 MB": (
        [
            edit(
                "COPY server.py /app/\n",
                "COPY server.py /app/\nRUN head -c 520000000 /dev/zero > /app/weights.bin\n",
            )
        ],
        "size",
    ),
    "USER root after USER app": (
        [edit('CMD ["python", "server.py"]', 'USER root\nCMD ["python", "server.py"]')],
        "non_root",
    ),
    "/health is 404 while the HEALTHCHECK passes": (
        [
            edit('HEALTH_PATH = "/health"', 'HEALTH_PATH = "/healthz"', "server.py"),
            edit("HEALTHCHECK --interval=2s", "HEALTHCHECK --interval=2s CMD true\n#"),
        ],
        "health",
    ),
    "shell-form CMD": (
        [edit('CMD ["python", "server.py"]', "CMD python server.py")],
        "graceful_shutdown",
    ),
    "no SIGTERM handler as PID 1": (
        [edit(HANDLER, "", "server.py")],
        "graceful_shutdown",
    ),
    "port fixed at 8000": (
        [edit('int(os.environ.get("PORT", "8080"))', "8000", "server.py")],
        "env_config",
    ),
    "README without configuration": (
        [edit("## Configuration", "## Notes", "README.md")],
        "readme",
    ),
}


def submission(tmp: Path, name: str, changes: list[Callable[[Path], None]]) -> Path:
    directory = tmp / name.replace(" ", "-").replace("/", "")
    shutil.copytree(STDLIB, directory)
    for change in changes:
        change(directory)
    return directory


def by_kind(card: grader.Scorecard) -> dict[str, checking.CheckResult]:
    return {result.kind: result for result in card.requirements}


@pytest.fixture(scope="module")
def graded(engine, tmp_path_factory) -> dict[str, grader.Scorecard]:
    """Every sample graded once, two at a time, as `workshop grade` does."""
    tmp = tmp_path_factory.mktemp("submissions")
    sources = {"stdlib": str(STDLIB), "flask": str(SAMPLES / "flask")}
    for name, (changes, _) in DEFECTS.items():
        sources[name] = str(submission(tmp, name, changes))
    entry = submission(tmp, "entrypoint", [])
    (entry / "entrypoint.sh").write_text('#!/bin/sh\nset -e\nexec "$@"\n')
    (entry / "entrypoint.sh").chmod(0o755)
    edit("COPY server.py /app/", "COPY server.py entrypoint.sh /app/")(entry)
    edit(
        'CMD ["python", "server.py"]',
        'ENTRYPOINT ["/app/entrypoint.sh"]\nCMD ["python", "server.py"]',
    )(entry)
    sources["entrypoint ending in exec"] = str(entry)
    gpu = submission(tmp, "gpu", DEFECTS["over 500 MB"][0])
    edit("EXPOSE 8080", 'EXPOSE 8080\nLABEL org.workshop.gpu="true"')(gpu)
    sources["GPU model over 500 MB"] = str(gpu)
    sources["no Dockerfile"] = str(submission(tmp, "no-dockerfile", [remove("Dockerfile")]))
    sources["does not build"] = str(
        submission(tmp, "broken", [edit("RUN python train.py", "RUN python no_such_file.py")])
    )
    sources["never answers"] = str(
        submission(
            tmp,
            "silent",
            [
                edit("    server.serve_forever()", "    time.sleep(3600)", "server.py"),
                edit("import json", "import json\nimport time", "server.py"),
            ],
        )
    )
    sources["answers 503 while it loads"] = str(
        submission(
            tmp,
            "slow-start",
            [
                edit(
                    "import json",
                    "import json\nimport time\nSTARTED = time.monotonic()",
                    "server.py",
                ),
                edit(
                    "        if self.path == HEALTH_PATH:",
                    "        if self.path == HEALTH_PATH and time.monotonic() - STARTED < 6:\n"
                    '            self.answer(503, {"status": "loading"})\n'
                    "        elif self.path == HEALTH_PATH:",
                    "server.py",
                ),
            ],
        )
    )
    sources["RUN --mount, Lesson 03's cache mount"] = str(
        submission(
            tmp,
            "run-mount",
            [
                edit(
                    "RUN python train.py",
                    "RUN --mount=type=cache,target=/root/.cache python train.py",
                )
            ],
        )
    )
    readme = submission(tmp, "readme-variant", [remove("README.md")])
    (readme / "readme.md").write_text(
        "Centroid classifier\n===================\n\nInstalling\n----------\n\n"
        "    docker build -t c .\n\nUsage\n-----\n\n    docker run -p 8080:8080 c\n\n"
        "Environment variables\n---------------------\n\n`PORT`: the port (8080).\n"
    )
    sources["readme.md with underlined headings"] = str(readme)
    sources["HEALTHCHECK calls curl, not in the image"] = str(
        submission(
            tmp,
            "curl-healthcheck",
            [
                edit(
                    "HEALTHCHECK --interval=2s --timeout=2s --retries=3 \\\n  CMD [",
                    "HEALTHCHECK CMD curl -fsS http://127.0.0.1:$PORT/health || exit 1\n# [",
                )
            ],
        )
    )
    reference = handout_work.student_copy(catalog.load(grader.PRACTICAL), tmp / "fastapi")
    sources["FastAPI (the reference)"] = str(reference)
    bare = tmp / "stdlib.git"
    work = submission(tmp, "git-work", [])
    for command in (
        ["git", "init", "-q", "-b", "main", str(work)],
        ["git", "-C", str(work), "add", "-A"],
        [
            "git",
            "-C",
            str(work),
            "-c",
            "user.name=s",
            "-c",
            "user.email=s@x",
            "commit",
            "-qm",
            "practical",
        ],
        ["git", "clone", "-q", "--bare", str(work), str(bare)],
    ):
        subprocess.run(command, check=True)
    sources["git URL"] = f"file://{bare}"
    sources["git URL that does not clone"] = f"file://{tmp}/missing.git"
    limits = grader.Limits(health_timeout=20, build_timeout=300)
    cards = grader.grade_sources(
        engine, list(sources.values()), jobs=2, limits=limits, trust_extra_ca=True
    )
    return dict(zip(sources, cards, strict=True))


@pytest.mark.parametrize(
    "framework",
    [
        "stdlib",
        "flask",
        "FastAPI (the reference)",
        "git URL",
        "entrypoint ending in exec",
        "answers 503 while it loads",
        "readme.md with underlined headings",
        "RUN --mount, Lesson 03's cache mount",
    ],
)
def test_correct_submissions_meet_all_seven(graded, framework) -> None:
    card = graded[framework]
    failures = [f"{r.name}: {r.message}" for r in card.requirements if not r.passed]
    assert card.status == grader.GRADED, card.message
    assert not failures, failures
    assert card.score == card.total == 7
    assert card.size_limit.startswith("500 MB (CPU model")
    assert by_kind(card)["graceful_shutdown"].evidence["exit_code"] == 0


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_one_defect_fails_exactly_its_requirement(graded, defect) -> None:
    card = graded[defect]
    wanted = DEFECTS[defect][1]
    failed = sorted(r.kind for r in card.requirements if not r.passed)
    assert card.status == grader.GRADED, card.message
    assert failed == [wanted], [f"{r.kind}: {r.message}" for r in card.requirements]
    assert card.score == 6


def test_the_reasons_name_what_to_change(graded) -> None:
    assert (
        "FROM train"
        in by_kind(graded["final stage extends the build stage"])["multi_stage"].message
    )
    size = by_kind(graded["over 500 MB"])["size"]
    assert size.evidence["limit_applied"] == "CPU model"
    assert size.evidence["size_mb"] > 500
    assert "uid 0" in by_kind(graded["USER root after USER app"])["non_root"].message
    health = by_kind(graded["/health is 404 while the HEALTHCHECK passes"])["health"]
    assert "404" in health.message
    shell = by_kind(graded["shell-form CMD"])["graceful_shutdown"]
    assert "shell form" in shell.message
    assert "exec form" in shell.message
    killed = by_kind(graded["no SIGTERM handler as PID 1"])["graceful_shutdown"]
    assert killed.evidence["exit_code"] == 137
    assert "SIGTERM" in killed.message
    assert "PORT=" in by_kind(graded["port fixed at 8000"])["env_config"].message
    assert "configuration" in by_kind(graded["README without configuration"])["readme"].message


def test_a_healthcheck_that_cannot_run_fails_requirement_4(graded) -> None:
    """Docker's default interval is 30 s: the grader waits for the first run of the
    command, and curl missing from the image fails it even though /health answers."""
    card = graded["HEALTHCHECK calls curl, not in the image"]
    health = by_kind(card)["health"]
    assert not health.passed
    assert "curl" in health.message
    assert [r.kind for r in card.requirements if not r.passed] == ["health"]


def test_a_gpu_model_gets_the_2_gb_limit_and_says_why(graded) -> None:
    card = graded["GPU model over 500 MB"]
    size = by_kind(card)["size"]
    assert size.passed, size.message
    assert size.evidence["limit_mb"] == 2000
    assert "GPU model" in card.size_limit
    assert "org.workshop.gpu" in card.size_limit


def test_submissions_that_cannot_run_get_a_scorecard_with_the_reason(graded) -> None:
    missing = graded["no Dockerfile"]
    assert missing.status == grader.GRADED
    assert "no Dockerfile" in missing.message
    assert [r.kind for r in missing.requirements if r.passed] == ["readme"]
    broken = graded["does not build"]
    assert "does not build" in broken.message
    assert "no_such_file.py" in broken.message
    assert by_kind(broken)["multi_stage"].passed  # static evidence still graded
    silent = graded["never answers"]
    assert "never answered on $PORT" in silent.message
    # one wait, not one per requirement: the grader does not hang on it
    assert silent.seconds < 3 * 20, silent.seconds
    unclonable = graded["git URL that does not clone"]
    assert unclonable.status == grader.NOT_GRADED
    assert "git clone" in unclonable.message


def test_nothing_of_the_grading_is_left_on_the_engine(graded, engine) -> None:
    assert graded  # every submission above has been graded and cleaned up
    left = engine.containers.list(all=True, filters={"label": checking.LABEL})
    assert not left, [c.name for c in left]
    tags = [t for image in engine.images.list() for t in image.tags if t.startswith("ws-check/")]
    assert not tags, tags


def test_warnings_beyond_the_seven(engine, tmp_path) -> None:
    """A submission that meets the seven, with the habits the warnings are for."""
    messy = submission(
        tmp_path,
        "messy",
        [
            remove(".dockerignore"),
            edit("ENV PORT=8080", "ENV PORT=8080 API_TOKEN=do-not-ship-me"),
            edit(
                "RUN useradd",
                "COPY id_rsa /root/.ssh/id_rsa\nRUN rm /root/.ssh/id_rsa && apt-get update "
                "&& mkdir -p /root/.cache/pip/wheels && echo cached > /root/.cache/pip/wheels/x\n"
                "RUN useradd",
            ),
        ],
    )
    (messy / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n")
    [card] = grader.grade_sources(engine, [str(messy)], limits=grader.Limits(health_timeout=20))
    codes = {warning.code for warning in card.warnings}
    assert {"secret-env", "no-dockerignore", "secret-layer", "apt-lists", "pip-cache"} <= codes
    layer = next(w for w in card.warnings if w.code == "secret-layer")
    assert layer.evidence["path"] == "root/.ssh/id_rsa"
    shown = json.dumps(grader.Scorecard.to_dict(card))
    assert "do-not-ship-me" not in shown
    assert "not-a-real-key" not in shown
    assert card.score == 7  # warnings are not requirements


@pytest.mark.parametrize(
    ("dockerfile", "codes"),
    [
        ('FROM python\nCMD ["python"]\n', {"unpinned-base"}),
        ("FROM python:latest AS b\nFROM b\n", {"unpinned-base"}),
        ("FROM python@sha256:" + "a" * 64 + "\n", set()),
        ("ARG BASE=python\nFROM ${BASE}\n", {"unpinned-base"}),
        ("FROM python:3.11-slim\nADD https://example.com/m.onnx /m.onnx\n", {"add-url"}),
        ("FROM python:3.11-slim\nARG HF_TOKEN=hf_abc\n", {"secret-arg"}),
        ("FROM python:3.11-slim\nARG HF_TOKEN\nENV DB_PASSWORD $DB_PASSWORD\n", set()),
        ("FROM python:3.11-slim\nENV DB_PASSWORD hunter2\n", {"secret-env"}),
        ("FROM scratch\nCOPY x /x\n", set()),
    ],
)
def test_static_warnings(dockerfile: str, codes: set[str]) -> None:
    found = {f.code for f in audit.static_findings(dockerfile, has_dockerignore=True)}
    assert found == codes


@pytest.mark.parametrize(
    ("dockerfile", "passes"),
    [
        ("FROM a AS build\nRUN make\nFROM a\nCOPY --from=build /x /x\n", True),
        ("FROM a\nRUN make\nFROM a\nCOPY --from=0 /x /x\n", True),
        ("FROM a AS build\nRUN make\nFROM build\n", False),
        ("FROM a AS build\nFROM a AS unused\nFROM a\nCOPY . .\n", False),
        # a shared base stage, and a build stage: the final copies from the build stage
        (
            "FROM a AS base\nRUN useradd app\nFROM base AS build\nRUN make\n"
            "FROM base\nCOPY --from=build /x /x\n",
            True,
        ),
        # copying from its own parent is still extending it
        ("FROM a AS build\nRUN make\nFROM build\nCOPY --from=build /x /y\n", False),
        ("FROM a\nCOPY --from=nginx:1.22 /etc/nginx /etc/nginx\n", False),
    ],
)
def test_multi_stage_rules(tmp_path, dockerfile: str, passes: bool) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    lab = catalog.load(grader.PRACTICAL)
    env = grader.environment({}, grader.Limits(), "classic")
    session = checking.Session(lab, LocalTarget(tmp_path), env)
    check = next(c for c in session.checks if c.kind == "multi_stage")
    status, message, _ = checking.kinds.image.check_multi_stage(session, check)
    assert (status == checking.PASSED) is passes, message


def test_cli_json_and_html(tmp_path) -> None:
    """`workshop grade` on a directory: JSON scorecards, and one HTML page of them."""
    page = tmp_path / "grades.html"
    result = run_workshop(
        "grade",
        str(STDLIB),
        str(tmp_path / "nowhere"),
        "--json",
        "--html",
        str(page),
        "--health-timeout",
        "20",
    )
    assert result.returncode == 1, result.stderr  # one source could not be graded
    cards = json.loads(result.stdout)
    assert [c["status"] for c in cards] == [grader.GRADED, grader.NOT_GRADED]
    assert cards[0]["score"] == 7
    assert "neither a directory nor a git URL" in cards[1]["message"]
    soup = BeautifulSoup(page.read_text(), "html.parser")
    rows = soup.select("#grades-table tbody tr")
    assert [row["data-score"] for row in rows] == ["7", "0"]
    marks = rows[0].select("td.mark")
    assert len(marks) == 7
    assert all("passed" in m["class"] for m in marks)
    assert not soup.find_all(["script", "link"])  # self-contained
    assert run_workshop("grade").returncode == 2  # nothing to grade: a usage error


def test_cli_details_show_every_requirements_evidence() -> None:
    shown = run_workshop("grade", str(STDLIB), "--details", "--health-timeout", "20")
    assert shown.returncode == 0, shown.stderr
    assert "1. multi-stage build: 2 stages; the final one copies from train" in shown.stdout
    assert re.search(r"5\. graceful shutdown: .* exited 0 [0-9.]+s after docker stop", shown.stdout)


def test_a_clone_url_token_never_stands_on_the_command_line(tmp_path, monkeypatch):
    """https://user:token@host/repo: the token reaches the server as an Authorization
    header from git's environment; the command line (what `ps` shows everyone) has none."""
    bare = tmp_path / "practical.git"
    work = tmp_path / "work"
    work.mkdir()
    (work / "Dockerfile").write_text("FROM scratch\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "x"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
    expected = "Basic " + base64.b64encode(b"student07:s3cr3t-t0ken").decode()
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        """git's smart HTTP (`git http-backend` as CGI), behind Basic authentication."""

        def do_GET(self):
            self.serve()

        def do_POST(self):
            self.serve()

        def serve(self):
            seen.append(self.headers.get("Authorization"))
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            cgi = subprocess.run(
                ["git", "http-backend"],
                input=body,
                capture_output=True,
                check=True,
                env={
                    "GIT_PROJECT_ROOT": str(tmp_path),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                },
            )
            head, _, payload = cgi.stdout.partition(b"\r\n\r\n")
            headers = dict(
                line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line
            )
            self.send_response(int(headers.pop("Status", "200").split()[0]))
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    commands: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, *args, **kwargs):
        commands.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(grader.subprocess, "run", spy)
    url = f"http://student07:s3cr3t-t0ken@127.0.0.1:{httpd.server_address[1]}/practical.git"
    try:
        cloned = grader.fetch(url, tmp_path / "scratch")
    finally:
        httpd.shutdown()
    assert isinstance(cloned, Path), cloned
    assert (cloned / "Dockerfile").read_text() == "FROM scratch\n"
    assert expected in seen, "the token reached the server"
    assert not any("s3cr3t-t0ken" in word for argv in commands for word in argv), commands
