"""Lesson 04: the reference solution script, run as a student runs it."""

from __future__ import annotations

import os
import secrets
import subprocess

from workshop.labs import bases, catalog

LAB = catalog.load("04-networking-volumes")


def test_solution_script_shows_name_resolution_and_a_shared_model_volume(engine):
    lab_name, image_name = LAB.uses[0].split("/")
    source = catalog.load(lab_name)
    image, _ = catalog.build(engine, source, source.image(image_name))
    prefix = f"l04-{secrets.token_hex(3)}"
    result = subprocess.run(
        [str(LAB.directory / "solution.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "IMAGE": image,
            "PYTHON_IMAGE": bases.build_arg("python"),
            "PREFIX": prefix,
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert 'by name: {"status":"ok","model":"efficientnet_lite0","labels":1000}' in out
    assert f"default bridge: '{prefix}-classifier' does not resolve" in out
    assert f"{prefix}-models:/models" in out
    assert out.strip().endswith("ok")
    # Nothing is left behind.
    assert not engine.containers.list(all=True, filters={"name": prefix})
    assert not engine.volumes.list(filters={"name": prefix})
    assert not engine.networks.list(names=[f"{prefix}-net"])
