//! Durations written as `90s`, `30m`, `1h`, `1h30m` or `2d`.

/// Parses a duration into seconds; the error says what is accepted.
pub fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let accepted = "write a number with a unit: `90s`, `30m`, `1h`, `1h30m` or `2d`";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the duration is empty; {accepted}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("`{text}` has the unknown unit `{c}`; {accepted}")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` has a unit without a number; {accepted}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("`{text}` has no unit; {accepted}"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse_duration_seconds("1h").unwrap(), 3600);
        assert_eq!(parse_duration_seconds("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration_seconds("90s").unwrap(), 90);
        assert!(parse_duration_seconds("60").is_err());
        assert!(parse_duration_seconds("1 hour").is_err());
    }
}
