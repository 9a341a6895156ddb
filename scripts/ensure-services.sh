#!/usr/bin/env bash
# Start PostgreSQL and Redis when they are installed but stopped. Under CI (CI=true) both must
# answer, or this fails; elsewhere the tests that need them are skipped by name.
set -u

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 0
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || return 0
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
}

wait_for() {
  for _ in $(seq 1 30); do answers "$1" && return 0; sleep 0.5; done
  return 1
}

status=0
answers 5432 || { start_postgres; wait_for 5432; }
answers 6379 || { start_redis; wait_for 6379; }
for pair in "PostgreSQL:5432" "Redis:6379"; do
  name=${pair%%:*}; port=${pair##*:}
  if answers "$port"; then
    echo "$name answers on 127.0.0.1:$port"
  elif [ "${CI:-}" = "true" ]; then
    echo "$name does not answer on 127.0.0.1:$port and CI=true requires it" >&2
    status=1
  else
    echo "$name does not answer on 127.0.0.1:$port: its tests will be skipped" >&2
  fi
done
exit $status
