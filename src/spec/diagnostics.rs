//! Spec problems: what is wrong, where (file:line:column), and how to fix it.
//!
//! Every check reports into one [`Diagnostics`] list instead of returning early, so a user sees
//! all mistakes in a spec at once rather than one per cluster start.

use std::fmt;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceSpan};

use super::source::{SourceText, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

/// Where a problem is: a span in one source, or nowhere in particular.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Arc<SourceText>,
    pub span: Span,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.source.name, self.span.line, self.span.column
        )
    }
}

/// One problem found in a spec.
#[derive(Debug, Clone)]
pub struct SpecDiagnostic {
    pub severity: Severity,
    /// A stable, greppable name for the rule, e.g. `spec::unknown-key`.
    pub code: &'static str,
    pub message: String,
    /// Short text under the highlighted span.
    pub label: Option<String>,
    /// How to fix it.
    pub help: Option<String>,
    pub origin: Option<Origin>,
}

impl SpecDiagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        SpecDiagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            label: None,
            help: None,
            origin: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        SpecDiagnostic {
            severity: Severity::Warning,
            ..SpecDiagnostic::error(code, message)
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn at(mut self, origin: Option<Origin>) -> Self {
        self.origin = origin;
        self
    }

    /// One line for logs and JSON: `file:line:col: message (help: …)`.
    pub fn one_line(&self) -> String {
        let mut line = match &self.origin {
            Some(origin) => format!("{origin}: {}", self.message),
            None => self.message.clone(),
        };
        if let Some(help) = &self.help {
            line.push_str(" (help: ");
            line.push_str(help);
            line.push(')');
        }
        line
    }

    /// A multi-line report with the source line and a caret under the problem. Colour-free and
    /// ASCII-only, so it reads the same in a terminal, a CI log and a snapshot.
    pub fn render(&self) -> String {
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::none())
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = handler.render_report(&mut out, self);
        out
    }
}

impl fmt::Display for SpecDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecDiagnostic {}

impl miette::Diagnostic for SpecDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.origin
            .as_ref()
            .map(|o| &*o.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let origin = self.origin.as_ref()?;
        let span = SourceSpan::new(origin.span.offset.into(), origin.span.len.max(1));
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.label.clone(),
            span,
        ))))
    }
}

impl miette::SourceCode for SourceText {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            contents.data(),
            *contents.span(),
            contents.line(),
            contents.column(),
            contents.line_count(),
        )))
    }
}

/// All problems found in one spec, in the order found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<SpecDiagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: SpecDiagnostic) {
        self.items.push(diagnostic);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &SpecDiagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &SpecDiagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SpecDiagnostic> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Every diagnostic rendered, errors first, then a one-line count.
    pub fn render(&self) -> String {
        let mut sorted: Vec<&SpecDiagnostic> = self.items.iter().collect();
        // Stable sort keeps the discovery order within each severity.
        sorted.sort_by_key(|d| std::cmp::Reverse(d.severity));
        let mut out = String::new();
        for diagnostic in sorted {
            out.push_str(&diagnostic.render());
            out.push('\n');
        }
        let errors = self.errors().count();
        let warnings = self.warnings().count();
        if errors > 0 {
            out.push_str(&format!(
                "{errors} error{} and {warnings} warning{} in the spec; nothing was sent or uploaded.\n",
                plural(errors),
                plural(warnings)
            ));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Failure to turn spec files into a checked job plan: every problem found, for display.
#[derive(Debug, thiserror::Error)]
#[error("the job spec has {} error(s)", .0.errors().count())]
pub struct SpecErrors(pub Diagnostics);

/// Closest candidate for a did-you-mean hint, if any is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&given_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_plausible_typos_only() {
        let keys = ["instance_type", "count", "market"];
        assert_eq!(did_you_mean("instance_typ", keys), Some("instance_type"));
        assert_eq!(did_you_mean("InstanceType", keys), Some("instance_type"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn rendered_diagnostic_names_file_line_and_column() {
        let source = SourceText::new("job.yaml", "name: x\nrelease: emr-9.9.9\n");
        let diagnostic =
            SpecDiagnostic::error("spec::release", "unknown release label `emr-9.9.9`")
                .help("use one of the emr-7.x labels")
                .at(Some(Origin {
                    source: source.clone(),
                    span: Span {
                        offset: 17,
                        len: 9,
                        line: 2,
                        column: 10,
                    },
                }));
        let text = diagnostic.render();
        assert!(text.contains("[job.yaml:2:10]"), "{text}");
        assert!(text.contains("emr-9.9.9"), "{text}");
        assert!(text.contains("help: use one of"), "{text}");
        assert_eq!(
            diagnostic.one_line(),
            "job.yaml:2:10: unknown release label `emr-9.9.9` (help: use one of the emr-7.x labels)"
        );
    }
}
