#!/usr/bin/env bash
# Sourced by scripts/test.sh: a throwaway PostgreSQL cluster for the tests, on a free port of
# 127.0.0.1, in a folder the postgres user owns; stopped when the test command exits. Installs
# Debian's postgresql when its server binaries are missing. Sets SOAR_TEST_POSTGRES (a URL
# without a password) and SOAR_TEST_POSTGRES_PASSWORD (the role's password, for the tests'
# environment only). SOAR_TEST_POSTGRES given beforehand names a server to use instead.
if [ -n "${SOAR_TEST_POSTGRES:-}" ]; then
  return 0
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
pg_dir=$(mktemp -d /tmp/soar-test-postgres.XXXXXX)
chown postgres "$pg_dir"
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
runuser -u postgres -- "$pg_bin/initdb" --pgdata "$pg_dir/data" --auth-local=trust --auth-host=scram-sha-256 \
  --username=postgres >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --wait --silent \
  --options "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$pg_dir -c max_connections=200" \
  --log "$pg_dir/server.log" start
stop_postgres() { runuser -u postgres -- "$pg_bin/pg_ctl" --pgdata "$pg_dir/data" --mode=immediate --silent stop || true; rm -rf "$pg_dir"; }
trap stop_postgres EXIT
export SOAR_TEST_POSTGRES_PASSWORD="soar-test-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
runuser -u postgres -- "$pg_bin/psql" --quiet --host "$pg_dir" --port "$pg_port" --username postgres \
  --command "CREATE ROLE soar LOGIN PASSWORD '$SOAR_TEST_POSTGRES_PASSWORD'" --command "CREATE DATABASE soar OWNER soar" >/dev/null
export SOAR_TEST_POSTGRES="postgres://soar@127.0.0.1:$pg_port/soar"
