"""Running the class on a real 2-VM lab cloud, through the CLI as an instructor would:
prepare, provision, deploy, check, report and cards, over real SSH."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import paramiko
import pytest
from bs4 import BeautifulSoup

from tests.conftest import CHROMIUM, REPO, run_workshop
from tests.workshop.labs import work
from workshop.labs import catalog
from workshop.ssh import SshTarget, connect, probe_systemd

pytestmark = pytest.mark.labcloud

LAB = "02-image-classifier"
LABS = len(catalog.all_labs())  # every lab is delivered to every student


def admin(cloud: dict, index: int) -> SshTarget:
    ssh = Path(cloud["state_dir"]) / "ssh"
    return SshTarget(cloud["vms"][index]["ip"], "admin", ssh / "id_ed25519", ssh / "known_hosts")


def as_student(cloud: dict, index: int, command: str) -> subprocess.CompletedProcess | object:
    login = f"student{index + 1:02d}"
    with connect(admin(cloud, index)) as conn:  # bash -c: ~ is the student's home
        return conn.sudo(f"bash -c {shlex.quote(command)}", user=login, hide=True, warn=True)


def run_page(script: str) -> str:
    """A page's script in a login shell, as the student pastes it; its stdin is empty, so
    a command that reads stdin (docker compose up) cannot swallow the commands after it."""
    return f"bash -l -c {shlex.quote(script)} </dev/null"


def site(cloud: dict, *args: str) -> subprocess.CompletedProcess[str]:
    inventory = Path(cloud["state_dir"]) / "inventory.yml"
    return subprocess.run(
        [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), "site.yml", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def workshop(cloud: dict, *args: str) -> subprocess.CompletedProcess[str]:
    return run_workshop(*args, "--cohort", cloud["cohort"])


@pytest.fixture(scope="module")
def classroom(lab_cloud):
    """The session's cohort, prepared and provisioned (again, if test_site tore it down)."""
    prepared = workshop(lab_cloud, "prepare")
    assert prepared.returncode == 0, prepared.stderr + prepared.stdout
    provisioned = site(lab_cloud)
    assert provisioned.returncode == 0, provisioned.stdout[-3000:]
    return lab_cloud


@pytest.mark.parametrize("lab", ["01-hello-ml", "04-networking-volumes"])
def test_a_lessons_page_runs_as_written_in_the_students_copy(classroom, lab):
    """Every command the page shows, pasted by the student into a login shell on their VM
    in ~/labs/<lab> (where deploy put their copy), in order; the one the page says fails
    must fail. A command may be retried for a minute, as a student waits for a server."""
    delivered = workshop(classroom, "deploy", "--lab", lab, "--student", "student01")
    assert delivered.returncode == 0, delivered.stderr + delivered.stdout
    commands = work.page_commands((REPO / "labs" / lab / "README.md").read_text())
    assert commands, f"{lab}'s page shows no commands"
    script = work.page_script(f"~/labs/{lab}", commands)
    ran = as_student(classroom, 0, run_page(script))
    assert ran.return_code == 0, f"{lab}: {ran.stderr[-2000:]}"
    leftovers = as_student(classroom, 0, "docker ps -aq; docker network ls -qf name=ml-net")
    assert leftovers.stdout.strip() == "", "the page's own clean-up leaves nothing running"


@contextlib.contextmanager
def delivered_again_after(classroom: dict, lab: str) -> Iterator[None]:
    """student01's copy of ``lab`` as delivered again after the block, whatever it did."""
    try:
        yield
    finally:
        as_student(classroom, 0, f"rm -rf ~/labs/{lab}")
        workshop(classroom, "deploy", "--lab", lab, "--student", "student01")


EDITS = "<!-- the student's edits"


@pytest.mark.parametrize(
    "lab", ["02-image-classifier", "03-build-techniques", "05-compose-stack", "06-registries-ci"]
)
def test_a_page_with_edits_runs_before_them_on_the_starter_and_after_them(classroom, lab):
    """A page whose steps have the student edit files: its commands before the edits run
    on the starter as delivered (Lesson 03: the token leaks into the history), then the
    edits are made (the solution's files, written as the student), then the rest of the
    commands run (Activity 1: a venv, the service outside a container, then built and
    stopped in one; Lesson 03: the secret is nowhere, tini is PID 1, the packages a
    scanner reads; Activity 3: the broken stack first, then the stack comes up, caches,
    logs and scales; Activity 5: the classroom push and four tags of one image) and leave
    nothing running. The student's copy is delivered again afterwards."""
    delivered = workshop(classroom, "deploy", "--lab", lab, "--student", "student01")
    assert delivered.returncode == 0, delivered.stderr + delivered.stdout
    with delivered_again_after(classroom, lab):  # later tests find the starter there
        page = (REPO / "labs" / lab / "README.md").read_text()
        before, marker, after = page.partition(EDITS)
        assert marker, "the page marks where the student's edits come"
        if work.page_commands(before):
            first = work.page_script(f"~/labs/{lab}", work.page_commands(before), tries=2)
            ran = as_student(classroom, 0, run_page(first))
            assert ran.return_code == 0, f"before the edits: {ran.stderr[-2000:]}"
        for name in catalog.load(lab).handout.solution:
            text = (REPO / "labs" / lab / name).read_text()
            wrote = as_student(classroom, 0, f"cat > ~/labs/{lab}/{name} <<'EOF'\n{text}EOF")
            assert wrote.return_code == 0, wrote.stderr
        rest = work.page_script(f"~/labs/{lab}", work.page_commands(after), tries=5)
        ran = as_student(classroom, 0, run_page(rest))
        assert ran.return_code == 0, f"after the edits: {ran.stderr[-2000:]}"
        if lab == "02-image-classifier":  # the cat, outside the container and in it
            top = re.findall(
                r'"predictions":\s*\[\{"index":\s*\d+,\s*"label":\s*"([^"]+)"', ran.stdout
            )
            assert len(top) == 2, ran.stdout[-2000:]
            assert all("cat" in label for label in top), top
            assert re.search(r"(?m)^0$", ran.stdout), "docker stop: exit code 0"
        elif lab == "03-build-techniques":
            assert "tini" in ran.stdout, "docker top shows tini as PID 1"
            assert re.search(r"(?m)^numpy==\d", ran.stdout), "the image's Python packages"
            assert re.search(r"(?m)^tini\s+\d", ran.stdout), "and its Debian packages"
        elif lab == "05-compose-stack":
            assert re.search(r"(?im)^x-cache: hit", ran.stdout), "the second request is a hit"
        else:  # the classroom push, then four tags of one image
            assert re.search(r"(?m)^pushed \S+/student01/classifier:\S+@sha256:", ran.stdout)
            assert ran.stdout.rstrip().endswith("\n1"), "one digest for the four tags"
        left = as_student(classroom, 0, "docker ps -a --format '{{.Names}} {{.Status}}'").stdout
        assert left.strip() == "", f"the page's own clean-up leaves nothing: {left}\n{ran.stderr}"


def test_site_delivers_every_lab_and_the_table_counts_them(classroom):
    provisioned = site(classroom, "--tags", "verify")
    assert re.search(rf"student-01\s+student01\s+.*\s6/6\s+{LABS}/{LABS}\s+ok", provisioned.stdout)
    listing = as_student(classroom, 0, f"ls -A ~/labs/{LAB}").stdout.split()
    for name in (
        "README.md",
        "Dockerfile",
        "app",
        "model",
        "cat.jpg",
        "coffee.jpg",
        "extra-ca.crt",
    ):
        assert name in listing
    assert "solution" not in listing
    starter = as_student(classroom, 0, f"cat ~/labs/{LAB}/Dockerfile").stdout
    assert "TODO 1: a builder stage" in starter, "the student got the solution, not the starter"
    assert (
        as_student(classroom, 0, "bash -lc 'echo $REGISTRY'").stdout.strip()
        == (classroom["registry"]["address"])
    )


def test_redeploy_keeps_a_students_edit_and_restores_what_they_deleted(classroom):
    as_student(classroom, 1, f"echo '# my work' >> ~/labs/{LAB}/Dockerfile")
    as_student(classroom, 1, f"rm ~/labs/{LAB}/coffee.jpg")
    again = workshop(classroom, "deploy", "--all", "--json")
    assert again.returncode == 0, again.stderr
    rows = {(row["student"], row["lab"]): row for row in json.loads(again.stdout)["rows"]}
    assert len(rows) == 2 * LABS
    assert rows[("student02", LAB)]["added"] == 1  # coffee.jpg, and nothing else
    assert (
        rows[("student01", LAB)] | {"added": 0, "status": "up to date"} == rows[("student01", LAB)]
    )
    assert (
        as_student(classroom, 1, f"tail -1 ~/labs/{LAB}/Dockerfile").stdout.strip() == "# my work"
    )
    assert as_student(classroom, 1, f"test -f ~/labs/{LAB}/coffee.jpg").ok
    as_student(classroom, 1, f"sed -i '$d' ~/labs/{LAB}/Dockerfile")  # back to the starter


def test_a_missing_lab_turns_the_table_red_until_it_is_delivered(classroom):
    as_student(classroom, 1, "rm -rf ~/labs/03-multistage")
    red = site(classroom, "--tags", "verify")
    assert red.returncode != 0
    assert "student02 has no 03-multistage in ~/labs" in red.stdout
    assert re.search(rf"student-02\s+student02\s+.*\s{LABS - 1}/{LABS}\s+FAILED", red.stdout)
    assert (
        workshop(classroom, "deploy", "--lab", "multistage", "--student", "student02").returncode
        == 0
    )
    assert site(classroom, "--tags", "verify").returncode == 0


def test_the_solution_only_on_request_and_only_for_that_student(classroom):
    result = workshop(classroom, "deploy", "--lab", LAB, "--solution", "--student", "student01")
    assert result.returncode == 0, result.stderr
    assert as_student(classroom, 0, f"test -f ~/labs/{LAB}/solution/Dockerfile").ok
    assert not as_student(classroom, 1, f"test -e ~/labs/{LAB}/solution").ok
    with connect(admin(classroom, 1)) as conn:
        archives = conn.sudo("ls /var/lib/workshop/materials", hide=True).stdout.split()
    assert f"{LAB}.solution.tar.gz" not in archives
    assert as_student(classroom, 1, "ls /var/lib/workshop/materials").failed


@pytest.fixture(scope="module")
def checked(classroom):
    """student01 finishes the lab (the reference solution); student02 leaves the starter."""
    workshop(classroom, "deploy", "--lab", LAB, "--solution", "--student", "student01")
    as_student(classroom, 0, f"cp -r ~/labs/{LAB}/solution/. ~/labs/{LAB}/")
    result = workshop(classroom, "check", "--lab", LAB, "--json")
    return result


def test_check_passes_the_reference_and_fails_the_starter_with_reasons(checked, classroom):
    assert checked.returncode == 1, "exit 0 only when everyone passes"
    runs = {run["student"]: run for run in json.loads(checked.stdout)}
    assert runs["student01"]["status"] == "passed", runs["student01"]
    assert [c["status"] for c in runs["student01"]["checks"]] == ["passed"] * 8
    starter = runs["student02"]
    assert starter["status"] == "not started"
    assert "are as delivered" in starter["message"]
    health = next(c for c in starter["checks"] if c["kind"] == "health")
    assert "exited (code 0) before answering GET /health" in health["message"]
    saved = Path(classroom["state_dir"]) / "checks" / LAB / "student01.json"
    assert json.loads(saved.read_text())["status"] == "passed"


def test_check_leaves_nothing_on_the_vms(checked, classroom):
    for index in (0, 1):
        with connect(admin(classroom, index)) as conn:
            names = conn.sudo("docker ps -a --format '{{.Names}}'", hide=True).stdout
            tags = conn.sudo("docker images --format '{{.Repository}}'", hide=True).stdout
            networks = conn.sudo("docker network ls --format '{{.Name}}'", hide=True).stdout
            volumes = conn.sudo("docker volume ls -q", hide=True).stdout
        assert "ws-check" not in names + tags + networks + volumes


def test_a_stopped_vm_is_unreachable_while_the_other_is_checked(checked, classroom):
    engine = docker.from_env()
    stopped = engine.containers.get(classroom["vms"][1]["name"])
    stopped.stop(timeout=10)
    try:
        result = workshop(classroom, "check", "--lab", LAB, "--json")
    finally:
        stopped.start()
    runs = {run["student"]: run for run in json.loads(result.stdout)}
    assert result.returncode == 1
    assert runs["student01"]["status"] == "passed"
    assert runs["student02"]["status"] == "unreachable"
    assert "does not answer SSH" in runs["student02"]["message"]
    assert probe_systemd(admin(classroom, 1), wait_seconds=90).ssh_ok


def test_the_report_looked_at_in_chromium(checked, classroom, tmp_path):
    workshop(classroom, "check", "--lab", LAB)  # both VMs up again: fresh verdicts
    page = tmp_path / "report.html"
    made = workshop(classroom, "report", "--html", str(page))
    assert made.returncode == 0, made.stderr
    html = page.read_text()
    assert not re.search(r"""(src|href)=["']?https?:""", html), "the page loads nothing"
    profile = tmp_path / "profile"
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            *CHROMIUM,
            f"--user-data-dir={profile}",
            "--window-size=1400,2000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 50_000, "a blank page is a few kB"
    dom = subprocess.run(
        [*CHROMIUM, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    soup = BeautifulSoup(dom, "html.parser")
    assert soup.title.string == f"Cohort {classroom['cohort']}: readiness and labs"
    assert soup.find("time", id="generated")["datetime"].startswith("20")
    ready = soup.select("#readiness-table tbody tr")
    assert [row["data-student"] for row in ready] == ["student01", "student02"]
    assert {row["data-ready"] for row in ready} == {"ok"}
    lab = soup.select_one(f'table.lab[data-lab="{LAB}"]')
    rows = {row["data-student"]: row for row in lab.select("tbody tr")}
    assert rows["student01"]["data-status"] == "passed"
    assert rows["student02"]["data-status"] == "not started"
    assert len(rows["student01"].select("td.mark.passed")) == 8
    assert "exited (code 0) before answering GET /health" in rows["student02"].get_text()
    assert soup.select_one(f'.card[data-lab="{LAB}"]').b.get_text() == "1/2"


def test_a_card_rendered_and_read_back_logs_the_student_in(classroom, tmp_path):
    out = tmp_path / "cards"
    made = workshop(classroom, "cards", "--out", str(out))
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    pdf = out / "student01.pdf"
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    password = (Path(classroom["state_dir"]) / "students/student01/password").read_text().strip()
    address = classroom["vms"][0]["ip"]
    assert password in text
    assert f"ssh student01@{address}" in text
    assert classroom["registry"]["address"] in text
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(tmp_path / "card")],
        check=True,
    )
    qr = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(tmp_path / "card.png")],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    assert qr == f"ssh://student01@{address}"
    pages = subprocess.run(
        ["pdfinfo", str(out / "cards.pdf")], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(r"^Pages:\s+2$", pages, re.M)
    # What the card says works: the password logs the student in over SSH.
    client = paramiko.SSHClient()
    client.load_host_keys(str(Path(classroom["state_dir"]) / "ssh" / "known_hosts"))
    client.connect(
        address,
        username="student01",
        password=password,
        look_for_keys=False,
        allow_agent=False,
        timeout=10,
    )
    try:
        _, stdout, _ = client.exec_command("id -un")
        assert stdout.read().decode().strip() == "student01"
    finally:
        client.close()
    refused = paramiko.SSHClient()
    refused.load_host_keys(str(Path(classroom["state_dir"]) / "ssh" / "known_hosts"))
    with pytest.raises(paramiko.AuthenticationException):
        refused.connect(
            address,
            username="admin",
            password=password,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )


@pytest.fixture(scope="module")
def graded(classroom):
    """student01's practical is the grading tests' stdlib sample, on their VM; student02
    still has the practical's starter, as delivered."""
    sample = REPO / "tests" / "workshop" / "grading" / "samples" / "stdlib"
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(sample, arcname=".")
    archive.seek(0)
    with connect(admin(classroom, 0)) as conn:
        conn.put(archive, "/tmp/practical.tar")
        conn.run("chmod 644 /tmp/practical.tar", hide=True)
    as_student(classroom, 0, "rm -rf ~/labs/practical && mkdir -p ~/labs/practical")
    as_student(classroom, 0, "tar -xf /tmp/practical.tar -C ~/labs/practical")
    return workshop(classroom, "grade", "--json", "--health-timeout", "30")


def test_grade_cohort_grades_each_practical_on_its_vm(graded, classroom):
    assert graded.returncode == 0, graded.stderr  # every submission graded
    cards = {card["student"]: card for card in json.loads(graded.stdout)}
    done = cards["student01"]
    assert done["score"] == 7, [
        r["message"] for r in done["requirements"] if r["status"] != "passed"
    ]
    assert done["source"] == "student01@student-01:~/labs/practical"
    graceful = next(r for r in done["requirements"] if r["kind"] == "graceful_shutdown")
    assert graceful["evidence"]["exit_code"] == 0
    starter = cards["student02"]
    assert starter["status"] == "graded"
    assert starter["score"] < 7
    stages = next(r for r in starter["requirements"] if r["kind"] == "multi_stage")
    assert stages["status"] == "failed"
    assert "1 stage" in stages["message"]
    saved = Path(classroom["state_dir"]) / "grades" / "student01.json"
    assert json.loads(saved.read_text())["score"] == 7
    with connect(admin(classroom, 0)) as conn:
        left = conn.sudo("docker ps -a --format '{{.Names}}'", hide=True).stdout
        left += conn.sudo("docker images", hide=True).stdout
    assert "ws-check" not in left


def test_the_assignments_self_check_runs_on_a_submission(graded, classroom):
    """ASSIGNMENT.md's commands, in the student's submission (the stdlib sample that
    scores 7): built, sized, on another PORT, healthy, non-root, stopped with a request
    sent, exit 0; nothing left running."""
    page = (REPO / "labs/practical/ASSIGNMENT.md").read_text()
    _, marker, after = page.partition(EDITS)
    assert marker, "the assignment marks where the submission is written"
    script = work.page_script("~/labs/practical", work.page_commands(after), tries=5)
    ran = as_student(classroom, 0, run_page(script))
    assert ran.return_code == 0, ran.stderr[-2000:]
    assert re.search(r"(?m)^practical\s+latest\s", ran.stdout), "docker image ls"
    assert re.search(r"(?m)^\{.*\}$", ran.stdout), "the request's answer"
    assert re.search(r"(?m)^0$", ran.stdout), "exit code 0 after docker stop"
    lines = ran.stdout.splitlines()
    header = [i for i, line in enumerate(lines) if re.search(r"UID\s+PID\s", line)]
    assert header, f"docker top's header: {ran.stdout[-1500:]}"
    rows = lines[header[0] + 1 :]
    uids = [line.split()[0] for line in rows if re.match(r"\s*\S+\s+\d+\s", line)]
    assert uids, "docker top lists the processes"
    assert not {"0", "root"} & set(uids), uids
    left = as_student(classroom, 0, "docker ps -aq; ls ~/labs/practical/answer.txt").stdout
    assert left.strip() == "", left


def test_the_report_has_the_practicals_scorecards(graded, classroom, tmp_path):
    page = tmp_path / "report.html"
    made = workshop(classroom, "report", "--html", str(page))
    assert made.returncode == 0, made.stderr
    soup = BeautifulSoup(page.read_text(), "html.parser")
    rows = {row["data-student"]: row for row in soup.select("#grades-table tbody tr")}
    assert rows["student01"]["data-score"] == "7"
    assert int(rows["student02"]["data-score"]) < 7
    assert "1 stage" in rows["student02"].get_text()
