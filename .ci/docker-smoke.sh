#!/usr/bin/env bash
# Runs what the Dockerfile builds, without Docker: reads the Dockerfile, gives each
# stage a directory standing for its /app, does its COPYs (from the repo or an
# earlier stage) and its `RUN npm …`, then starts the final stage's CMD with its ENV
# (as an unprivileged user when we are root, like its USER), DATABASE_URL set to a
# fresh database on the machine's Postgres and a free PORT; waits until the
# HEALTHCHECK command passes and /healthz answers 200, then SIGTERMs it: it must exit 0.
# Not emulated: the base image, other RUN lines (they touch / only), EXPOSE.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS
pg=${SMOKE_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
db=taskhook_smoke_$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/taskhook-docker-smoke.XXXXXX")
chmod 755 "$tmp"
pid=

say() { echo "docker-smoke: $*"; }
fail() {
  say "FAIL: $*"
  [ -f "$tmp/out.log" ] && { say "gateway output:"; tail -n 40 "$tmp/out.log"; }
  exit 1
}
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  psql "$pg/postgres" -qc "drop database if exists $db with (force)" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the machine's Postgres, and a database of our own on it
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
psql "$pg/postgres" -qc "create database $db" >/dev/null

# --- the Dockerfile, stage by stage
declare -A stage_dir=()
n=0 dir= envs=() health= cmd_json= user=

copy() { # COPY [--from=stage] src... dest, relative to WORKDIR /app
  local args from='' dest src s
  read -r -a args <<<"$1"
  if [[ ${args[0]} == --from=* ]]; then from=${args[0]#--from=}; args=("${args[@]:1}"); fi
  dest=$dir/${args[-1]#./}
  for s in "${args[@]:0:${#args[@]}-1}"; do
    if [ -n "$from" ]; then src=${stage_dir[$from]:?unknown stage $from}/${s#/app/}; else src=$root/$s; fi
    [ -e "$src" ] || fail "COPY source missing: $s"
    if [[ $dest == */ ]] || [ $((${#args[@]} - 1)) -gt 1 ]; then
      mkdir -p "$dest" && cp -R "$src" "$dest"
    else
      mkdir -p "$(dirname "$dest")" && cp -R "$src" "$dest"
    fi
  done
}

while IFS= read -r line; do
  read -r instr rest <<<"$line"
  case "${instr^^}" in
    FROM)
      n=$((n + 1)) dir=$tmp/stage$n envs=() user=
      mkdir -p "$dir"
      if [[ $rest =~ [[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+)$ ]]; then stage_dir[${BASH_REMATCH[1]}]=$dir; fi ;;
    WORKDIR) [ "$rest" = /app ] || fail "WORKDIR $rest: only /app is emulated" ;;
    COPY) copy "$rest" ;;
    RUN)
      if [[ $rest == npm\ * ]]; then
        say "stage $n: $rest"
        (cd "$dir" && npm_config_prefer_offline=true bash -c "$rest") >"$tmp/npm.log" 2>&1 || { cat "$tmp/npm.log"; fail "$rest"; }
      fi ;;
    ENV) read -r -a kv <<<"$rest"; envs+=("${kv[@]}") ;;
    USER) user=$rest ;;
    HEALTHCHECK) health=${rest#*CMD } ;;
    CMD) cmd_json=$rest ;;
  esac
done < <(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' Dockerfile | grep -Ev '^[[:space:]]*(#|$)')

app=$dir
[ -n "$cmd_json" ] || fail "no CMD"
[ -n "$health" ] || fail "no HEALTHCHECK"
[ -n "$user" ] && [ "$user" != root ] || fail "the final stage does not switch to a non-root USER"
mapfile -t argv < <(node -e 'for (const a of JSON.parse(process.argv[1])) console.log(a)' "$cmd_json")
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
mkdir -p "$tmp/data" "$tmp/home"

# As its USER would: unprivileged, with nothing of our environment but PATH.
as_user=()
if [ "$(id -u)" = 0 ]; then
  run_as=$user; id "$run_as" >/dev/null 2>&1 || run_as=nobody
  chown "$run_as" "$tmp/data" "$tmp/home"
  # setpriv execs (runuser would stay in between and turn our SIGTERM into its own exit 143)
  as_user=(setpriv "--reuid=$(id -u "$run_as")" "--regid=$(id -g "$run_as")" --clear-groups)
fi
run_env=(env -i "PATH=$PATH" "HOME=$tmp/home" "${envs[@]}" "PORT=$port" "TASKHOOK_DATA_DIR=$tmp/data" "DATABASE_URL=$pg/$db")

say "starting ${argv[*]} on port $port as ${run_as:-$(id -un)} (Dockerfile: USER $user)"
(cd "$app" && exec "${as_user[@]}" "${run_env[@]}" "${argv[@]}") >"$tmp/out.log" 2>&1 &
pid=$!

healthy=
for _ in $(seq 1 200); do
  kill -0 "$pid" 2>/dev/null || fail "exited before it was healthy"
  if (cd "$app" && "${run_env[@]}" sh -c "$health") >/dev/null 2>&1; then healthy=1; break; fi
  sleep 0.2
done
[ -n "$healthy" ] || fail "HEALTHCHECK did not pass within 40 s"
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")
[ "$status" = 200 ] || fail "/healthz answered $status"
say "healthy after $((SECONDS - started)) s (HEALTHCHECK passes, /healthz 200)"

kill -TERM "$pid"
for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after SIGTERM"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
say "OK: SIGTERM → exit 0; $((SECONDS - started)) s in all"
