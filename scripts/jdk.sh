#!/usr/bin/env bash
# Makes sure a JDK is on PATH: pyspark's spark-submit needs `java`, and the JVM example
# (examples/jvm-app/build.sh, run by tests/app_run_local.rs) is compiled with `javac` and `jar`.
# As root on Debian it installs openjdk-17-jdk-headless when javac is missing (Java 17 is what
# emr-7.x runs); otherwise it says what to install.
set -euo pipefail
if command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
    echo "jdk: $(javac -version 2>&1)" >&2
    exit 0
fi
if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "jdk: installing openjdk-17-jdk-headless" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
    echo "jdk: $(javac -version 2>&1)" >&2
else
    echo "jdk: javac/jar/java not found; install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)" >&2
    exit 1
fi
