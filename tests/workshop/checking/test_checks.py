"""The checks judged on work that is not in the repository: small services written here
the ways students get them right and wrong. Each check must fail the wrong one, with a
reason that names the fix, and pass the right one."""

from __future__ import annotations

import shutil
import textwrap

import pytest

from tests.workshop.labs import work
from workshop import checking
from workshop.labs import catalog

# A model service with the standard library only: health, predict, PORT, and a SIGTERM
# behaviour chosen by ON_SIGTERM: "drain" (finish in-flight requests, exit 0), "exit" (exit
# at once), "default" (Python's: none, so as PID 1 the signal is ignored).
SERVER = textwrap.dedent(
    """
    import json, os, signal, sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            status = int(os.environ.get("HEALTH_STATUS", "200"))
            self.reply(status, {"status": "ok"}) if self.path == "/health" else self.reply(404, {})

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            label = os.environ.get("LABEL", "tabby cat")
            self.reply(200, {"predictions": [{"label": label, "probability": 0.9}]})

    ThreadingHTTPServer.daemon_threads = False  # server_close() waits for requests
    port = int(os.environ.get("PORT", "8000")) if os.environ.get("READ_PORT") else 8000
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    mode = os.environ.get("ON_SIGTERM", "drain")
    if mode == "drain":
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    elif mode == "exit":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()
    server.server_close()
    """
)
GOOD = """\
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE} AS build
WORKDIR /build
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt && echo built > artefact \
 && echo "TRAINING = True" > trainlib.py
FROM ${BASE_IMAGE}
COPY --from=build /build/artefact /app/artefact
COPY server.py /app/
USER 10001
ENV READ_PORT=1
CMD ["python", "/app/server.py"]
"""
README = (
    "# Service\n\n## Build\n\ndocker build .\n\n## Run\n\ndocker run\n\n## Configuration\n\nPORT\n"
)


def lab(directory, checks_, dockerfile=GOOD, *, size_limit_mb=500.0, readme=README):
    """A lab.yml-like lab over a directory holding one submission."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    (directory / "server.py").write_text(SERVER)
    (directory / "requirements.txt").write_text("")
    (directory / "README.md").write_text(readme)
    (directory / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    found = catalog.Lab.model_validate(
        {
            "name": "synthetic",
            "title": "a submission",
            "lesson": "tests",
            "images": [{"name": "service", "base": "python", "size_limit_mb": size_limit_mb}],
            "port": 8000,
            "health": "/health",
            "checks": [{"name": kind, "kind": kind, **options} for kind, options in checks_],
        }
    )
    found.directory = directory
    return found


# Techniques only BuildKit has (RUN --mount): their checks build with it.
BUILDKIT_KINDS = {"build_secret", "cache_mount"}


def check(engine, directory, kind, dockerfile=GOOD, **options):
    """Run one check of ``kind`` on a submission; its result."""
    spec_options = {k: v for k, v in options.items() if k not in ("size_limit_mb", "readme")}
    lab_options = {k: v for k, v in options.items() if k in ("size_limit_mb", "readme")}
    synthetic = lab(directory, [(kind, spec_options)], dockerfile, **lab_options)
    builder = "buildkit" if kind in BUILDKIT_KINDS else "classic"
    run = work.run(engine, synthetic, directory, health_timeout=8, builder=builder)
    return run.checks[0]


def variant(**env):
    """GOOD with extra ENV lines before the CMD."""
    lines = "".join(f"ENV {key}={value}\n" for key, value in env.items())
    return GOOD.replace('CMD ["python"', f'{lines}CMD ["python"')


def test_a_good_submission_passes_every_kind_it_can(engine, tmp_path):
    kinds = [
        ("health", {}),
        ("predict", {"file": "cat.jpg", "expect_top1_contains": "cat"}),
        ("size", {}),
        ("non_root", {}),
        ("graceful_shutdown", {"file": "cat.jpg"}),
        ("multi_stage", {"absent_imports": ["trainlib"]}),
        ("env_config", {}),
        ("readme", {}),
        ("layer_reuse", {"file": "server.py"}),
    ]
    run = work.run(engine, lab(tmp_path / "good", kinds), tmp_path / "good", health_timeout=30)
    work.all_passed(run)


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        (GOOD.replace("USER 10001\n", ""), "runs as root (uid 0)"),
        (GOOD.replace("USER 10001\n", "USER 10001\nRUN true\nUSER root\n"), "runs as root"),
    ],
    ids=["no USER", "USER root after a non-root USER"],
)
def test_non_root_is_not_fooled(engine, tmp_path, dockerfile, reason):
    result = check(engine, tmp_path / "s", "non_root", dockerfile)
    assert result.status == checking.FAILED
    assert reason in result.message


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        (variant(ON_SIGTERM="exit"), "the request in flight was lost on SIGTERM"),
        (
            GOOD.replace('CMD ["python", "/app/server.py"]', "CMD python /app/server.py"),
            "is in shell form: /bin/sh is PID 1",
        ),
    ],
    ids=["exits at once", "shell-form CMD: SIGTERM never reaches it"],
)
def test_graceful_shutdown_fails_what_loses_requests_or_needs_killing(
    engine, tmp_path, dockerfile, reason
):
    result = check(engine, tmp_path / "s", "graceful_shutdown", dockerfile, file="cat.jpg")
    assert result.status == checking.FAILED
    assert reason in result.message


def test_python_as_pid_1_without_a_handler_ignores_sigterm(engine, tmp_path):
    result = check(
        engine, tmp_path / "s", "graceful_shutdown", variant(ON_SIGTERM="default"), file="cat.jpg"
    )
    assert result.status == checking.FAILED
    assert result.evidence["exit_code"] == 137


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        (
            "FROM ${BASE_IMAGE:-x}\nCOPY server.py /app/\n".replace(
                "${BASE_IMAGE:-x}", "workshop/library/python:3.11-slim"
            ),
            "has 1 stage",
        ),
        (
            GOOD.replace("FROM ${BASE_IMAGE}\nCOPY --from", "FROM build\nCOPY --from"),
            "the final stage starts FROM build",
        ),
        (
            GOOD.replace("COPY --from=build /build/artefact /app/artefact\n", ""),
            "copies nothing from the other stages",
        ),
    ],
    ids=["one stage", "the final stage extends the builder", "nothing copied across"],
)
def test_multi_stage_is_not_fooled(engine, tmp_path, dockerfile, reason):
    result = check(engine, tmp_path / "s", "multi_stage", dockerfile)
    assert result.status == checking.FAILED
    assert reason in result.message


def test_multi_stage_finds_build_only_libraries_in_the_final_image(engine, tmp_path):
    leaky = GOOD.replace(
        "COPY --from=build /build/artefact /app/artefact",
        "COPY --from=build /build/ /app/\nENV PYTHONPATH=/app",
    )
    result = check(engine, tmp_path / "s", "multi_stage", leaky, absent_imports=["trainlib"])
    assert result.status == checking.FAILED
    assert "trainlib can be imported in the final image" in result.message


def test_env_config_fails_a_hard_coded_port(engine, tmp_path):
    result = check(engine, tmp_path / "s", "env_config", GOOD.replace("ENV READ_PORT=1\n", ""))
    assert result.status == checking.FAILED
    assert "(read the port from $PORT)" in result.message


def test_layer_reuse_fails_code_copied_before_the_dependencies(engine, tmp_path):
    naive = GOOD.replace("COPY requirements.txt ./", "COPY . ./")
    result = check(engine, tmp_path / "s", "layer_reuse", naive, file="server.py")
    assert result.status == checking.FAILED
    assert "re-ran 'RUN pip install" in result.message


def test_size_fails_an_image_over_the_limit(engine, tmp_path):
    result = check(engine, tmp_path / "s", "size", size_limit_mb=50)
    assert result.status == checking.FAILED
    assert result.evidence["size_mb"] > 50


def test_health_and_predict_fail_wrong_answers(engine, tmp_path):
    sick = check(engine, tmp_path / "a", "health", variant(HEALTH_STATUS="503"))
    assert sick.status == checking.FAILED
    assert "gave HTTP 503" in sick.message
    wrong = check(
        engine,
        tmp_path / "b",
        "predict",
        variant(LABEL="toaster"),
        file="cat.jpg",
        expect_top1_contains="cat",
    )
    assert wrong.status == checking.FAILED
    assert "first class is 'toaster'" in wrong.message


def test_a_build_that_fails_is_the_reason_every_check_gives(engine, tmp_path):
    broken = GOOD.replace("RUN pip install", "RUN exit 3 && pip install")
    result = check(engine, tmp_path / "s", "health", broken)
    assert result.status == checking.FAILED
    assert result.message.startswith("the image does not build")


@pytest.mark.parametrize(
    ("readme", "missing"),
    [
        ("# Service\n\n## Build\n\n## Run\n", "configuration"),
        ("# Service\n\n## Build\n\n## Run\n\n```\n## Configuration\n```\n", "configuration"),
    ],
    ids=["no configuration section", "a heading inside a code block"],
)
def test_readme_needs_real_sections(engine, tmp_path, readme, missing):
    result = check(engine, tmp_path / "s", "readme", readme=readme)
    assert result.status == checking.FAILED
    assert result.evidence["missing"] == [missing]


def test_the_check_leaves_nothing_behind(engine, tmp_path):
    check(engine, tmp_path / "s", "graceful_shutdown", file="cat.jpg")
    leftovers = [c.name for c in engine.containers.list(all=True) if c.name.startswith("ws-check")]
    assert leftovers == []
    assert not [t for i in engine.images.list() for t in i.tags if t.startswith("ws-check/")]


# --- Lesson 03's techniques -------------------------------------------------------------

SECRET_USED = GOOD.replace(
    "COPY server.py /app/\n",
    "COPY server.py /app/\n"
    "RUN --mount=type=secret,id=index_token,required=true "
    "test -s /run/secrets/index_token && echo fetched > /app/private-model\n",
)


@pytest.mark.parametrize(
    ("dockerfile", "reason"),
    [
        (GOOD, "builds without the secret index_token, so no step uses it"),
        (
            SECRET_USED.replace(
                "echo fetched > /app/private-model",
                "cp /run/secrets/index_token /app/token",
            ),
            "the secret's value is in a layer",
        ),
        (
            SECRET_USED.replace(
                "echo fetched > /app/private-model",
                "cp /run/secrets/index_token /tmp/token",
            ).replace("USER 10001\n", "RUN rm /tmp/token\nUSER 10001\n"),
            "stays in its layer even when a later step deletes it",
        ),
    ],
    ids=["secret never used", "copied into the image", "copied, deleted a step later"],
)
def test_build_secret_fails_an_unused_or_leaked_secret(engine, tmp_path, dockerfile, reason):
    result = check(engine, tmp_path / "s", "build_secret", dockerfile)
    assert result.status == checking.FAILED, result.message
    assert reason in result.message


def test_build_secret_passes_a_secret_mount_and_removes_its_file(engine, tmp_path):
    leaked = SECRET_USED.replace(
        "echo fetched > /app/private-model",
        "cat /run/secrets/index_token > /tmp/t && wc -c /tmp/t && rm /tmp/t",
    )
    result = check(engine, tmp_path / "s", "build_secret", leaked)
    assert result.status == checking.PASSED, result.message
    assert result.evidence["builds_without_secret"] is False
    assert not [t for i in engine.images.list() for t in i.tags if t.startswith("ws-check/")]


IGNORED = {
    "excludes": [".git/config", "data/train.csv", ".venv/pyvenv.cfg", "nb/eda.ipynb"],
    "includes": ["server.py", "requirements.txt"],
}


@pytest.mark.parametrize(
    ("ignore", "status", "reason"),
    [
        (".git\n.venv\ndata/\n**/*.ipynb\n", checking.PASSED, "nothing planted got in"),
        (".git\n.venv\n", checking.FAILED, "lets data/train.csv, nb/eda.ipynb into"),
        (".git\n.venv\ndata/\n*.ipynb\n", checking.FAILED, "lets nb/eda.ipynb into"),
        ("*\n!Dockerfile\n", checking.FAILED, "keeps out server.py, requirements.txt"),
        (None, checking.FAILED, ".dockerignore is missing"),
    ],
    ids=["right", "data and notebooks", "*.ipynb matches the top only", "everything", "none"],
)
def test_dockerignore_judges_what_reaches_the_build(engine, tmp_path, ignore, status, reason):
    directory = tmp_path / "s"
    lab(directory, [])
    if ignore is not None:
        (directory / ".dockerignore").write_text(ignore)
    result = check(engine, directory, "dockerignore", **IGNORED)
    assert result.status == status, result.message
    assert reason in result.message
    if status == checking.PASSED:
        assert result.evidence["context_kb"] < result.evidence["directory_kb"]


def test_init_process_wants_an_init_as_pid_1(engine, tmp_path):
    failed = check(engine, tmp_path / "plain", "init_process")
    assert failed.status == checking.FAILED
    assert "PID 1 is python" in failed.message
    assert "tini" in failed.message

    directory = tmp_path / "tini"
    directory.mkdir()
    shutil.copy("/usr/bin/tini-static", directory / "tini")
    with_tini = GOOD.replace(
        "USER 10001\n", 'COPY tini /usr/bin/tini\nUSER 10001\nENTRYPOINT ["/usr/bin/tini", "--"]\n'
    )
    passed = check(engine, directory, "init_process", with_tini)
    assert passed.status == checking.PASSED, passed.message
    assert passed.evidence["pid1"] == "tini"


CACHED_PIP = "RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt"


@pytest.mark.parametrize(
    ("dockerfile", "status", "reason"),
    [
        (GOOD, checking.FAILED, "has no cache mount"),
        (
            GOOD.replace(
                "RUN pip install --no-cache-dir -r requirements.txt", CACHED_PIP + " --no-cache-dir"
            ),
            checking.FAILED,
            "--no-cache-dir turns pip's cache off",
        ),
        (
            GOOD.replace("RUN pip install --no-cache-dir -r requirements.txt", CACHED_PIP),
            checking.PASSED,
            "1 pip install(s) use a BuildKit cache mount",
        ),
        (
            GOOD.replace("pip install --no-cache-dir -r requirements.txt && ", ""),
            checking.FAILED,
            "no RUN installs anything with pip",
        ),
    ],
    ids=["no mount", "mount with --no-cache-dir", "mount", "no pip at all"],
)
def test_cache_mount_wants_pips_cache_in_a_cache_mount(
    engine, tmp_path, dockerfile, status, reason
):
    result = check(engine, tmp_path / "s", "cache_mount", dockerfile)
    assert result.status == status, result.message
    assert reason in result.message


# --- Lesson 05's techniques (Compose) ---------------------------------------------------

STACK = """\
services:
  web:
    image: ${WEB_IMAGE:-web}
    build:
      context: .
      args:
        BASE_IMAGE: ${PYTHON_IMAGE:-python:3.11-slim}
    ports:
      - "127.0.0.1:${GATEWAY_PORT:-8080}:8000"
    environment:
      API_USER: ml
      API_KEY_FILE: /run/secrets/api_key
    secrets: [api_key]
    deploy:
      resources:
        limits:
          cpus: "0.5"
          memory: 256M
  tool:
    image: ${PYTHON_IMAGE:-python:3.11-slim}
    profiles: [debug]
    command: ["python", "-c", "print(open('/run/secrets/api_key').read().strip() != '')"]
    secrets: [api_key]
secrets:
  api_key:
    file: ./api_key.txt
"""


TECHNIQUES = [
    ("compose_secret", {}),
    ("resource_limits", {"service": "web"}),
    ("compose_profile", {"service": "tool", "profile": "debug"}),
]


def stack_run(engine, directory, compose, kinds=TECHNIQUES) -> dict[str, checking.CheckResult]:
    """Compose technique checks on a one-service stack written here: one `up` for all."""
    lab(directory, [])
    (directory / "compose.yaml").write_text(compose)
    (directory / "api_key.txt").write_text("k3y\n")
    synthetic = catalog.Lab.model_validate(
        {
            "name": "synthetic-stack",
            "title": "a stack",
            "lesson": "tests",
            "images": [{"name": "web", "base": "python"}],
            "port": 8000,
            "health": "/health",
            "compose": "compose.yaml",
            "service": "web",
            "checks": [{"name": kind, "kind": kind, **options} for kind, options in kinds],
        }
    )
    synthetic.directory = directory
    run = work.run(engine, synthetic, directory, health_timeout=30)
    return {result.kind: result for result in run.checks}


# Wrong in two ways, right in one: a password in the environment, a memory limit only, a
# tool that prints False and still exits 0 (the profile check wants it left out and working).
LEAKY = (
    STACK.replace("API_KEY_FILE: /run/secrets/api_key", "API_PASSWORD: hunter2")
    .replace('          cpus: "0.5"\n', "")
    .replace("!= ''", "== 'no such key'")
)
# Wrong in three: no secret mounted, no limits at all, a tool that exits 3.
BARE = (
    STACK.replace("    secrets: [api_key]\n    deploy:", "    deploy:")
    .replace(
        '    deploy:\n      resources:\n        limits:\n          cpus: "0.5"\n'
        "          memory: 256M\n",
        "",
    )
    .replace('command: ["python", "-c",', 'command: ["python", "-c", "raise SystemExit(3)",')
)


@pytest.mark.parametrize(
    ("compose", "expected"),
    [
        (
            STACK,
            {
                "compose_secret": (checking.PASSED, "credentials arrive as files"),
                "resource_limits": (checking.PASSED, "web: 256 MB and 0.5 CPUs at most"),
                "compose_profile": (checking.PASSED, "runs only with --profile debug, and exits 0"),
            },
        ),
        (
            LEAKY,
            {
                "compose_secret": (
                    checking.FAILED,
                    "web: API_PASSWORD is in the container's environment",
                ),
                "resource_limits": (checking.FAILED, "without a CPU limit"),
                "compose_profile": (checking.PASSED, "runs only with --profile debug"),
            },
        ),
        (
            BARE,
            {
                "compose_secret": (checking.FAILED, "no service gets a secret"),
                "resource_limits": (checking.FAILED, "without a memory limit"),
                "compose_profile": (checking.FAILED, "run --rm tool failed"),
            },
        ),
    ],
    ids=["right", "password in the environment, memory only", "no secret, no limits"],
)
def test_the_compose_techniques_judge_right_and_wrong_stacks(engine, tmp_path, compose, expected):
    results = stack_run(engine, tmp_path / "s", compose)
    for kind, (status, reason) in expected.items():
        assert results[kind].status == status, f"{kind}: {results[kind].message}"
        assert reason in results[kind].message, kind


def test_compose_profile_fails_a_tool_that_starts_with_every_up(engine, tmp_path):
    """Read from `docker compose config`: nothing is started for this one."""
    results = stack_run(
        engine,
        tmp_path / "s",
        STACK.replace("    profiles: [debug]\n", ""),
        [("compose_profile", {"service": "tool", "profile": "debug"})],
    )
    assert results["compose_profile"].status == checking.FAILED
    assert "starts with every `up`" in results["compose_profile"].message


# --- Lesson 02: pinned versions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("requirements", "dockerfile", "status", "reason"),
    [
        (
            "fastapi==0.115.0\nnumpy==2.1.3 ; python_version >= '3.10'\n# a comment\n",
            GOOD,
            checking.PASSED,
            "pins every package; the bases are python:3.11-slim",
        ),
        ("fastapi\n", GOOD, checking.FAILED, "'fastapi' is not pinned"),
        ("numpy>=2\n", GOOD, checking.FAILED, "'numpy>=2' is not pinned"),
        ("numpy~=2.1\n", GOOD, checking.FAILED, "'numpy~=2.1' is not pinned"),
        (
            "",
            GOOD.replace("ARG BASE_IMAGE=python:3.11-slim", "ARG BASE_IMAGE=python"),
            checking.FAILED,
            "FROM python floats",
        ),
        (
            "",
            GOOD.replace("ARG BASE_IMAGE=python:3.11-slim", "ARG BASE_IMAGE=python:latest"),
            checking.FAILED,
            "FROM python:latest floats",
        ),
        (
            "",
            GOOD.replace(
                "ARG BASE_IMAGE=python:3.11-slim",
                "ARG BASE_IMAGE=registry.example.edu:5000/python@sha256:" + "a" * 64,
            ),
            checking.PASSED,
            "pins every package",
        ),
    ],
    ids=[
        "pinned",
        "bare name",
        "lower bound",
        "compatible release",
        "no tag",
        "latest",
        "digest on a registry with a port",
    ],
)
def test_pinned_wants_one_version_of_everything(
    engine, tmp_path, requirements, dockerfile, status, reason
):
    directory = tmp_path / "s"
    synthetic = lab(directory, [("pinned", {})], dockerfile)
    (directory / "requirements.txt").write_text(requirements)
    result = work.run(engine, synthetic, directory).checks[0]
    assert result.status == status, result.message
    assert reason in result.message
