//! Following a cluster and its steps: the pure part of `--wait` and `status --wait`.
//!
//! The caller polls EMR and hands each snapshot to [`Watch::observe`], which says which state
//! transitions to print and whether the run has ended, and how. [`Backoff`] spaces the polls.
//! No I/O here, so every rule is unit-tested.

use std::collections::HashMap;
use std::time::Duration;

pub use crate::aws::emr::{ClusterView, StepView};

/// Cluster states after which nothing more happens.
pub const CLUSTER_ENDED: &[&str] = &["TERMINATED", "TERMINATED_WITH_ERRORS"];
/// Step states after which a step does not change again.
pub const STEP_ENDED: &[&str] = &["COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"];
/// Steps that count against EMR's limit of 256 pending or running steps per cluster.
pub const STEP_ACTIVE: &[&str] = &["PENDING", "CANCEL_PENDING", "RUNNING"];
/// At most this many steps may be pending or running on one cluster (AddJobFlowSteps refuses
/// more).
pub const MAX_ACTIVE_STEPS: usize = 256;

/// What "the end" means for one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// These steps reach an end state (the cluster ending first is a failure).
    Steps(Vec<String>),
    /// The cluster is ready (WAITING) or ended.
    Cluster,
}

/// How a watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed(String),
    Failed {
        summary: String,
        /// Steps that ended FAILED: their logs can explain why.
        failed_steps: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Cluster { id: String, name: String },
    Step { id: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub subject: Subject,
    /// `None` the first time the subject is seen.
    pub from: Option<String>,
    pub to: String,
    pub reason: Option<String>,
}

/// What `status --wait` follows: the named step, else the steps not finished yet, else the
/// cluster itself.
pub fn status_target(step: Option<&str>, steps: &[StepView]) -> Target {
    if let Some(step) = step {
        return Target::Steps(vec![step.to_string()]);
    }
    let unfinished: Vec<String> = steps
        .iter()
        .filter(|s| !STEP_ENDED.contains(&s.state.as_str()))
        .map(|s| s.id.clone())
        .collect();
    if unfinished.is_empty() {
        Target::Cluster
    } else {
        Target::Steps(unfinished)
    }
}

/// The steps pending or running on a cluster (EMR's 256-step limit counts these).
pub fn active_step_count(steps: &[StepView]) -> usize {
    steps
        .iter()
        .filter(|s| STEP_ACTIVE.contains(&s.state.as_str()))
        .count()
}

pub struct Watch {
    target: Target,
    cluster_state: Option<String>,
    step_states: HashMap<String, String>,
}

impl Watch {
    pub fn new(target: Target) -> Watch {
        Watch {
            target,
            cluster_state: None,
            step_states: HashMap::new(),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    fn follows_step(&self, id: &str) -> bool {
        match &self.target {
            Target::Steps(ids) => ids.iter().any(|s| s == id),
            Target::Cluster => true,
        }
    }

    /// The transitions since the previous snapshot, and the outcome once the watch is over.
    pub fn observe(&mut self, snapshot: &ClusterView) -> (Vec<Transition>, Option<Outcome>) {
        let mut transitions = Vec::new();
        if self.cluster_state.as_deref() != Some(snapshot.state.as_str()) {
            transitions.push(Transition {
                subject: Subject::Cluster {
                    id: snapshot.id.clone(),
                    name: snapshot.name.clone(),
                },
                from: self.cluster_state.replace(snapshot.state.clone()),
                to: snapshot.state.clone(),
                reason: snapshot.reason.clone(),
            });
        }
        // Steps in the order EMR ran them would be nicer, but ids are all we are sure of;
        // sort for a stable output.
        let mut steps: Vec<&StepView> = snapshot
            .steps
            .iter()
            .filter(|s| self.follows_step(&s.id))
            .collect();
        steps.sort_by(|a, b| a.id.cmp(&b.id));
        for step in steps {
            let previous = self.step_states.get(&step.id);
            if previous.map(String::as_str) != Some(step.state.as_str()) {
                transitions.push(Transition {
                    subject: Subject::Step {
                        id: step.id.clone(),
                        name: step.name.clone(),
                    },
                    from: self.step_states.insert(step.id.clone(), step.state.clone()),
                    to: step.state.clone(),
                    reason: step.reason.clone(),
                });
            }
        }
        (transitions, self.outcome(snapshot))
    }

    fn outcome(&self, snapshot: &ClusterView) -> Option<Outcome> {
        let cluster_ended = CLUSTER_ENDED.contains(&snapshot.state.as_str());
        let cluster_reason = snapshot
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match &self.target {
            Target::Cluster => match snapshot.state.as_str() {
                "WAITING" => Some(Outcome::Completed(format!(
                    "cluster {} is WAITING (ready for steps)",
                    snapshot.id
                ))),
                "TERMINATED" => Some(Outcome::Completed(format!(
                    "cluster {} TERMINATED{cluster_reason}",
                    snapshot.id
                ))),
                "TERMINATED_WITH_ERRORS" => Some(Outcome::Failed {
                    summary: format!(
                        "cluster {} TERMINATED_WITH_ERRORS{cluster_reason}",
                        snapshot.id
                    ),
                    failed_steps: Vec::new(),
                }),
                _ => None,
            },
            Target::Steps(ids) => {
                let found: Vec<&StepView> = ids
                    .iter()
                    .filter_map(|id| snapshot.steps.iter().find(|s| &s.id == id))
                    .collect();
                let all_ended = found.len() == ids.len()
                    && found.iter().all(|s| STEP_ENDED.contains(&s.state.as_str()));
                if all_ended {
                    let not_completed: Vec<&&StepView> =
                        found.iter().filter(|s| s.state != "COMPLETED").collect();
                    if not_completed.is_empty() {
                        return Some(Outcome::Completed(format!(
                            "{} COMPLETED on cluster {}",
                            plural(ids.len(), "step"),
                            snapshot.id
                        )));
                    }
                    let described: Vec<String> = not_completed
                        .iter()
                        .map(|s| {
                            let reason = s
                                .reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default();
                            format!("step {} `{}` {}{reason}", s.id, s.name, s.state)
                        })
                        .collect();
                    return Some(Outcome::Failed {
                        summary: described.join("; "),
                        failed_steps: not_completed
                            .iter()
                            .filter(|s| s.state == "FAILED")
                            .map(|s| s.id.clone())
                            .collect(),
                    });
                }
                if cluster_ended {
                    let unfinished: Vec<&str> = ids
                        .iter()
                        .filter(|id| {
                            !found
                                .iter()
                                .any(|s| &s.id == *id && STEP_ENDED.contains(&s.state.as_str()))
                        })
                        .map(String::as_str)
                        .collect();
                    let failed_steps = found
                        .iter()
                        .filter(|s| s.state == "FAILED")
                        .map(|s| s.id.clone())
                        .collect();
                    return Some(Outcome::Failed {
                        summary: format!(
                            "cluster {} ended {}{cluster_reason} before step(s) {} finished",
                            snapshot.id,
                            snapshot.state,
                            unfinished.join(", ")
                        ),
                        failed_steps,
                    });
                }
                None
            }
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `1h02m03s`, `4m05s`, `7s`: elapsed time for progress lines.
pub fn format_elapsed(elapsed: Duration) -> String {
    let total = elapsed.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// How long a step has run, and whether it still runs: since its start while it has not
/// ended, from start to end once it has; `None` before it starts. `now` and the step's times
/// are seconds since the epoch.
pub fn step_run_time(step: &StepView, now: i64) -> Option<(Duration, bool)> {
    let started = step.started?;
    let (until, running) = match step.ended {
        Some(ended) => (ended, false),
        None => (now, true),
    };
    Some((
        Duration::from_secs(until.saturating_sub(started).max(0) as u64),
        running,
    ))
}

/// `running for 1h02m05s` or `ran 12m05s`, as `status` shows it.
pub fn describe_run_time(run_time: (Duration, bool)) -> String {
    match run_time {
        (elapsed, true) => format!("running for {}", format_elapsed(elapsed)),
        (elapsed, false) => format!("ran {}", format_elapsed(elapsed)),
    }
}

/// One progress line: `[+4m05s] step s-123 `match-rate`: PENDING → RUNNING`.
pub fn format_transition(elapsed: Duration, t: &Transition) -> String {
    let subject = match &t.subject {
        Subject::Cluster { id, name } => format!("cluster {id} `{name}`"),
        Subject::Step { id, name } => format!("step {id} `{name}`"),
    };
    let change = match &t.from {
        Some(from) => format!("{from} → {}", t.to),
        None => t.to.clone(),
    };
    let reason = match &t.reason {
        Some(r) if !r.is_empty() => format!(" ({r})"),
        _ => String::new(),
    };
    format!("[+{}] {subject}: {change}{reason}", format_elapsed(elapsed))
}

/// Poll spacing: starts at the first interval, grows by half each quiet poll up to four times
/// the first interval (15 s → 1 min), returns to the first interval when something changes
/// and doubles after throttling. Jitter (±20 %) keeps many watchers from polling in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(initial: Duration) -> Backoff {
        Backoff {
            initial,
            max: initial * 4,
            current: initial,
        }
    }

    /// The delay before the next poll. `jitter` is uniform in [0, 1).
    pub fn next(&mut self, changed: bool, jitter: f64) -> Duration {
        self.current = if changed {
            self.initial
        } else {
            self.current.mul_f64(1.5).min(self.max)
        };
        self.current.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }

    /// The delay after a throttled or failed poll.
    pub fn throttled(&mut self, jitter: f64) -> Duration {
        self.current = (self.current * 2).min(self.max);
        self.current.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }
}

/// A small, seedable source of jitter (xorshift64*); jitter needs no cryptographic quality.
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `--poll`/`--timeout` values: the spec's durations (`90s`, `30m`, `2h`) plus milliseconds
/// (`250ms`), which only tests need.
pub fn parse_wait_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("`{text}` is not a number of milliseconds"));
    }
    crate::spec::duration::parse_duration_seconds(text).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, state: &str) -> StepView {
        StepView {
            id: id.into(),
            name: format!("name-{id}"),
            state: state.into(),
            ..StepView::default()
        }
    }

    fn cluster(state: &str, steps: Vec<StepView>) -> ClusterView {
        ClusterView {
            id: "j-1".into(),
            name: "c".into(),
            state: state.into(),
            steps,
            ..ClusterView::default()
        }
    }

    fn changes(transitions: &[Transition]) -> Vec<String> {
        transitions
            .iter()
            .map(|t| {
                let who = match &t.subject {
                    Subject::Cluster { id, .. } | Subject::Step { id, .. } => id.clone(),
                };
                format!("{who}:{}>{}", t.from.as_deref().unwrap_or("-"), t.to)
            })
            .collect()
    }

    #[test]
    fn a_step_that_completes_prints_each_transition_once_and_ends_completed() {
        let mut watch = Watch::new(Target::Steps(vec!["s-1".into()]));
        let (t, o) = watch.observe(&cluster("STARTING", vec![step("s-1", "PENDING")]));
        assert_eq!(changes(&t), ["j-1:->STARTING", "s-1:->PENDING"]);
        assert_eq!(o, None);
        let (t, o) = watch.observe(&cluster("STARTING", vec![step("s-1", "PENDING")]));
        assert!(t.is_empty());
        assert_eq!(o, None);
        let (t, _) = watch.observe(&cluster("BOOTSTRAPPING", vec![step("s-1", "PENDING")]));
        assert_eq!(changes(&t), ["j-1:STARTING>BOOTSTRAPPING"]);
        let (t, o) = watch.observe(&cluster("RUNNING", vec![step("s-1", "RUNNING")]));
        assert_eq!(
            changes(&t),
            ["j-1:BOOTSTRAPPING>RUNNING", "s-1:PENDING>RUNNING"]
        );
        assert_eq!(o, None);
        let (t, o) = watch.observe(&cluster("WAITING", vec![step("s-1", "COMPLETED")]));
        assert_eq!(
            changes(&t),
            ["j-1:RUNNING>WAITING", "s-1:RUNNING>COMPLETED"]
        );
        assert!(matches!(o, Some(Outcome::Completed(_))));
    }

    #[test]
    fn a_failed_step_ends_failed_and_names_the_step_for_diagnosis() {
        let mut watch = Watch::new(Target::Steps(vec!["s-1".into(), "s-2".into()]));
        let mut failed = step("s-1", "FAILED");
        failed.reason = Some("exit 1".into());
        let (_, o) = watch.observe(&cluster(
            "RUNNING",
            vec![failed.clone(), step("s-2", "RUNNING")],
        ));
        assert_eq!(o, None, "s-2 is still running");
        let (_, o) = watch.observe(&cluster(
            "TERMINATING",
            vec![failed, step("s-2", "CANCELLED")],
        ));
        match o {
            Some(Outcome::Failed {
                summary,
                failed_steps,
            }) => {
                assert_eq!(failed_steps, ["s-1"]);
                assert!(
                    summary.contains("s-1 `name-s-1` FAILED (exit 1)"),
                    "{summary}"
                );
                assert!(summary.contains("s-2 `name-s-2` CANCELLED"), "{summary}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn steps_not_followed_are_not_printed() {
        let mut watch = Watch::new(Target::Steps(vec!["s-2".into()]));
        let (t, _) = watch.observe(&cluster(
            "RUNNING",
            vec![step("s-1", "RUNNING"), step("s-2", "PENDING")],
        ));
        assert_eq!(changes(&t), ["j-1:->RUNNING", "s-2:->PENDING"]);
    }

    #[test]
    fn a_cluster_that_ends_before_its_steps_is_a_failure() {
        let mut watch = Watch::new(Target::Steps(vec!["s-1".into()]));
        let mut c = cluster("TERMINATED_WITH_ERRORS", vec![step("s-1", "PENDING")]);
        c.reason = Some("bootstrap action 1 failed".into());
        let (_, o) = watch.observe(&c);
        match o {
            Some(Outcome::Failed { summary, .. }) => {
                assert!(summary.contains("bootstrap action 1 failed"), "{summary}");
                assert!(summary.contains("s-1"), "{summary}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_step_not_listed_yet_is_not_finished() {
        let mut watch = Watch::new(Target::Steps(vec!["s-9".into()]));
        let (_, o) = watch.observe(&cluster("RUNNING", vec![step("s-1", "COMPLETED")]));
        assert_eq!(o, None);
    }

    #[test]
    fn watching_a_cluster_ends_when_it_waits_or_ends() {
        for (state, completed) in [
            ("WAITING", Some(true)),
            ("TERMINATED", Some(true)),
            ("TERMINATED_WITH_ERRORS", Some(false)),
            ("RUNNING", None),
            ("BOOTSTRAPPING", None),
        ] {
            let mut watch = Watch::new(Target::Cluster);
            let (_, o) = watch.observe(&cluster(state, vec![]));
            assert_eq!(
                o.map(|o| matches!(o, Outcome::Completed(_))),
                completed,
                "{state}"
            );
        }
    }

    #[test]
    fn status_follows_the_named_step_else_unfinished_steps_else_the_cluster() {
        let steps = vec![step("s-1", "COMPLETED"), step("s-2", "RUNNING")];
        assert_eq!(
            status_target(Some("s-1"), &steps),
            Target::Steps(vec!["s-1".into()])
        );
        assert_eq!(
            status_target(None, &steps),
            Target::Steps(vec!["s-2".into()])
        );
        assert_eq!(
            status_target(None, &[step("s-1", "FAILED")]),
            Target::Cluster
        );
    }

    #[test]
    fn active_steps_are_pending_running_or_cancel_pending() {
        let steps = [
            step("a", "PENDING"),
            step("b", "RUNNING"),
            step("c", "CANCEL_PENDING"),
            step("d", "COMPLETED"),
            step("e", "FAILED"),
        ];
        assert_eq!(active_step_count(&steps), 3);
    }

    #[test]
    fn backoff_grows_when_quiet_resets_on_change_and_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(10));
        // jitter 0.5 is the midpoint: exactly the current interval.
        assert_eq!(b.next(false, 0.5), Duration::from_secs(15));
        assert_eq!(b.next(false, 0.5), Duration::from_millis(22_500));
        for _ in 0..10 {
            b.next(false, 0.5);
        }
        assert_eq!(b.next(false, 0.5), Duration::from_secs(40));
        assert_eq!(b.next(true, 0.5), Duration::from_secs(10));
        assert_eq!(b.throttled(0.5), Duration::from_secs(20));
        // Jitter stays within ±20 %.
        assert_eq!(b.next(true, 0.0), Duration::from_secs(8));
        let top = b.next(true, 0.999_999);
        assert!(top < Duration::from_secs(12) && top > Duration::from_millis(11_999));
    }

    #[test]
    fn jitter_is_uniform_enough_and_in_range() {
        let mut j = Jitter::new(42);
        let values: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }

    #[test]
    fn a_step_runs_from_its_start_until_now_or_its_end() {
        let mut step = step("s-1", "PENDING");
        assert_eq!(step_run_time(&step, 1_000), None);
        step.started = Some(1_000);
        let running = step_run_time(&step, 1_000 + 3_725).unwrap();
        assert_eq!(running, (Duration::from_secs(3_725), true));
        assert_eq!(describe_run_time(running), "running for 1h02m05s");
        step.ended = Some(1_725);
        let ended = step_run_time(&step, 99_999).unwrap();
        assert_eq!(describe_run_time(ended), "ran 12m05s");
        // A clock behind EMR's never shows a negative time.
        step.ended = None;
        assert_eq!(
            step_run_time(&step, 900),
            Some((Duration::from_secs(0), true))
        );
    }

    #[test]
    fn elapsed_and_transition_lines() {
        assert_eq!(format_elapsed(Duration::from_secs(7)), "7s");
        assert_eq!(format_elapsed(Duration::from_secs(245)), "4m05s");
        assert_eq!(format_elapsed(Duration::from_secs(3723)), "1h02m03s");
        let t = Transition {
            subject: Subject::Step {
                id: "s-1".into(),
                name: "match-rate".into(),
            },
            from: Some("PENDING".into()),
            to: "RUNNING".into(),
            reason: None,
        };
        assert_eq!(
            format_transition(Duration::from_secs(65), &t),
            "[+1m05s] step s-1 `match-rate`: PENDING → RUNNING"
        );
    }

    #[test]
    fn wait_durations_accept_milliseconds_and_spec_units() {
        assert_eq!(
            parse_wait_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_wait_duration("30m").unwrap(),
            Duration::from_secs(1800)
        );
        assert!(parse_wait_duration("soon").is_err());
        assert!(parse_wait_duration("xms").is_err());
    }
}
