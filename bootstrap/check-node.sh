#!/bin/bash
# emrship node check: a bootstrap action for users' own applications. It runs on every node
# before any step and fails the cluster's start, with the reason in the bootstrap log, when the
# node cannot run the application as packaged — instead of a step failing later with
# `Cannot run program "/usr/bin/python3.11"` or `UnsupportedClassVersionError`.
#
#   check-node.sh --arch x86_64|aarch64 [--python /usr/bin/python3.9] [--java 17]
#
# Shipped by emrship as it is (static, content-addressed like every upload); `emrship plan`
# shows the arguments it gets.
set -euo pipefail

fail() {
  echo "emrship node check: $*" >&2
  exit 1
}

arch=""
python=""
java=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    --java) java="$2"; shift 2 ;;
    *) fail "unknown argument $1 (re-render the plan with this emrship version)" ;;
  esac
done

node_arch="$(uname -m)"
if [ -n "$arch" ] && [ "$node_arch" != "$arch" ]; then
  fail "this node is $node_arch but the application was packaged for $arch; choose instance types of one architecture (Graviton types end in g)"
fi

if [ -n "$python" ]; then
  [ -x "$python" ] ||
    fail "$python does not exist on this node; the application's dependencies were built for it: pick a Python the release ships (job.pyspark.python) or another release"
  want="${python##*/python}"
  got="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ||
    fail "$python does not run"
  [ "$got" = "$want" ] || fail "$python is Python $got, not $want"
fi

if [ -n "$java" ]; then
  command -v java >/dev/null 2>&1 || fail "no java on this node's PATH"
  version="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)"
  case "$version" in
    1.*) major="${version#1.}"; major="${major%%.*}" ;;
    *) major="${version%%.*}" ;;
  esac
  [ -n "$major" ] && [ "$major" -ge "$java" ] ||
    fail "the application's classes need Java $java but this node runs Java ${version:-unknown}; compile with --release $major or choose a newer EMR release"
fi

echo "emrship node check: $node_arch${python:+, $python}${java:+, Java $java} ok"
