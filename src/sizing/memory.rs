//! Spark/JVM memory strings such as `11g` or `11600m`, held as MiB.
//!
//! Spark reads `spark.executor.memory` and friends with `JavaUtils.byteStringAsMb`: a whole number
//! with an optional binary unit (k, m, g, t; `kb`, `mb`, ... also accepted), case-insensitive,
//! and a bare number means MiB. This parser accepts the same shapes, except that it refuses
//! values that are not a whole number of MiB instead of silently rounding them down.

const KIB_PER_MIB: u64 = 1024;
const MIB_PER_GIB: u64 = 1024;
const MIB_PER_TIB: u64 = 1024 * 1024;

const ACCEPTED: &str = "expected a whole number with an optional unit k, m, g or t \
                        (any case, optionally followed by b), e.g. 11g, 11600m, 512M or 1024; \
                        a bare number means MiB";

/// Parses a Spark memory string into MiB: `11g` → 11264, `11600m` → 11600, `1024` → 1024,
/// `2t` → 2097152. Surrounding whitespace is ignored. The error says what is accepted.
///
/// # Errors
/// A message naming the input and the accepted forms, for anything else: no number, an unknown
/// unit, a fraction, KiB that are not whole MiB, or a value that overflows `u64` MiB.
pub fn parse_memory_mib(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("invalid memory size {s:?}: {ACCEPTED}"));
    }
    if unit.starts_with(['.', ',']) {
        return Err(format!(
            "invalid memory size {s:?}: fractions are not accepted (Spark refuses them too); \
             use a smaller unit, e.g. 1536m instead of 1.5g"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid memory size {s:?}: the number is too large"))?;
    let too_large = || format!("invalid memory size {s:?}: the value is too large");
    match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" => Ok(number),
        "g" | "gb" => number.checked_mul(MIB_PER_GIB).ok_or_else(too_large),
        "t" | "tb" => number.checked_mul(MIB_PER_TIB).ok_or_else(too_large),
        "k" | "kb" if number.is_multiple_of(KIB_PER_MIB) => Ok(number / KIB_PER_MIB),
        "k" | "kb" => Err(format!(
            "invalid memory size {s:?}: {number}k is not a whole number of MiB \
             (1m = 1024k); write it in m or g"
        )),
        _ => Err(format!(
            "invalid memory size {s:?}: unknown unit {unit:?}; {ACCEPTED}"
        )),
    }
}

/// Formats MiB the way emrship writes memory into Spark configuration: always `<n>m`, exact, so
/// the rendered value is the computed one and never a rounded `g` figure.
pub fn format_spark_mib(mib: u64) -> String {
    format!("{mib}m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("11g", 11 * 1024),
            ("11G", 11 * 1024),
            ("11gb", 11 * 1024),
            ("11GB", 11 * 1024),
            ("11600m", 11600),
            ("512M", 512),
            ("512mb", 512),
            ("1024", 1024),
            ("0", 0),
            ("2t", 2 * 1024 * 1024),
            ("1TB", 1024 * 1024),
            ("2048k", 2),
            ("1048576KB", 1024),
            ("  11g\n", 11 * 1024),
            ("007g", 7 * 1024),
        ];
        for (text, mib) in cases {
            assert_eq!(parse_memory_mib(text), Ok(mib), "{text:?}");
        }
    }

    #[test]
    fn rejected_forms_say_what_is_accepted() {
        for text in [
            "", "   ", "g", "-1g", "+1g", "11 g", "11gib", "11x", "eleven", "11g11", "1e3",
        ] {
            let error = parse_memory_mib(text).expect_err(text);
            assert!(error.contains(&format!("{text:?}")), "{error}");
            assert!(
                error.contains("11600m") || error.contains("unit"),
                "{error}"
            );
        }
    }

    #[test]
    fn fractions_are_refused_with_a_hint() {
        let error = parse_memory_mib("1.5g").unwrap_err();
        assert!(error.contains("1536m"), "{error}");
    }

    #[test]
    fn partial_mib_in_kib_is_refused() {
        let error = parse_memory_mib("1500k").unwrap_err();
        assert!(error.contains("whole number of MiB"), "{error}");
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse_memory_mib("99999999999999999999999").is_err());
        assert!(parse_memory_mib("18446744073709551615g").is_err());
        assert!(parse_memory_mib("18446744073709551615t").is_err());
        assert_eq!(parse_memory_mib("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn formats_exact_mib() {
        assert_eq!(format_spark_mib(17376), "17376m");
        assert_eq!(format_spark_mib(0), "0m");
        assert_eq!(format_spark_mib(11 * 1024), "11264m");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for mib in [0, 1, 384, 1738, 17376, 1490944, u64::MAX] {
            assert_eq!(parse_memory_mib(&format_spark_mib(mib)), Ok(mib));
        }
    }
}
