//! Kinesis sequence numbers: decimal strings of up to 129 digits (`0|[1-9][0-9]{0,128}`), so
//! they are compared as big integers (length first, then digits), never as `u64`. moto hands out
//! `"1"`, `"2"`, …; real Kinesis 56-digit numbers; both order the same way here.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Checks the shape Kinesis documents; `None` for anything else.
    pub fn parse(text: &str) -> Option<SequenceNumber> {
        let valid = !text.is_empty()
            && text.len() <= 129
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        valid.then(|| SequenceNumber(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        // No leading zeros: a longer number is a larger one.
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(text: &str) -> SequenceNumber {
        SequenceNumber::parse(text).unwrap()
    }

    #[test]
    fn orders_as_integers_not_as_text() {
        assert!(seq("9") < seq("10"));
        assert!(seq("2") < seq("10"));
        let real = "49671234567890123456789012345678901234567890123456789012";
        let next = "49671234567890123456789012345678901234567890123456789013";
        assert!(seq(real) < seq(next));
        assert!(seq("123456789012345678901234567890") > seq(&u64::MAX.to_string()));
        assert_eq!(seq("0").cmp(&seq("0")), Ordering::Equal);
    }

    #[test]
    fn refuses_what_is_not_a_sequence_number() {
        for bad in [
            "",
            "01",
            "-1",
            "1.0",
            "12a",
            "TRIM_HORIZON",
            &"1".repeat(130),
        ] {
            assert!(SequenceNumber::parse(bad).is_none(), "{bad}");
        }
    }
}
