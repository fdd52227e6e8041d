"""moto's server mode, plus EMR state changes on request.

moto (5.2.5) has no state manager for EMR: a new cluster goes straight to WAITING with its first
step RUNNING, and no step ever completes or fails. The integration tests need EMR's state
transitions (cluster STARTING -> BOOTSTRAPPING -> RUNNING -> WAITING, step PENDING -> RUNNING ->
COMPLETED or FAILED) to test `--wait`, so this script serves moto exactly as `python -m
moto.server` does and adds one endpoint that moves a cluster or step through given states on a
timer, in moto's own backend objects:

    POST /_emrship/emr-transitions
    {"cluster_id": "j-...", "step_id": "s-..." (optional: else the cluster),
     "states": ["RUNNING", "COMPLETED"], "interval_ms": 300,
     "reason": "optional StateChangeReason message for the last state"}

Each state is applied `interval_ms` after the previous one (the first after one interval).
Every other request goes to moto unchanged. AWS managed IAM policies are loaded, as AWS has them.

Usage: python moto_emr_server.py -H 127.0.0.1 -p PORT
"""

import json
import os
import threading
import time

# AWS has its managed policies (AmazonEMRServicePolicy_v2, which the service role attaches);
# moto loads them only when asked, before its IAM backend is imported.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

import moto.server as server  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.emr.models import emr_backends  # noqa: E402

CONTROL_PATH = "/_emrship/emr-transitions"
STEP_ENDED = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
CLUSTER_ENDED = {"TERMINATED", "TERMINATED_WITH_ERRORS"}


def find_cluster(cluster_id):
    for _account, regions in list(emr_backends.items()):
        for _region, backend in list(regions.items()):
            if cluster_id in backend.clusters:
                return backend.clusters[cluster_id]
    return None


def apply_state(cluster, step_id, state, reason):
    if step_id is None:
        cluster.state = state
        if state in CLUSTER_ENDED:
            cluster.end_datetime = utcnow()
        if reason:
            cluster.last_state_change_reason = reason
        return
    for step in cluster.steps:
        if step.id == step_id:
            step.state = state
            if state == "RUNNING":
                step.start_date_time = utcnow()
            if state in STEP_ENDED:
                step.end_date_time = utcnow()
            if reason:
                step.last_state_change_reason = reason
            return
    raise KeyError(step_id)


def run_transitions(cluster, step_id, states, interval, reason):
    for i, state in enumerate(states):
        time.sleep(interval)
        last = i == len(states) - 1
        apply_state(cluster, step_id, state, reason if last else None)


class App(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != CONTROL_PATH:
            return super().__call__(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            cluster = find_cluster(body["cluster_id"])
            if cluster is None:
                raise KeyError(body["cluster_id"])
            step_id = body.get("step_id")
            if step_id is not None and not any(s.id == step_id for s in cluster.steps):
                raise KeyError(step_id)
            threading.Thread(
                target=run_transitions,
                args=(
                    cluster,
                    step_id,
                    list(body["states"]),
                    body.get("interval_ms", 300) / 1000.0,
                    body.get("reason"),
                ),
                daemon=True,
            ).start()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"scheduled": true}']
        except (KeyError, ValueError) as e:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"unknown cluster or step, or bad request: {e}".encode()]


# main() builds its application from this module-level name.
server.DomainDispatcherApplication = App

if __name__ == "__main__":
    server.main()
