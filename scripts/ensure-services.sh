#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432, database "test", trust auth) and Redis
# (127.0.0.1:6379) answer. Where one does not, starts a throwaway instance from the
# installed server binaries, or says exactly what to install. Idempotent.
set -euo pipefail

PG_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
STATE="${PORTCULLIS_TEST_STATE:-$HOME/.cache/portcullis/services}"

pg_ok() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
redis_ok() { command -v redis-cli >/dev/null && [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_ok; then
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "starting the installed PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if ! pg_ok; then
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$bindir" ]; then
    echo "PostgreSQL is not running and not installed: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "starting a throwaway PostgreSQL in $STATE/pg"
  mkdir -p "$STATE"
  rm -rf "$STATE/pg"
  owner=postgres
  id "$owner" >/dev/null 2>&1 || owner=$(id -un)
  install -d -o "$owner" "$STATE/pg"
  run_as() { if [ "$(id -un)" = "$owner" ]; then "$@"; else su "$owner" -s /bin/sh -c "$(printf '%q ' "$@")"; fi; }
  run_as "$bindir/initdb" -D "$STATE/pg/data" -U postgres --auth=trust >/dev/null
  run_as "$bindir/pg_ctl" -D "$STATE/pg/data" -l "$STATE/pg/log" -o "-h 127.0.0.1 -p 5432 -k /tmp" -w start >/dev/null
fi
pg_ok || { echo "PostgreSQL does not answer on 127.0.0.1:5432" >&2; exit 1; }
# The database the tests use.
if ! psql "$PG_URL" -Atc 'select 1' >/dev/null 2>&1; then
  psql "postgres://postgres@127.0.0.1:5432/postgres" -Atc 'create database test' >/dev/null
fi

if ! redis_ok; then
  if ! command -v redis-server >/dev/null; then
    echo "Redis is not running and not installed: apt-get install -y redis-server" >&2
    exit 1
  fi
  echo "starting a throwaway Redis"
  mkdir -p "$STATE"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STATE" --logfile "$STATE/redis.log"
  for _ in $(seq 50); do redis_ok && break; sleep 0.1; done
fi
redis_ok || { echo "Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
echo "services: PostgreSQL and Redis answer"
