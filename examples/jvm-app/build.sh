#!/usr/bin/env bash
# Builds build/sales-totals.jar with the JDK on this machine against the Spark jars that the
# pyspark package ships (the same Spark `emrship run --local` runs), for the Java of the EMR
# release in job-specs/jvm-app.yaml (emr-7.x runs Java 17).
#
#   examples/jvm-app/build.sh [PYTHON]     # PYTHON: an interpreter with pyspark (default python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:-${EMRSHIP_PYTHON:-python3}}"
spark_jars="$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
command -v javac >/dev/null || { echo "build.sh: javac not found (Debian: apt-get install openjdk-17-jdk-headless)" >&2; exit 1; }
rm -rf "$here/build/classes"
mkdir -p "$here/build/classes"
javac --release 17 -cp "$spark_jars/*" -d "$here/build/classes" \
    $(find "$here/src/main/java" -name '*.java' | sort)
# Fixed timestamps: the same sources give the same jar bytes, so the same S3 key.
find "$here/build/classes" -exec touch -d '1980-01-01T00:00:00Z' {} +
(cd "$here/build/classes" && jar --create --date=1980-01-01T00:00:02Z \
    --file "$here/build/sales-totals.jar" --main-class com.example.sales.DailyTotals .)
echo "$here/build/sales-totals.jar"
