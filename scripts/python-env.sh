#!/usr/bin/env bash
# Create/refresh the Python test environment (botocore, boto3, moto[server]).
#
# Usage: scripts/python-env.sh [--print-python]
#
#   Creates a venv at <repo>/.venv-test (override with EMRSHIP_VENV) using
#   `python3 -m venv`, and installs tests/python/requirements.txt into it, but
#   only when that file changed since the last successful install (a sha256
#   stamp is kept inside the venv). Safe to run repeatedly and concurrently;
#   an up-to-date run takes well under a second.
#
#   Output: one summary line on stderr. Nothing on stdout, except that with
#   --print-python the absolute path of the venv's python is printed, e.g.
#       PY="$(scripts/python-env.sh --print-python)"
#       "$PY" tests/python/validate_emr.py plan.json
set -euo pipefail

print_python=0
for arg in "$@"; do
    case "$arg" in
        --print-python) print_python=1 ;;
        -h|--help)
            sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
            exit 0 ;;
        *)
            echo "python-env: unknown argument: $arg (usage: $0 [--print-python])" >&2
            exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$root/tests/python/requirements.txt"
venv="${EMRSHIP_VENV:-$root/.venv-test}"
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
venv="${venv%/}"
py="$venv/bin/python"
stamp="$venv/.requirements.sha256"
log="$venv/.install.log"

if [[ ! -f "$req" ]]; then
    echo "python-env: missing $req" >&2
    exit 1
fi

mkdir -p "$venv"
# Serialise concurrent runs (parallel test jobs) on a lock inside the venv.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv/.lock"
    flock 9
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"

# Fast path: a working venv whose stamp matches the requirements file.
if [[ -x "$py" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$py" -c '' >/dev/null 2>&1; then
    echo "python-env: $venv up to date" >&2
    [[ $print_python == 1 ]] && echo "$py"
    exit 0
fi

start=$SECONDS
created=""
if [[ ! -x "$py" ]] || ! "$py" -c '' >/dev/null 2>&1; then
    # Missing or broken (e.g. the base interpreter moved): rebuild from scratch,
    # keeping only the lock file we hold.
    find "$venv" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
    if ! python3 -m venv "$venv" >"$venv/.venv.log" 2>&1; then
        cat "$venv/.venv.log" >&2
        echo "python-env: 'python3 -m venv $venv' failed (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
    rm -f "$venv/.venv.log"
    created="created, "
fi

rm -f "$stamp"
if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$py" -m pip install -q -r "$req" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "python-env: pip install -r $req failed (full log: $log)" >&2
    exit 1
fi
printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"

echo "python-env: ${created}installed $(basename "$req") into $venv in $((SECONDS - start))s" >&2
[[ $print_python == 1 ]] && echo "$py"
exit 0
