"""A lab as students get it: their copy of ``~/labs/<lab>/`` and, on request, the solution.

The student's copy is the lab's README, the files it gives as they are, its ``starter/``
laid over them, and the inputs the instructor hands out (the classifier's ONNX model and
labels, test photographs). The solution is the same directory completed with the
reference files: a build context that works as it is. Never one in the other.

``build_materials`` writes both as reproducible ``.tar.gz`` archives (sorted, fixed
times and owners) with a ``manifest.json`` into the cohort's ``materials/`` directory,
which the ``lab_materials`` role delivers: the same labs give the same bytes, so a
second delivery copies nothing.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workshop import state
from workshop.labs import catalog

MATERIALS = "materials"
MANIFEST = "manifest.json"
SOLUTION_DIR = "solution"
# Any fixed time: archives must not change when nothing in them did.
EPOCH = 1767225600  # 2026-01-01T00:00:00Z
EXTRA_CA = "extra-ca.crt"
SKIP = ("__pycache__", ".pyc", ".prepared", ".pytest_cache")
PHOTO_CREDITS = """# Test photographs

From scikit-image's sample data (`skimage.data`), each free to use:

| file | what | licence |
| --- | --- | --- |
| `cat.jpg`, `other4.jpg` | Chelsea the cat (`chelsea`) | CC0, Stefan van der Walt |
| `coffee.jpg`, `other5.jpg` | a cup of coffee (`coffee`) | CC0, Rachel Michetti |
| `other1.jpg` | astronaut Eileen Collins (`astronaut`) | public domain, NASA |
| `other2.jpg` | a Falcon 9 launch (`rocket`) | public domain, SpaceX |
| `other3.jpg` | Hubble eXtreme Deep Field (`hubble_deep_field`) | public domain, NASA |
| `other6.jpg` | Greek coins from Pompeii (`coins`) | public domain, Walters Art Museum |

`notes.txt` is not an image: send it to see how a service refuses what it cannot read.
"""

Files = dict[str, bytes]


@functools.cache
def photos() -> Files:
    """Test photographs (JPEG) from scikit-image's sample data, with their credits."""
    import numpy as np
    import skimage.data
    from PIL import Image

    def jpeg(array: np.ndarray) -> bytes:
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    cat, coffee = skimage.data.chelsea(), skimage.data.coffee()
    return {
        "cat.jpg": jpeg(cat),
        "coffee.jpg": jpeg(coffee),
        "other1.jpg": jpeg(skimage.data.astronaut()),
        "other2.jpg": jpeg(skimage.data.rocket()),
        "other3.jpg": jpeg(skimage.data.hubble_deep_field()),
        "other4.jpg": jpeg(np.ascontiguousarray(cat[:, ::-1])),
        "other5.jpg": jpeg(np.ascontiguousarray(coffee[50:350, 100:500])),
        "other6.jpg": jpeg(skimage.data.coins()),
        "notes.txt": b"These are not the pixels you are looking for.\n",
        "PHOTOS.md": PHOTO_CREDITS.encode(),
    }


def classifier_model() -> Files:
    """The classifier's ONNX model and labels, exported once (``prepare-model``)."""
    from workshop.labs import classifier_model

    classifier_model.prepare()
    folder = classifier_model.SCRIPT.parent
    return {f"model/{name}": (folder / name).read_bytes() for name in classifier_model.OUTPUTS}


INPUTS: dict[str, Callable[[], Files]] = {"classifier-model": classifier_model, "photos": photos}


def _read_tree(base: Path, entry: str) -> Files:
    path = base / entry.rstrip("/")
    if path.is_file():
        return {entry.rstrip("/"): path.read_bytes()}
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: named in lab.yml's handout but not there")
    found = {}
    for file in sorted(path.rglob("*")):
        if file.is_file() and not any(part in str(file) for part in SKIP):
            found[str(file.relative_to(base))] = file.read_bytes()
    return found


def _executable(lab: catalog.Lab, name: str) -> bool:
    for base in (lab.directory / lab.handout.source, lab.directory / "starter", lab.directory):
        if (base / name).is_file():
            return os.access(base / name, os.X_OK)
    return name.endswith(".sh")


def starter_files(lab: catalog.Lab) -> Files:
    """The files students start from and edit (``starter/``, laid over the copy)."""
    starter = lab.directory / "starter"
    return _read_tree(starter, ".") if starter.is_dir() else {}


def starter_digests(lab: catalog.Lab) -> dict[str, str]:
    """sha256 of each starter file as delivered: all unchanged means not started yet."""
    return {name: _sha256(data) for name, data in starter_files(lab).items()}


def student_page(lab: catalog.Lab) -> Path:
    """The page students read: the lab's own file named ``readme_as`` (the practical's
    ASSIGNMENT.md, which gives no answer away), else its README."""
    page = lab.directory / lab.handout.readme_as
    return page if page.is_file() else lab.directory / "README.md"


def student_files(lab: catalog.Lab, extra_ca: Path | None = None) -> Files:
    """The student's copy of ``lab``: README, given files, starter, inputs."""
    source = lab.directory / lab.handout.source
    files: Files = {lab.handout.readme_as: student_page(lab).read_bytes()}
    for entry in lab.handout.files:
        files.update(_read_tree(source, entry))
    files.update(starter_files(lab))
    for name in lab.handout.inputs:
        files.update(INPUTS[name]())
    if extra_ca is not None:  # in each build context the student's copy holds
        for image in lab.images:
            if not image.from_lab:
                context = Path(lab.student_context(image))
                files[str(context / EXTRA_CA) if str(context) != "." else EXTRA_CA] = (
                    extra_ca.read_bytes()
                )
    return files


def solution_files(lab: catalog.Lab, extra_ca: Path | None = None) -> Files:
    """The reference solution as a complete directory (given files, inputs, solution)."""
    files = student_files(lab, extra_ca)
    for name in starter_files(lab):  # the starter is not part of the solution
        files.pop(name, None)
    files.pop(lab.handout.readme_as, None)
    source = lab.directory / lab.handout.source
    for entry in lab.handout.solution:
        files.update(_read_tree(source, entry))
    return files


def write_tree(lab: catalog.Lab, files: Files, destination: Path) -> Path:
    """Write ``files`` under ``destination`` (a student's copy, for the kit's own tests)."""
    for name, data in files.items():
        path = destination / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o755 if _executable(lab, name) else 0o644)
    return destination


def archive(lab: catalog.Lab, files: Files) -> bytes:
    """A reproducible .tar.gz of ``files``: the same files give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(p) for name in files for p in Path(name).parents} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            tar.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(files[name]), EPOCH
            info.mode = 0o755 if _executable(lab, name) else 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LabMaterials:
    """One lab's archives and what the checks need to know about the student's copy."""

    name: str
    title: str
    archive: str
    sha256: str
    files: int
    solution_archive: str
    solution_sha256: str
    # sha256 of each file students edit, as delivered: all unchanged = not started yet
    starter: dict[str, str] = field(default_factory=dict)


@dataclass
class Materials:
    """``<state>/materials/manifest.json``: every lab's archives, for delivery."""

    directory: str
    labs: dict[str, LabMaterials] = field(default_factory=dict)
    extra_ca: bool = False


def materials_dir(state_dir: Path) -> Path:
    return state_dir / MATERIALS


def build_materials(
    state_dir: Path, labs: list[catalog.Lab], extra_ca: Path | None = None
) -> Materials:
    """Write each lab's student and solution archives and the manifest; unchanged archives
    are not rewritten."""
    directory = materials_dir(state_dir)
    result = Materials(str(directory), extra_ca=extra_ca is not None)
    for lab in labs:
        given = student_files(lab, extra_ca)
        student = archive(lab, given)
        solution = archive(lab, solution_files(lab, extra_ca))
        outputs = {f"{lab.name}.tar.gz": student, f"{lab.name}.solution.tar.gz": solution}
        for name, data in outputs.items():
            path = directory / name
            if not path.exists() or path.read_bytes() != data:
                state.write_file(path, data)
        result.labs[lab.name] = LabMaterials(
            name=lab.name,
            title=lab.title,
            archive=f"{lab.name}.tar.gz",
            sha256=_sha256(student),
            files=len(given),
            solution_archive=f"{lab.name}.solution.tar.gz",
            solution_sha256=_sha256(solution),
            starter=starter_digests(lab),
        )
    previous = read_materials(state_dir)
    if previous is not None:  # a partial build keeps the other labs' entries
        result.labs = {**previous.labs, **result.labs}
    manifest = asdict(result)
    state.write_file(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return result


def read_materials(state_dir: Path) -> Materials | None:
    """The manifest ``build_materials`` wrote, or None before the first build."""
    try:
        raw = json.loads((materials_dir(state_dir) / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    labs = {name: LabMaterials(**entry) for name, entry in raw.pop("labs").items()}
    return Materials(labs=labs, **raw)
