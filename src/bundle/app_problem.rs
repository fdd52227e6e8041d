//! One thing wrong with a user's application package, found before anything is uploaded.
//!
//! Plain data: the CLI maps it into its own error type. Every problem names what it is about
//! (a package, a file, `requirements.txt:12`), says what is wrong, and how to fix it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppProblem {
    /// What the problem is about: a package name, a file (with `:line` where known).
    pub subject: String,
    /// What is wrong, in one or two sentences.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl AppProblem {
    pub fn new(
        subject: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> AppProblem {
        AppProblem {
            subject: subject.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for AppProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n  fix: {}", self.fix)?;
        }
        Ok(())
    }
}
