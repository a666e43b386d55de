"""The one table of check kinds: each lab.yml ``kind`` -> (its settings model, its function).

A kind is a settings model (a subclass of ``CheckSettings`` whose ``kind`` is a one-value
``Literal``) and a function ``check_<kind>(session, settings) -> Outcome`` beside it, in the
file of its family. Adding a kind is those two and one line here. ``parse`` reads a lab's
checks through the models joined on ``kind``: a setting that is not its kind's is refused,
naming the lab, the check and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args

from pydantic import Field, TypeAdapter, ValidationError

from workshop.checking.kinds import build, compose, files, image, registry, runtime, service
from workshop.checking.results import Outcome
from workshop.checking.settings import CheckSettings
from workshop.errors import WorkshopError

if TYPE_CHECKING:
    from workshop.checking.session import Session
    from workshop.labs import catalog

Function = Callable[["Session", Any], Outcome]

_TABLE: list[tuple[type[CheckSettings], Function]] = [
    (service.Health, service.check_health),
    (service.Predict, service.check_predict),
    (service.Reject, service.check_reject),
    (service.Generate, service.check_generate),
    (service.EnvConfig, service.check_env_config),
    (service.CacheHit, service.check_cache_hit),
    (service.DatabaseRow, service.check_database_row),
    (service.Replicas, service.check_replicas),
    (image.Size, image.check_size),
    (image.SizeReduction, image.check_size_reduction),
    (image.MultiStage, image.check_multi_stage),
    (image.Pinned, image.check_pinned),
    (build.LayerReuse, build.check_layer_reuse),
    (build.BuildSecret, build.check_build_secret),
    (build.Dockerignore, build.check_dockerignore),
    (build.CacheMount, build.check_cache_mount),
    (runtime.NonRoot, runtime.check_non_root),
    (runtime.GracefulShutdown, runtime.check_graceful_shutdown),
    (runtime.InitProcess, runtime.check_init_process),
    (compose.ComposeSecret, compose.check_compose_secret),
    (compose.ResourceLimits, compose.check_resource_limits),
    (compose.ComposeProfile, compose.check_compose_profile),
    (compose.ComposeUp, compose.check_compose_up),
    (files.Readme, files.check_readme),
    (files.Script, files.check_script),
    (files.Lint, files.check_lint),
    (files.OidcOnly, files.check_oidc_only),
    (registry.RegistryTags, registry.check_registry_tags),
]


def kind_of(model: type[CheckSettings]) -> str:
    """The kind a settings model is for (its ``kind`` field's one value)."""
    (kind,) = get_args(model.model_fields["kind"].annotation)
    return str(kind)


KINDS: dict[str, tuple[type[CheckSettings], Function]] = {
    kind_of(model): (model, function) for model, function in _TABLE
}
# Every kind's model, joined on ``kind``: pydantic picks the model by the kind's value.
_UNION: Any = Annotated[
    Union[tuple(model for model, _ in _TABLE)],  # noqa: UP007 (built from the table)
    Field(discriminator="kind"),
]
_ANY_CHECK: TypeAdapter[CheckSettings] = TypeAdapter(_UNION)


def parse(lab: catalog.Lab) -> list[CheckSettings]:
    """The lab's checks, each through its kind's model; a ``WorkshopError`` naming the lab,
    the check and the field for the first that does not fit."""
    parsed = []
    for number, raw in enumerate(lab.checks, start=1):
        entry = raw.model_dump()
        where = f"{lab.name}/lab.yml, check {entry.get('name') or number!r}"
        if entry.get("kind") not in KINDS:
            raise WorkshopError(
                f"{where}: unknown kind {entry.get('kind')!r}; the kinds are "
                f"{', '.join(sorted(KINDS))}"
            )
        try:
            parsed.append(_ANY_CHECK.validate_python(entry))
        except ValidationError as exc:
            raise WorkshopError(f"{where} ({entry['kind']}): {_first_problem(exc)}") from None
    return parsed


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    field = ".".join(str(part) for part in problem["loc"][1:]) or "the check"
    if problem["type"] == "extra_forbidden":
        model, _ = KINDS[str(problem["loc"][0])]
        own = sorted(set(model.model_fields) - {"name", "kind"})
        return (
            f"{field} is not a setting of this kind (its settings: "
            f"{', '.join(own) if own else 'none'})"
        )
    return f"{field}: {problem['msg']}"
