//! The plan template: what `emrship schedule` stores in S3 so the scheduler Lambda can render
//! any day's plan with the same code as `emrship plan`.
//!
//! A rendered plan is for one date (`{{date}}` is filled in paths, the run key names the day),
//! so the template keeps what a plan is made *from*: the spec layers' texts as loaded (the spec
//! file, the overlays, the `--set` values, in order) and the digests of the local inputs (the
//! bundle, each job file) that `emrship plan` reads from disk. [`PlanTemplate::plan_for`] then
//! runs spec load → resolve with the date → `plan::build`, exactly as `emrship plan --date`
//! does, without touching the disk. Pure: no I/O, no AWS SDK.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;
use crate::render::artifacts::{AppInputs, Digest256, PlanInputs};
use crate::spec::{self, JobPlan, LayerText, RunContext};

/// The `format` field: says what the object is when someone finds it in a bucket.
pub const TEMPLATE_FORMAT: &str = "emrship-plan-template";
/// Bumped when the fields change meaning; a Lambda refuses other versions.
pub const TEMPLATE_VERSION: u32 = 1;

/// One spec layer: the name shown in diagnostics (the file path as given) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateLayer {
    pub name: String,
    pub text: String,
}

/// A local input's digest, as `emrship plan` computed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateDigest {
    pub sha256: String,
    pub bytes: u64,
}

/// A `job.files` entry: the local path the plan shows as the upload's source, and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateJobFile {
    pub source: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The schedule's date rule, needed before the plan can be rendered (it picks the date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSchedule {
    pub timezone: String,
    pub days_back: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTemplate {
    pub format: String,
    pub version: u32,
    /// The emrship that wrote the template (the Lambda logs it beside its own).
    pub emrship_version: String,
    /// The spec's `name`, for messages.
    pub name: String,
    pub schedule: Option<TemplateSchedule>,
    pub spec: TemplateLayer,
    pub overlays: Vec<TemplateLayer>,
    pub sets: Vec<String>,
    pub bundle: Option<TemplateDigest>,
    pub job_files: Vec<TemplateJobFile>,
    /// A user's application: the digests of what ships with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppInputs>,
    /// The digests of the spec's local bootstrap scripts, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_scripts: Vec<Digest256>,
}

fn to_layer(layer: &LayerText) -> TemplateLayer {
    TemplateLayer {
        name: layer.name.clone(),
        text: layer.text.clone(),
    }
}

fn from_layer(layer: &TemplateLayer) -> LayerText {
    LayerText {
        name: layer.name.clone(),
        text: layer.text.clone(),
    }
}

impl PlanTemplate {
    /// The template of a spec loaded from `base`, `overlays` and `sets`, with the local inputs
    /// `emrship plan` found (`inputs`) and the resolved job (for its name and schedule).
    pub fn from_layers(
        base: &LayerText,
        overlays: &[LayerText],
        sets: &[String],
        inputs: &PlanInputs,
        job: &JobPlan,
    ) -> PlanTemplate {
        PlanTemplate {
            format: TEMPLATE_FORMAT.into(),
            version: TEMPLATE_VERSION,
            emrship_version: env!("CARGO_PKG_VERSION").into(),
            name: job.name.clone(),
            schedule: job.schedule.as_ref().map(|s| TemplateSchedule {
                timezone: s.timezone.clone(),
                days_back: s.days_back,
            }),
            spec: to_layer(base),
            overlays: overlays.iter().map(to_layer).collect(),
            sets: sets.to_vec(),
            bundle: inputs.bundle.as_ref().map(|d| TemplateDigest {
                sha256: d.sha256.clone(),
                bytes: d.bytes,
            }),
            job_files: inputs
                .job_files
                .iter()
                .map(|(source, d)| TemplateJobFile {
                    source: source.clone(),
                    sha256: d.sha256.clone(),
                    bytes: d.bytes,
                })
                .collect(),
            app: inputs.app.clone(),
            bootstrap_scripts: inputs.bootstrap_scripts.clone(),
        }
    }

    /// Deterministic JSON: fields in declaration order, pretty-printed, one trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a template always serializes");
        text.push('\n');
        text
    }

    /// Reads a template; errors name `source` (e.g. the s3:// URI) and say how to fix it.
    pub fn parse(text: &str, source: &str) -> Result<PlanTemplate, String> {
        const FIX: &str = "run `emrship schedule` again to store a fresh template";
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| format!("the plan template at {source} is not valid JSON ({e}); {FIX}"))?;
        let format = value.get("format").and_then(|f| f.as_str());
        if format != Some(TEMPLATE_FORMAT) {
            return Err(format!(
                "{source} is not an emrship plan template (its `format` is {}, expected `{TEMPLATE_FORMAT}`); {FIX}",
                format.map_or_else(|| "missing".to_string(), |f| format!("`{f}`"))
            ));
        }
        let version = value.get("version").and_then(|v| v.as_u64());
        if version != Some(u64::from(TEMPLATE_VERSION)) {
            return Err(format!(
                "the plan template at {source} has version {}, but this emrship ({}) reads version {TEMPLATE_VERSION}; \
                 {FIX} with the same emrship version as the scheduler Lambda",
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string()),
                env!("CARGO_PKG_VERSION"),
            ));
        }
        let template: PlanTemplate = serde_json::from_value(value).map_err(|e| {
            format!("the plan template at {source} is incomplete or corrupt ({e}); {FIX}")
        })?;
        if let Some(schedule) = &template.schedule {
            if schedule.timezone.parse::<chrono_tz::Tz>().is_err() {
                return Err(format!(
                    "the plan template at {source} names an unknown time zone `{}`; {FIX}",
                    schedule.timezone
                ));
            }
        }
        Ok(template)
    }

    /// The local inputs the template recorded, as `plan::build` takes them.
    pub fn inputs(&self) -> PlanInputs {
        PlanInputs {
            bundle: self.bundle.as_ref().map(|d| Digest256 {
                sha256: d.sha256.clone(),
                bytes: d.bytes,
            }),
            job_files: self
                .job_files
                .iter()
                .map(|f| {
                    (
                        f.source.clone(),
                        Digest256 {
                            sha256: f.sha256.clone(),
                            bytes: f.bytes,
                        },
                    )
                })
                .collect(),
            app: self.app.clone(),
            bootstrap_scripts: self.bootstrap_scripts.clone(),
        }
    }

    /// The full plan for one date: what `emrship plan --date <date>` renders from the same files.
    pub fn plan_for(&self, date: NaiveDate) -> Result<(JobPlan, Plan), String> {
        let base = from_layer(&self.spec);
        let overlays: Vec<LayerText> = self.overlays.iter().map(from_layer).collect();
        let (job, diagnostics) =
            spec::load_and_resolve(&base, &overlays, &self.sets, RunContext { date })
                .map_err(|diagnostics| diagnostics.render())?;
        if job.job.files.len() != self.job_files.len() {
            return Err(format!(
                "the plan template of `{}` records {} job file(s) but the spec names {} for {date}; run `emrship schedule` again",
                self.name,
                self.job_files.len(),
                job.job.files.len()
            ));
        }
        let warnings = diagnostics.warnings().map(|d| d.one_line()).collect();
        let plan = crate::plan::build(&job, &self.inputs(), warnings);
        Ok((job, plan))
    }
}

/// The day a scheduled run processes: the event time in the schedule's time zone, minus
/// `days_back` days. An unknown zone (the spec check and [`PlanTemplate::parse`] refuse one)
/// counts as UTC.
pub fn run_date(event_time: DateTime<Utc>, timezone: &str, days_back: u32) -> NaiveDate {
    let local = match timezone.parse::<chrono_tz::Tz>() {
        Ok(zone) => event_time.with_timezone(&zone).date_naive(),
        Err(_) => event_time.date_naive(),
    };
    local - chrono::Days::new(u64::from(days_back))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SPEC: &str = include_str!("../../job-specs/match-rate.yaml");

    fn layer(name: &str, text: &str) -> LayerText {
        LayerText {
            name: name.into(),
            text: text.into(),
        }
    }

    fn template() -> PlanTemplate {
        let base = layer("job-specs/match-rate.yaml", SPEC);
        let overlays = vec![layer(
            "prod.yaml",
            "schedule: {cron: \"cron(0 1 * * ? *)\", timezone: Europe/Paris}\n",
        )];
        let sets = vec!["cluster.core.count=6".to_string()];
        let date = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let (job, _) = spec::load_and_resolve(&base, &overlays, &sets, RunContext { date })
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let inputs = PlanInputs {
            bundle: Some(Digest256::of(b"bundle bytes")),
            job_files: Vec::new(),
            app: None,
            bootstrap_scripts: Vec::new(),
        };
        PlanTemplate::from_layers(&base, &overlays, &sets, &inputs, &job)
    }

    #[test]
    fn round_trips_with_the_same_bytes() {
        let template = template();
        let json = template.to_json();
        let parsed = PlanTemplate::parse(&json, "s3://b/t.json").unwrap();
        assert_eq!(parsed, template);
        assert_eq!(parsed.to_json(), json);
        assert_eq!(
            template.schedule,
            Some(TemplateSchedule {
                timezone: "Europe/Paris".into(),
                days_back: 1
            })
        );
    }

    #[test]
    fn plans_each_date_with_the_recorded_inputs() {
        let template = template();
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (job, plan) = template.plan_for(day).unwrap();
        assert_eq!(job.run_key(), "match-rate/2026-03-29");
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains("dt=2026-03-29/"), "{json}");
        assert!(
            json.contains(&Digest256::of(b"bundle bytes").sha256),
            "the bundle digest reaches the plan"
        );
    }

    #[test]
    fn unreadable_templates_name_their_source() {
        let uri = "s3://bucket/emrship/match-rate/schedule/plan.json";
        let good = template().to_json();
        let wrong_version = good.replace("\"version\": 1", "\"version\": 99");
        let missing_field = good.replace("\"sets\"", "\"sats\"");
        for (text, needle) in [
            ("{not json", "not valid JSON"),
            ("{\"a\": 1}", "not an emrship plan template"),
            (wrong_version.as_str(), "version 99"),
            (missing_field.as_str(), "incomplete or corrupt"),
        ] {
            let error = PlanTemplate::parse(text, uri).unwrap_err();
            assert!(error.contains(uri), "{error}");
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }

    #[test]
    fn run_date_in_the_schedules_zone() {
        let utc = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // UTC by default: yesterday of the tick.
        assert_eq!(
            run_date(utc(2026, 11, 21, 6, 0), "UTC", 1),
            day(2026, 11, 20)
        );
        // 23:30 UTC is already the next day in Paris (UTC+1 in winter) ...
        assert_eq!(
            run_date(utc(2026, 11, 21, 23, 30), "Europe/Paris", 1),
            day(2026, 11, 21)
        );
        // ... and 03:30 UTC still the day before in New York (UTC-5).
        assert_eq!(
            run_date(utc(2026, 11, 21, 3, 30), "America/New_York", 0),
            day(2026, 11, 20)
        );
        // Across the spring change in Paris (2026-03-29 02:00 → 03:00): 22:30 UTC is 23:30
        // local the day before the change, 00:30 (UTC+2) the night after.
        assert_eq!(
            run_date(utc(2026, 3, 28, 22, 30), "Europe/Paris", 1),
            day(2026, 3, 27)
        );
        assert_eq!(
            run_date(utc(2026, 3, 29, 22, 30), "Europe/Paris", 1),
            day(2026, 3, 29)
        );
        // Autumn change in New York (2026-11-01): 04:30 UTC is 00:30 EDT on Nov 1, while
        // 04:30 UTC on Nov 2 is 23:30 EST on Nov 1.
        assert_eq!(
            run_date(utc(2026, 11, 1, 4, 30), "America/New_York", 0),
            day(2026, 11, 1)
        );
        assert_eq!(
            run_date(utc(2026, 11, 2, 4, 30), "America/New_York", 0),
            day(2026, 11, 1)
        );
        assert_eq!(run_date(utc(2026, 1, 1, 0, 0), "UTC", 3), day(2025, 12, 29));
    }
}
