# Sourced by the benchmark scripts (bench-rollup.sh, bench-match-rate.sh) after they set $root
# and define `say`.

# The peers' venv, apart from the test venv (CI never pays for it): installs
# bench/requirements.txt into $EMRSHIP_BENCH_VENV (default .venv-bench) only when that file
# changed. Sets $venv and $py (its python).
bench_venv() {
    venv="${EMRSHIP_BENCH_VENV:-$root/.venv-bench}"
    local req="$root/bench/requirements.txt"
    py="$venv/bin/python"
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ ! -x "$py" || "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
        say "installing $(basename "$req") into $venv"
        [[ -x "$py" ]] || python3 -m venv "$venv"
        rm -f "$venv/.requirements.sha256"
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$py" -m pip install -q -r "$req"
        echo "$want" >"$venv/.requirements.sha256"
    fi
}

# emrship-job as the bundle ships it: release, the `job` feature only. Sets $job to its path
# (under $CARGO_TARGET_DIR when set, as cargo builds it there).
build_job() {
    say "building emrship-job (release)"
    (cd "$root" && cargo build --release --locked --quiet --no-default-features --features job \
        --bin emrship-job)
    job="${CARGO_TARGET_DIR:-$root/target}/release/emrship-job"
}
