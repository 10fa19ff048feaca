#!/bin/sh
# Apply the database migrations (the chart runs this in an init container).
exec python -m agent_backend.migrate "$@"
