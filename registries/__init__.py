"""Container registry adapters (ECR, Artifact Registry, ACR, the classroom registry).

The adapters land with the registries issue; the package exists so that the layout,
packaging and imports are stable from the start.
"""
