"""Container registry adapters: one protocol (``base.Registry``), one module per backend.

| name  | backend                                          | module      |
| ----- | ------------------------------------------------ | ----------- |
| local | the classroom registry (distribution API)        | local.py    |
| ecr   | AWS Elastic Container Registry (boto3)           | ecr.py      |
| gcr   | Google Artifact Registry (google-cloud-...)      | artifact.py |
| acr   | Azure Container Registry (azure-mgmt-..., azure-containerregistry) | acr.py |

``config.py`` reads ``registries.yml`` and holds the name -> adapter table; ``push.py``
pushes images to several registries at once (``scripts/push_all.py``); ``cohort.py`` gives
each student repositories and credentials (``workshop registries create/delete``).
"""

from registries.base import Credentials, Registry, RegistryError

__all__ = ["Credentials", "Registry", "RegistryError"]
