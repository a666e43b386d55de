"""Activity 4: a text-to-image service (diffusers behind FastAPI), on the GPU when there is one."""
