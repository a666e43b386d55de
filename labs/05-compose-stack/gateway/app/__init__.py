"""Activity 3: the API gateway in front of the model server, Redis and PostgreSQL."""
