//! What a create-or-update (or a removal) did to one AWS resource: the value every `upsert_*`
//! and `remove_*` function under `aws/` returns, and what `schedule`/`unschedule` report
//! (`--format json` prints these as they are).

use serde::Serialize;

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It did not exist; now it does.
    Created,
    /// It existed and differed from the request; now it matches.
    Updated,
    /// An object's bytes were sent (it was not there with this content).
    Uploaded,
    /// It already matched the request: nothing was sent.
    Unchanged,
    /// It existed and was removed.
    Deleted,
    /// A removal found nothing to remove.
    Absent,
    /// A removal left it in place on purpose (`detail` says why).
    Kept,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Uploaded => "uploaded",
            Action::Unchanged => "unchanged",
            Action::Deleted => "deleted",
            Action::Absent => "absent",
            Action::Kept => "kept",
        }
    }

    /// A removal's outcome: `Deleted` when the resource was there, else `Absent`.
    pub fn removed(found: bool) -> Action {
        if found {
            Action::Deleted
        } else {
            Action::Absent
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The kind of resource, e.g. `lambda function`, `eventbridge rule`.
    pub resource: &'static str,
    /// Its name (or id, or S3 URI).
    pub name: String,
    pub action: Action,
    /// What changed (`code, configuration`), or why it was kept.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Change {
    pub fn new(resource: &'static str, name: impl Into<String>, action: Action) -> Change {
        Change {
            resource,
            name: name.into(),
            action,
            detail: String::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Change {
        self.detail = detail.into();
        self
    }

    /// One report line: `  <action> <resource> <name> (<detail>)`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "  {:<9} {:<17} {}",
            self.action.as_str(),
            self.resource,
            self.name
        );
        if !self.detail.is_empty() {
            line.push_str(&format!(" ({})", self.detail));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_reports_show_it() {
        let change = Change::new("lambda function", "f", Action::Updated).with_detail("code");
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            serde_json::json!({
                "resource": "lambda function", "name": "f", "action": "updated", "detail": "code"
            })
        );
        let bare = serde_json::to_value(Change::new("rule target", "t", Action::Absent)).unwrap();
        assert_eq!(bare.get("detail"), None);
        assert_eq!(change.line(), "  updated   lambda function   f (code)");
        assert_eq!(Action::removed(true), Action::Deleted);
        assert_eq!(Action::removed(false), Action::Absent);
    }
}
