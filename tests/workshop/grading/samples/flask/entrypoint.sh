#!/bin/sh
# Runs whatever CMD says, as PID 1 (exec), so SIGTERM reaches gunicorn.
set -e
echo "starting on port ${PORT}"
exec "$@"
