#!/usr/bin/env python3
"""`make bench`: measure the kit on this machine and print a table of the numbers.

Measured here (each is one real run, not a mock):
  * building the student-VM base image from the Debian archive (debootstrap + import),
    and the student-VM image on top of it;
  * `cloud up --students 4` with the images already built, a second (idempotent) `up`,
    `status`, and `down`;
  * `workshop prepare` then `ansible-playbook site.yml` on fresh 1-VM and 4-VM cohorts,
    and its second (idempotent) run: goals 4 VMs within 1.5x of 1 VM, second run under
    25% of the first; `workshop deploy --all` into empty homes and again; `workshop
    check` of Activity 1 on 1 VM vs 4 VMs (every student's work the reference solution);
  * push_all: three kit images to three registries (ECR, Artifact Registry and ACR, each
    the local server from tests/fakes in front of a real distribution registry on this
    disk), all at once vs one by one, and a second run vs the first (goal < 10%); a
    1 GB image (a generated layer) to one registry and to all three at once (s, MB/s);
  * labs: size of each base stand-in and lab image, the classifier's cold build vs the
    rebuild after a code-only change, and its latency p50/p95 on this CPU;
  * grade: `workshop grade` on one submission (the Flask sample of the tests) with a cold
    and a warm build cache, and 10 submissions graded 10 at once vs one after another;
  * aws: `cloud up --provider aws` of 100 VMs, a second up, and down, against moto's EC2
    (with the tests' Service Quotas server), and again with one of the two zones full:
    seconds, API calls, concurrency (the lab cloud's `cloud up` above is the comparison
    for the time to SSH);
  * gcp, azure: the same against the tests' local Compute Engine and Resource Manager
    servers, through google-cloud-compute and azure-mgmt-compute/-network.
Cohorts run in a private state directory, so they never disturb `make demo`'s.
`python scripts/bench.py --only labs` runs one section (cloud, site, registries, labs,
grade, aws, gcp, azure).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import docker.errors
from bench_clouds import cohort_file, round_trips  # scripts/, beside this file
from rich.console import Console
from rich.table import Table

T = TypeVar("T")
BENCH_STUDENTS = int(os.environ.get("BENCH_STUDENTS", "4"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(function: Callable[[], T]) -> tuple[T, float]:
    started = time.monotonic()
    result = function()
    return result, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=["cloud", "site", "registries", "labs", "grade", "aws", "gcp", "azure"],
    )
    only = parser.parse_args().only
    os.environ["WORKSHOP_STATE_DIR"] = tempfile.mkdtemp(prefix="workshop-bench-")
    # Imported after WORKSHOP_STATE_DIR is set, so the bench never touches state/.
    from workshop.engine import docker_client
    from workshop.labcloud import cloud, images

    console = Console(width=100)
    client = docker_client()
    distro = images.get_distro(images.DEFAULT_DISTRO)
    rows: list[tuple[str, str, str]] = []
    ready = True
    if only in (None, "cloud"):
        ready = bench_cloud(console, client, cloud, images, distro, rows)
    if only in (None, "site"):
        rows += bench_site(cloud, distro.key)
    if only in (None, "registries"):
        rows += bench_registries(console, client, images, distro)
    if only in (None, "labs"):
        rows += bench_labs(console, client)
    if only in (None, "grade"):
        rows += bench_grade(console, client)
    if only in (None, "aws"):
        rows += bench_aws(console)
    # The clouds' benches live beside this file (each starts its cloud's local fake).
    if only in (None, "gcp"):
        from bench_clouds_gcp import bench_gcp

        rows += bench_gcp(console)
    if only in (None, "azure"):
        from bench_clouds_azure import bench_azure

        rows += bench_azure(console)

    table = Table(title=f"Lab cloud, provisioning and registry benchmark ({os.cpu_count()} cores)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0 if ready else 1


def bench_cloud(console, client, cloud, images, distro, rows) -> bool:  # noqa: ANN001
    """Image builds from the Debian archive, then cloud up/up/status/down."""
    from workshop.labcloud.spec import validate_spec

    console.print("[dim]building the base image from the Debian archive (about a minute)...[/]")
    base = images.build_base(client, distro, force=True)
    rows.append(("base image: debootstrap + import", f"{base.seconds:.1f} s", distro.suite))
    vm = images.build_image(client, "student-vm", distro, force=True)
    rows.append(("student VM image on the base", f"{vm.seconds:.1f} s", "classic builder"))
    registry = images.build_image(client, "classroom-registry", distro, force=True)
    rows.append(("classroom registry image", f"{registry.seconds:.1f} s", "classic builder"))
    # The forced rebuilds left the previous images untagged; drop those nothing uses.
    client.images.prune(filters={"dangling": True, "label": images.RECIPE_LABEL})

    cohort = f"bench-{secrets.token_hex(3)}"
    spec = validate_spec(cohort, BENCH_STUDENTS, distro.key)
    try:
        console.print(f"[dim]cloud up --students {BENCH_STUDENTS}...[/]")
        first, seconds = timed(lambda: cloud.up(spec))
        ready = "ready" if first.ready else "NOT ready"
        rows.append(
            (f"cloud up --students {BENCH_STUDENTS} (images built)", f"{seconds:.1f} s", ready)
        )
        second, seconds = timed(lambda: cloud.up(spec))
        rows.append(("second up (idempotent)", f"{seconds:.1f} s", f"{len(second.vms)} VMs"))
        report, seconds = timed(lambda: cloud.status(cohort))
        ssh_ok = sum(vm.ssh_ok for vm in report.vms)
        rows.append(("cloud status", f"{seconds:.1f} s", f"{ssh_ok}/{len(report.vms)} SSH ok"))
    finally:
        _, seconds = timed(lambda: cloud.down(cohort))
        rows.append(("cloud down", f"{seconds:.1f} s", "removed"))
    return bool(first.ready)


def site_run(inventory: str) -> tuple[float, int, bool]:
    """One site.yml run: wall seconds, tasks changed (all hosts), whether it succeeded."""
    started = time.monotonic()
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            inventory,
            "site.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", result.stdout))
    return seconds, changed, result.returncode == 0


def workshop(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """One `workshop` command as a user runs it: (wall seconds, result)."""
    command = [os.path.join(os.path.dirname(sys.executable), "workshop"), *args]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    return time.monotonic() - started, result


def as_students(inventory: str, command: str) -> None:
    """Run ``command`` as every VM's student (ansible ad hoc, become_user per host)."""
    subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible"),
            "-i",
            inventory,
            "student_vms",
            "--become",
            "--become-user",
            "{{ workshop_students[0].login }}",
            "-m",
            "ansible.builtin.shell",
            "-a",
            command,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )


LAB = "02-image-classifier"


def bench_site(cloud, distro: str) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """On a fresh 1-VM and 4-VM cohort: prepare, site.yml and its idempotent second run,
    deploy --all into empty homes and again, and workshop check of Activity 1 with every
    student's work the reference solution."""
    from workshop.labcloud.spec import paths, validate_spec

    rows: list[tuple[str, str, str]] = []
    firsts, checks = {}, {}
    for students in (1, BENCH_STUDENTS):
        cohort = f"bench-site{students}-{secrets.token_hex(2)}"
        try:
            cloud.up(validate_spec(cohort, students, distro))
            inventory = str(paths(cohort).inventory)
            seconds, result = workshop("prepare", "--cohort", cohort)
            rows.append(
                (
                    f"workshop prepare, {students} VM(s)",
                    f"{seconds:.1f} s",
                    "ok" if result.returncode == 0 else "FAILED",
                )
            )
            first, changed, ok = site_run(inventory)
            firsts[students] = first
            rows.append(
                (
                    f"site.yml, {students} VM(s), fresh",
                    f"{first:.1f} s",
                    f"{'ok' if ok else 'FAILED'}, {changed} changed",
                )
            )
            second, changed, ok = site_run(inventory)
            rows.append(
                (
                    f"site.yml, {students} VM(s), second run",
                    f"{second:.1f} s",
                    f"{'ok' if ok else 'FAILED'}, {changed} changed, "
                    f"{100 * second / first:.0f}% of first (goal < 25%)",
                )
            )
            as_students(inventory, "rm -rf ~/labs")
            for what in ("into empty homes", "again (nothing new)"):
                seconds, result = workshop("deploy", "--all", "--cohort", cohort)
                rows.append(
                    (
                        f"deploy --all (7 labs), {students} VM(s), {what}",
                        f"{seconds:.1f} s",
                        "ok" if result.returncode == 0 else "FAILED",
                    )
                )
            workshop("deploy", "--lab", LAB, "--solution", "--cohort", cohort)
            as_students(inventory, f"cp -r ~/labs/{LAB}/solution/. ~/labs/{LAB}/")
            for what in ("first", "again"):
                seconds, result = workshop("check", "--lab", LAB, "--cohort", cohort)
                checks[(students, what)] = seconds
                rows.append(
                    (
                        f"workshop check {LAB}, {students} VM(s), {what}",
                        f"{seconds:.1f} s",
                        "all passed" if result.returncode == 0 else "NOT all passed",
                    )
                )
        finally:
            cloud.down(cohort)
    ratio = firsts[BENCH_STUDENTS] / firsts[1]
    rows.append((f"site.yml {BENCH_STUDENTS} VMs / 1 VM", f"{ratio:.2f}x", "goal <= 1.5x"))
    ratio = checks[(BENCH_STUDENTS, "again")] / checks[(1, "again")]
    rows.append(
        (
            f"workshop check {BENCH_STUDENTS} VMs / 1 VM",
            f"{ratio:.2f}x",
            "builds and runs on every VM at once, all sharing this machine's cores",
        )
    )
    return rows


def bench_registries(console, client, images, distro) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """push_all: 3 images x 3 registries, concurrent vs one by one, then a second run."""
    sys.path.insert(0, REPO)
    from registries import push
    from tests.fakes.clouds import cloud_registries

    sources = [
        push.SourceImage(images.build_image(client, "hello", distro).tag, "lab/hello", "1"),
        push.SourceImage(images.build_base(client, distro).tag, "lab/python-base", "1"),
        push.SourceImage(
            images.build_image(client, "classroom-registry", distro).tag, "lab/registry", "1"
        ),
    ]
    sizes = sum(client.images.get(s.local).attrs["Size"] for s in sources) / 1e6
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-registries-") as root:
        console.print("[dim]push_all: 3 images to 3 registries, all at once...[/]")
        with cloud_registries(os.path.join(root, "concurrent")) as registries:
            first, concurrent = timed(lambda: push.push_all(client, registries, sources))
            second, again = timed(lambda: push.push_all(client, registries, sources))
        console.print("[dim]push_all: the same, one push at a time...[/]")
        with cloud_registries(os.path.join(root, "serial")) as registries:
            serial_results, serial = timed(
                lambda: push.push_all(client, registries, sources, workers=1)
            )
    results = first + second + serial_results
    untag(client, results)
    failed = [r.error for r in results if not r.ok]
    uploaded = sum(r.bytes_uploaded for r in first) / 1e6
    note = f"{len(first)} pushes, {uploaded:.0f} MB of layers sent ({sizes:.0f} MB of images)"
    rows.append(("push_all 3 images x 3 registries, concurrent", f"{concurrent:.1f} s", note))
    rows.append(
        (
            "push_all, one push at a time",
            f"{serial:.1f} s",
            f"concurrent is {serial / concurrent:.2f}x faster",
        )
    )
    skipped = sum(r.layers_skipped for r in second)
    rows.append(
        (
            "push_all second run (nothing new)",
            f"{again:.1f} s",
            f"{100 * again / concurrent:.0f}% of first (goal < 10%), "
            f"{sum(r.bytes_uploaded for r in second)} B sent, {skipped} layers skipped",
        )
    )
    if failed:
        rows.append(("push_all FAILURES", str(len(failed)), failed[0][:60]))
    return rows + bench_big_push(console, client, images, distro)


def untag(client, results) -> None:  # noqa: ANN001
    """Drop the target tags a push keeps: the bench's registries are gone after it."""
    for result in results:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f"{result.uri}:{result.tag}", noprune=True)


def bench_big_push(console, client, images, distro) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """An ML-sized image (a generated 1 GB layer): to one registry, then to three at once."""
    from registries import push
    from tests.fakes.clouds import cloud_registries

    base = images.build_base(client, distro).tag
    tag = "kit-bench/big:1"
    dockerfile = f"FROM {base}\nRUN head -c 1000000000 /dev/urandom > /weights.bin\n"
    console.print("[dim]push_all: a 1 GB image, to one registry and to three at once...[/]")
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    source = [push.SourceImage(tag, "lab/big", "1")]
    rows: list[tuple[str, str, str]] = []
    pushed: list = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-big-") as root:
            with cloud_registries(os.path.join(root, "one")) as registries:
                one, alone = timed(
                    lambda: push.push_all(client, {"ecr": registries["ecr"]}, source)
                )
                pushed += one
            with cloud_registries(os.path.join(root, "three")) as registries:
                three, together = timed(lambda: push.push_all(client, registries, source))
                pushed += three
    finally:
        untag(client, pushed)
        client.images.remove(tag, force=True)
    for label, results, seconds in (
        ("push_all 1 GB image to 1 registry (ECR)", one, alone),
        ("push_all 1 GB image to 3 registries at once", three, together),
    ):
        sent = sum(r.bytes_uploaded for r in results) / 1e6
        failed = [r.error for r in results if not r.ok]
        note = f"{sent:.0f} MB sent, {sent / seconds:.0f} MB/s" + (
            f"; FAILED: {failed[0][:40]}" if failed else ""
        )
        rows.append((label, f"{seconds:.1f} s", note))
    return rows


def bench_labs(console, client) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """Base and lab image sizes; cold build vs code-only rebuild; classifier latency."""
    import shutil
    import statistics

    import requests

    sys.path.insert(0, REPO)
    from workshop.labs import bases, catalog

    rows: list[tuple[str, str, str]] = []
    console.print("[dim]labs: base stand-ins...[/]")
    for result in bases.build_bases(client):
        rows.append((f"base {result.official} (stand-in)", f"{result.size_mb:.0f} MB", "size"))
    for lab in catalog.all_labs():
        for image in lab.images:
            if image.buildkit:  # RUN --mount: the lab's tests build it with buildx
                continue
            tag, _ = catalog.build(client, lab, image)
            size = client.images.get(tag).attrs["Size"] / 1e6
            goal = f"limit {image.size_limit_mb:.0f} MB" if image.size_limit_mb else ""
            if image.size_goal_mb:
                goal += f", goal {image.size_goal_mb:.0f} MB"
            rows.append((f"{lab.name} {image.name} image", f"{size:.0f} MB", goal))

    for lab in catalog.all_labs():
        if lab.compare:
            before, after = (client.images.get(lab.image_tag(lab.image(n))) for n in lab.compare)
            reduction = 100 * (1 - after.attrs["Size"] / before.attrs["Size"])
            rows.append(
                (
                    f"{lab.name}: {lab.compare[0]} vs {lab.compare[1]}",
                    f"-{reduction:.0f}%",
                    f"{before.attrs['Size'] / 1e6:.0f} MB -> {after.attrs['Size'] / 1e6:.0f} MB"
                    " (goal >= 75%)",
                )
            )

    lab = catalog.load("02-image-classifier")
    spec = lab.image("classifier")
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
        copy = os.path.join(tmp, lab.name)
        shutil.copytree(lab.directory, copy, ignore=shutil.ignore_patterns("__pycache__"))
        moved = lab.model_copy(update={"directory": catalog.Path(copy)})
        console.print("[dim]labs: classifier cold build (no cache)...[/]")
        tag, cold = catalog.build(client, moved, spec, tag="bench-lab02:cold", nocache=True)
        main = os.path.join(copy, "app", "main.py")
        with open(main, "a") as handle:
            handle.write("\n# a code-only change\n")
        _, rebuild = catalog.build(client, moved, spec, tag="bench-lab02:cold")
        rows.append(("classifier cold build (pip install included)", f"{cold:.1f} s", ""))
        rows.append(
            (
                "classifier rebuild after a code-only change",
                f"{rebuild:.1f} s",
                f"{100 * rebuild / cold:.0f}% of cold: dependency layers reused",
            )
        )
        client.images.remove(tag, force=True)

    console.print("[dim]labs: classifier latency (100 requests)...[/]")
    import io

    import skimage.data
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, format="JPEG")
    container = client.containers.run(
        lab.image_tag(spec), detach=True, ports={"8000/tcp": ("127.0.0.1", None)}
    )
    try:
        container.reload()
        url = f"http://127.0.0.1:{container.ports['8000/tcp'][0]['HostPort']}"
        for _ in range(120):
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        timings = []
        for _ in range(100):
            started = time.perf_counter()
            response = requests.post(
                f"{url}/predict", files={"file": ("cat.jpg", buffer.getvalue())}, timeout=30
            )
            response.raise_for_status()
            timings.append((time.perf_counter() - started) * 1000)
        cuts = statistics.quantiles(timings, n=20)
        rows.append(
            (
                "classifier POST /predict latency",
                f"p50 {statistics.median(timings):.0f} ms",
                f"p95 {cuts[18]:.0f} ms, 100 sequential requests, {os.cpu_count()} CPUs",
            )
        )
    finally:
        container.remove(force=True)
    return rows


def bench_grade(console, client) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """The grader: one submission cold and warm; 10 at once vs one after another."""
    import shutil
    from pathlib import Path

    from workshop.grading import grader

    samples = Path(REPO) / "tests" / "workshop" / "grading" / "samples"
    rows: list[tuple[str, str, str]] = []
    limits = grader.Limits(health_timeout=60)
    with tempfile.TemporaryDirectory(prefix="bench-grade-") as scratch:
        cold = Path(scratch) / "flask"
        shutil.copytree(samples / "flask", cold)
        dockerfile = cold / "Dockerfile"
        # a step no earlier build has run, after each FROM: nothing comes from the cache
        token = secrets.token_hex(4)
        dockerfile.write_text(
            re.sub(r"^(FROM .*)$", rf"\1\nRUN echo {token}", dockerfile.read_text(), flags=re.M)
        )
        console.print("[dim]grading one submission with a cold, then a warm build cache...[/]")
        for what in ("cold build cache", "warm build cache"):
            [card], seconds = timed(
                lambda: grader.grade_sources(
                    client, [str(cold)], limits=limits, trust_extra_ca=True
                )
            )
            rows.append(
                (
                    f"workshop grade, 1 submission (Flask + gunicorn), {what}",
                    f"{seconds:.1f} s",
                    f"{card.score}/{card.total}",
                )
            )
        copies = []
        for number in range(10):
            copy = Path(scratch) / f"student{number:02d}"
            shutil.copytree(samples / "stdlib", copy)
            copies.append(str(copy))
        console.print("[dim]grading 10 submissions, one after another, then 10 at once...[/]")
        timings = {}
        for jobs in (1, 10):
            cards, seconds = timed(
                lambda: grader.grade_sources(client, copies, jobs=jobs, limits=limits)  # noqa: B023
            )
            timings[jobs] = seconds
            scores = sorted({f"{card.score}/{card.total}" for card in cards})
            rows.append(
                (
                    f"workshop grade, 10 submissions (stdlib), --jobs {jobs}",
                    f"{seconds:.1f} s",
                    f"scores {', '.join(scores)}; {seconds / 10:.1f} s each",
                )
            )
        rows.append(
            (
                "10 submissions: --jobs 10 vs --jobs 1",
                f"{timings[1] / timings[10]:.2f}x faster",
                f"{os.cpu_count()} cores shared by every build and container",
            )
        )
    return rows


def bench_aws(console) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """100 VMs up, up again and down against moto's EC2; then with one zone full."""
    sys.path.insert(0, REPO)
    from moto.server import ThreadedMotoServer

    from tests.fakes.distribution import free_port
    from tests.fakes.ec2 import CapacityProxy, ServiceQuotasServer
    from workshop.cloudvms import aws, spec

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    proxy = CapacityProxy(f"http://127.0.0.1:{port}").start()
    quotas = ServiceQuotasServer().start()
    quotas.applied["L-DB2E81BA"] = 100_000.0
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_ENDPOINT_URL_EC2=proxy.url,
        AWS_ENDPOINT_URL_SSM=f"http://127.0.0.1:{port}",
        AWS_ENDPOINT_URL_SERVICE_QUOTAS=quotas.url,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-aws-") as root:
            config = cohort_file(
                Path(root),
                "provider: aws\nregion: us-east-1\nzones: [us-east-1a, us-east-1b]\n"
                "instance_types: [g4dn.xlarge]\nimage: ami-12c6146b\n",
            )
            cloud = aws.AwsCloud(spec.load(config))
            calls: list[str] = []
            for client in (cloud.ec2, cloud.launcher, cloud.quotas, cloud.ssm):
                client.meta.events.register(
                    "before-call.*.*", lambda model, **_: calls.append(model.name)
                )
            runs = [("", set()), (", zone a full", {("us-east-1a", None)})]
            return round_trips(
                console, "aws", cloud, runs, partial(setattr, proxy, "full"), lambda: len(calls)
            )
    finally:
        proxy.stop()
        quotas.stop()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
