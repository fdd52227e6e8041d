#!/usr/bin/env bash
# Make a PostgreSQL server reachable for the tests (the PostgreSQL sink is tested against a real
# server).
#
# Usage: scripts/postgres.sh [--print-url] [--print-ca] | --stop
#
#   1. If EMRSHIP_TEST_PG_URL is set and the server answers, use it (its password, if any,
#      comes from PGPASSWORD as usual).
#   2. Else reuse the server this script started earlier, if it still runs.
#   3. Else start one: install Debian's `postgresql` package if no server binaries are found
#      (apt-get, needs root), initdb a cluster in target/emrship-pg (override: EMRSHIP_PG_DIR),
#      start it on a free loopback port, and create the user and database below.
#
#   The cluster is for tests only: fsync is off, and it listens on 127.0.0.1 only. It keeps
#   running between test runs; --stop stops it (the data stays until `cargo clean`).
#
#   Credentials of the started server: user emrship_test, database emrship_test, password
#   `emrship-test` (a fixed test password; scripts/test.sh exports it as PGPASSWORD). Password
#   authentication (scram-sha-256) is on for TCP, so the tests exercise the password path.
#
#   TLS: the started server also accepts TLS (ssl=on; plain connections still work). Its
#   certificate (for 127.0.0.1 and localhost) is signed by a throwaway CA generated with
#   openssl (installed with apt-get as root if missing) into the cluster; a server started by
#   an earlier version of this script gets TLS on its next run (reconfigured and reloaded).
#
#   Output: progress on stderr. With --print-url, the server's URL on stdout, without the
#   password, e.g.  postgres://emrship_test@127.0.0.1:45123/emrship_test; with --print-ca
#   (after the URL if both), the path of the CA certificate (PEM) that signed the server's
#   certificate (for a server given by EMRSHIP_TEST_PG_URL: EMRSHIP_TEST_PG_CA, if set).
#   Safe to run repeatedly and concurrently (a lock serialises runs).
set -euo pipefail

TEST_USER=emrship_test
TEST_DB=emrship_test
TEST_PASSWORD=emrship-test

print_url=0
print_ca=0
stop=0
for arg in "$@"; do
    case "$arg" in
        --print-url) print_url=1 ;;
        --print-ca) print_ca=1 ;;
        --stop) stop=1 ;;
        -h|--help)
            sed -n '2,34s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
            exit 0 ;;
        *)
            echo "postgres: unknown argument: $arg (usage: $0 [--print-url] [--print-ca] | --stop)" >&2
            exit 2 ;;
    esac
done

say() { echo "postgres: $*" >&2; }
emit() { [[ $print_url == 1 ]] && echo "$1"; return 0; }
emit_ca() { [[ $print_ca == 1 && -n "$1" ]] && echo "$1"; return 0; }

# 1. A server given by the environment.
if [[ $stop == 0 && -n "${EMRSHIP_TEST_PG_URL:-}" ]]; then
    if command -v psql >/dev/null 2>&1 \
        && psql "$EMRSHIP_TEST_PG_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
        say "using EMRSHIP_TEST_PG_URL"
        emit "$EMRSHIP_TEST_PG_URL"
        emit_ca "${EMRSHIP_TEST_PG_CA:-}"
        exit 0
    fi
    say "EMRSHIP_TEST_PG_URL is set but does not answer (or psql is missing); starting a local server"
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${EMRSHIP_PG_DIR:-$root/target/emrship-pg}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
dir="${dir%/}"
is_root=0
[[ "$(id -u)" == 0 ]] && is_root=1

# The server refuses to run as root: as root, the cluster belongs to the `postgres` user, who
# must be able to reach its directory (a checkout under /root is not reachable); then the
# cluster lives in a per-checkout directory under /tmp instead.
as_server_user() {
    if [[ $is_root == 1 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

find_bindir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && { echo "$candidate"; return 0; }
    done
    if command -v pg_config >/dev/null 2>&1; then
        candidate="$(pg_config --bindir)"
        [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && { echo "$candidate"; return 0; }
    fi
    return 1
}

if ! bindir="$(find_bindir)"; then
    if [[ $stop == 1 ]]; then exit 0; fi
    if [[ $is_root != 1 ]]; then
        say "no PostgreSQL server binaries found; install Debian's postgresql package (apt-get install postgresql) or set EMRSHIP_TEST_PG_URL"
        exit 1
    fi
    say "installing Debian's postgresql package (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends postgresql >"$dir/apt.log" 2>&1; then
        apt-get update -q >>"$dir/apt.log" 2>&1 || true
        if ! apt-get install -y -q --no-install-recommends postgresql >>"$dir/apt.log" 2>&1; then
            tail -n 20 "$dir/apt.log" >&2
            say "apt-get install postgresql failed (full log: $dir/apt.log)"
            exit 1
        fi
    fi
    bindir="$(find_bindir)" || { say "postgresql installed but initdb/pg_ctl not found"; exit 1; }
fi

cluster="$dir"
if [[ $is_root == 1 ]] && ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
    cluster="${TMPDIR:-/tmp}/emrship-pg-$(printf '%s' "$root" | sha256sum | cut -c1-12)"
fi
data="$cluster/data"
run="$cluster/run"
log="$cluster/server.log"
url_file="$dir/url"
ca_file="$dir/ca.crt"

running() {
    [[ -f "$data/postmaster.pid" ]] || return 1
    # A copied data directory (a checkout's target/ copied elsewhere) carries the original's
    # postmaster.pid: that server is not ours, and its stale lock would stop ours starting.
    if [[ "$(sed -n 2p "$data/postmaster.pid")" != "$data" ]]; then
        rm -f "$data/postmaster.pid"
        return 1
    fi
    as_server_user "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

if [[ $stop == 1 ]]; then
    if running; then
        as_server_user "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
        say "stopped the server in $data"
    fi
    exit 0
fi

psql_admin() {
    as_server_user "$bindir/psql" -h "$run" -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -Atq "$@"
}

# A throwaway CA and a server certificate for 127.0.0.1/localhost in the data directory (the
# server's default ssl_cert_file/ssl_key_file), the CA's certificate next to the URL file; then
# ssl=on, applied by a reload. Idempotent: only missing pieces are made.
ensure_tls() {
    if ! command -v openssl >/dev/null 2>&1; then
        if [[ $is_root != 1 ]]; then
            say "openssl is missing (needed for the test server's TLS certificate); install Debian's openssl package"
            exit 1
        fi
        say "installing Debian's openssl package (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl \
            >>"$dir/apt.log" 2>&1 || {
            apt-get update -q >>"$dir/apt.log" 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openssl \
                >>"$dir/apt.log" 2>&1 || { say "apt-get install openssl failed (log: $dir/apt.log)"; exit 1; }
        }
    fi
    if [[ ! -f "$data/server.crt" || ! -f "$data/server.key" || ! -f "$ca_file" ]]; then
        local work
        work="$(mktemp -d)"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=emrship test CA" \
            -keyout "$work/ca.key" -out "$work/ca.crt" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
        openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
            -keyout "$work/server.key" -out "$work/server.csr" >/dev/null 2>&1
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" >"$work/ext.cnf"
        openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
            -CAcreateserial -days 3650 -extfile "$work/ext.cnf" -out "$work/server.crt" \
            >/dev/null 2>&1
        chmod 600 "$work/server.key"
        chmod 644 "$work/server.crt" "$work/ca.crt"
        cp -p "$work/server.key" "$work/server.crt" "$data/"
        [[ $is_root == 1 ]] && chown postgres: "$data/server.key" "$data/server.crt"
        cp "$work/ca.crt" "$ca_file.tmp"
        mv "$ca_file.tmp" "$ca_file"
        rm -rf "$work"
        say "made a test CA ($ca_file) and a TLS certificate for 127.0.0.1/localhost"
        # A server already on TLS reads the new files only on a reload.
        if [[ "$(psql_admin -c 'SHOW ssl' 2>/dev/null)" == on ]]; then
            psql_admin -c "SELECT pg_reload_conf()" >/dev/null
        fi
    fi
    if [[ "$(psql_admin -c 'SHOW ssl')" != on ]]; then
        psql_admin -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
        local waited=0
        until [[ "$(psql_admin -c 'SHOW ssl')" == on ]]; do
            sleep 0.2
            waited=$((waited + 1))
            if [[ $waited -gt 50 ]]; then
                tail -n 20 "$log" >&2 || true
                say "the server did not turn on ssl (log: $log)"
                exit 1
            fi
        done
        say "turned on TLS in $data"
    fi
    # The reload is asynchronous: wait until a verified TLS connection works.
    local tries=0
    until PGPASSWORD="$TEST_PASSWORD" "$bindir/psql" -Atq -c 'SELECT 1' \
        "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=verify-full sslrootcert=$ca_file" \
        >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [[ $tries -gt 50 ]]; then
            say "a verified TLS connection to 127.0.0.1:$port fails (log: $log)"
            exit 1
        fi
        sleep 0.2
    done
}

# 2. The server started earlier.
if running && [[ -f "$url_file" ]]; then
    say "reusing the server in $data"
    url="$(cat "$url_file")"
    port="${url##*:}"
    port="${port%%/*}"
    ensure_tls
    emit "$url"
    emit_ca "$ca_file"
    exit 0
fi

# 3. Start one.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start=$SECONDS
if [[ ! -f "$data/PG_VERSION" ]]; then
    rm -rf "$data"
    mkdir -p "$cluster"
    [[ $is_root == 1 ]] && chown postgres: "$cluster"
    pwfile="$(mktemp)"
    printf '%s\n' "$TEST_PASSWORD" >"$pwfile"
    [[ $is_root == 1 ]] && chown postgres: "$pwfile"
    # The superuser `postgres` gets the test password too (TCP always asks for one); the
    # Unix socket, private to this directory, trusts the server's own user for setup.
    if ! as_server_user "$bindir/initdb" -D "$data" -U postgres --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale \
        >"$cluster/initdb.log" 2>&1; then
        rm -f "$pwfile"
        cat "$cluster/initdb.log" >&2
        say "initdb failed"
        exit 1
    fi
    rm -f "$pwfile"
fi
as_server_user mkdir -p "$run"

started=0
for attempt in 1 2 3; do
    port="$(free_port)"
    if as_server_user "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
        "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$run \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=200" >/dev/null 2>&1 9>&-; then
        started=1
        break
    fi
    say "start on port $port failed (attempt $attempt)"
done
if [[ $started != 1 ]]; then
    tail -n 20 "$log" >&2 || true
    say "cannot start PostgreSQL from $bindir (log: $log)"
    exit 1
fi

ensure_tls
if [[ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$TEST_USER'")" != 1 ]]; then
    psql_admin -c "CREATE ROLE $TEST_USER LOGIN CREATEDB PASSWORD '$TEST_PASSWORD'"
fi
if [[ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$TEST_DB'")" != 1 ]]; then
    psql_admin -c "CREATE DATABASE $TEST_DB OWNER $TEST_USER"
fi

url="postgres://$TEST_USER@127.0.0.1:$port/$TEST_DB"
printf '%s\n' "$url" >"$url_file.tmp"
mv "$url_file.tmp" "$url_file"
say "started PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $data on 127.0.0.1:$port in $((SECONDS - start))s"
emit "$url"
emit_ca "$ca_file"
