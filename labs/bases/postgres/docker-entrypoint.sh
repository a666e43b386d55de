#!/bin/sh
# First start: initdb with POSTGRES_USER/POSTGRES_PASSWORD, create POSTGRES_DB, listen on
# all interfaces with password auth. Later starts: straight to postgres (exec, PID 1).
set -eu

file_env() {  # VAR or VAR_FILE (the official image's convention for secrets)
    var="$1"; file_var="${1}_FILE"; default="${2:-}"
    eval "value=\${$var:-}"; eval "file=\${$file_var:-}"
    if [ -n "$file" ]; then value="$(cat "$file")"; fi
    [ -n "$value" ] || value="$default"
    export "$var=$value"
}

if [ "${1:-}" = "postgres" ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    if [ -z "$POSTGRES_PASSWORD" ]; then
        echo "error: POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) must be set" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
    rm -f "$pwfile"
    printf "host all all all scram-sha-256\n" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != "postgres" ]; then
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres: initialised database $POSTGRES_DB for $POSTGRES_USER"
fi

if [ "${1:-}" = "postgres" ]; then
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
