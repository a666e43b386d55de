"""Container registry adapters: one protocol (``base.Registry``), one module per backend.

| name  | backend                                   | module     |
| ----- | ----------------------------------------- | ---------- |
| local | the classroom registry (distribution API) | local.py   |
| ecr   | AWS Elastic Container Registry (boto3)    | ecr.py     |

Google Artifact Registry (``gcr``) and Azure Container Registry (``acr``) adapters, the
cohort workflow and ``scripts/push_all.py`` are still to come (see the registries issue).
"""

from registries.base import Credentials, Registry, RegistryError

__all__ = ["Credentials", "Registry", "RegistryError"]
