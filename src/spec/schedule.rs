//! EventBridge schedule expressions, checked before any AWS call: `cron(…)` with six fields,
//! or `rate(…)`. Rules from the EventBridge user guide, "Schedule expressions for rules".

/// Checks an EventBridge schedule expression; the error says which field is wrong and why.
pub fn check_expression(expression: &str) -> Result<(), String> {
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return check_rate(inner);
    }
    let Some(inner) = expression
        .strip_prefix("cron(")
        .and_then(|r| r.strip_suffix(')'))
    else {
        return Err(
            "a schedule is `cron(minutes hours day-of-month month day-of-week year)` or `rate(1 day)`"
                .into(),
        );
    };
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "EventBridge cron takes six fields (minutes hours day-of-month month day-of-week year), this has {}; e.g. `cron(0 6 * * ? *)`",
            fields.len()
        ));
    }
    let [minutes, hours, day_of_month, month, day_of_week, year] = [
        fields[0], fields[1], fields[2], fields[3], fields[4], fields[5],
    ];
    check_field("minutes", minutes, 0, 59, &[], "")?;
    check_field("hours", hours, 0, 23, &[], "")?;
    check_field("day-of-month", day_of_month, 1, 31, &[], "?LW")?;
    check_field("month", month, 1, 12, MONTHS, "")?;
    check_field("day-of-week", day_of_week, 1, 7, WEEKDAYS, "?L#")?;
    check_field("year", year, 1970, 2199, &[], "")?;
    match (day_of_month == "?", day_of_week == "?") {
        (true, true) => Err("only one of day-of-month and day-of-week may be `?`".into()),
        (false, false) => Err(
            "day-of-month and day-of-week cannot both be set: put `?` in one of them, e.g. `cron(0 6 * * ? *)`"
                .into(),
        ),
        _ => Ok(()),
    }
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn check_rate(inner: &str) -> Result<(), String> {
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts[..] else {
        return Err("a rate is `rate(value unit)`, e.g. `rate(1 day)` or `rate(6 hours)`".into());
    };
    let value: u32 = value
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("rate value `{value}` must be a positive whole number"))?;
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    match (value == 1, singular.contains(&unit), plural.contains(&unit)) {
        (true, true, _) | (false, _, true) => Ok(()),
        (true, _, true) => Err(format!(
            "write `rate(1 {})`: a value of 1 takes the singular unit",
            unit.trim_end_matches('s')
        )),
        (false, true, _) => Err(format!(
            "write `rate({value} {unit}s)`: a value above 1 takes the plural unit"
        )),
        _ => Err(format!(
            "rate unit `{unit}` must be minute(s), hour(s) or day(s)"
        )),
    }
}

fn check_field(
    name: &str,
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    specials: &str,
) -> Result<(), String> {
    let bad = |why: String| Err(format!("cron {name} field `{field}`: {why}"));
    if field == "*" || (field == "?" && specials.contains('?')) {
        return Ok(());
    }
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            if step.parse::<u32>().map_or(true, |s| s == 0) {
                return bad(format!("step `{step}` must be a positive number"));
            }
        }
        if range == "*" {
            continue;
        }
        if specials.contains('L') && (range == "L" || range == "LW") {
            continue;
        }
        if specials.contains('#') {
            if let Some((day, nth)) = range.split_once('#') {
                if value_of(day, min, max, names).is_none()
                    || !matches!(nth, "1" | "2" | "3" | "4" | "5")
                {
                    return bad(format!("`{range}` must be weekday#n with n from 1 to 5"));
                }
                continue;
            }
        }
        let range = if specials.contains('W') {
            range.trim_end_matches('W')
        } else {
            range
        };
        let range = if specials.contains('L') {
            range.trim_end_matches('L')
        } else {
            range
        };
        let (low, high) = range.split_once('-').unwrap_or((range, range));
        for value in [low, high] {
            if value_of(value, min, max, names).is_none() {
                let allowed = if names.is_empty() {
                    format!("{min}-{max}")
                } else {
                    format!("{min}-{max} or {}-{}", names[0], names[names.len() - 1])
                };
                return bad(format!("`{value}` is not in {allowed}"));
            }
        }
    }
    Ok(())
}

fn value_of(text: &str, min: u32, max: u32, names: &[&str]) -> Option<u32> {
    if let Some(position) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Some(min + position as u32);
    }
    text.parse::<u32>().ok().filter(|v| (min..=max).contains(v))
}

/// `yesterday`, `today` or `N days ago` → days back from the run's tick.
pub fn parse_date_rule(rule: &str) -> Result<u32, String> {
    match rule.trim() {
        "today" => Ok(0),
        "yesterday" => Ok(1),
        other => other
            .strip_suffix(" days ago")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(|| {
                format!("`{other}` is not a date rule; write `yesterday`, `today` or `N days ago`")
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_eventbridge_examples() {
        for ok in [
            "cron(0 6 * * ? *)",
            "cron(0 10 * * ? *)",
            "cron(15 12 * * ? *)",
            "cron(0 18 ? * MON-FRI *)",
            "cron(0 8 1 * ? *)",
            "cron(0/15 * * * ? *)",
            "cron(0 9 ? * 2#1 *)",
            "cron(0 0 L * ? *)",
            "rate(1 day)",
            "rate(6 hours)",
        ] {
            assert_eq!(check_expression(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, needle) in [
            ("0 6 * * *", "cron(minutes"),
            ("cron(0 6 * * *)", "six fields"),
            ("cron(0 6 * * * *)", "cannot both be set"),
            ("cron(60 6 * * ? *)", "minutes field"),
            ("cron(0 24 * * ? *)", "hours field"),
            ("cron(0 6 * 13 ? *)", "month field"),
            ("cron(0 6 * * ? 1969)", "year field"),
            ("rate(1 days)", "singular"),
            ("rate(0 days)", "positive"),
        ] {
            let error = check_expression(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }

    #[test]
    fn date_rules() {
        assert_eq!(parse_date_rule("yesterday"), Ok(1));
        assert_eq!(parse_date_rule("3 days ago"), Ok(3));
        assert!(parse_date_rule("last week").is_err());
    }
}
