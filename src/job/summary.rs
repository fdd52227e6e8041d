//! What a run prints: the summary on stderr (counts, timings, the advertisers with the most
//! unmatched views — the broken catalogs worth fixing first) and the per-advertiser table on
//! stdout as text or JSON.

use std::fmt::Write;

use serde_json::json;

use super::engine::RunReport;
use super::model::AdvertiserRate;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The advertisers with the most unmatched views, most first (ties by id).
pub fn top_unmatched(rates: &[AdvertiserRate], top: usize) -> Vec<&AdvertiserRate> {
    let mut rows: Vec<&AdvertiserRate> = rates.iter().collect();
    rows.sort_by(|a, b| {
        (b.total_views - b.matched_views)
            .cmp(&(a.total_views - a.matched_views))
            .then_with(|| a.advertiser_id.cmp(&b.advertiser_id))
    });
    rows.truncate(top);
    rows
}

/// The stderr summary of a run.
pub fn render(report: &RunReport, top: usize) -> String {
    let s = &report.scan;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "match-rate {}: {} files, {} rows read, {} counted, {} outside the day, {} with a missing id",
        report.day,
        thousands(s.files),
        thousands(s.rows_read),
        thousands(s.rows_counted),
        thousands(s.rows_outside_day),
        thousands(s.rows_missing_ids),
    );
    let views: u64 = report.advertiser_rates.iter().map(|r| r.total_views).sum();
    let matched_views: u64 = report
        .advertiser_rates
        .iter()
        .map(|r| r.matched_views)
        .sum();
    let _ = writeln!(
        out,
        "{} advertisers, {} distinct products viewed, {} in the catalog ({}); {} of {} views matched ({})",
        thousands(report.advertiser_rates.len() as u64),
        thousands(report.pairs),
        thousands(report.matched_pairs),
        percent(report.matched_pairs, report.pairs),
        thousands(matched_views),
        thousands(views),
        percent(matched_views, views),
    );
    let _ = writeln!(
        out,
        "wrote {} product rows and {} advertiser rows to {}",
        thousands(report.sink.product_rows),
        thousands(report.sink.advertiser_rows),
        report.sink.destination
    );
    let timings: Vec<String> = report
        .timings
        .iter()
        .map(|(name, d)| format!("{name} {:.2}s", d.as_secs_f64()))
        .collect();
    let _ = writeln!(out, "time: {}", timings.join(", "));
    let rows = top_unmatched(&report.advertiser_rates, top);
    if !rows.is_empty() {
        let _ = writeln!(out, "top advertisers by unmatched views:");
        let width = rows
            .iter()
            .map(|r| r.advertiser_id.len())
            .max()
            .unwrap_or(0)
            .max(13);
        let _ = writeln!(
            out,
            "  {:<width$}  {:>15}  {:>13}  {:>10}",
            "advertiser_id", "unmatched views", "total views", "match rate"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>15}  {:>13}  {:>10}",
                r.advertiser_id,
                thousands(r.total_views - r.matched_views),
                thousands(r.total_views),
                percent(r.matched_views, r.total_views)
            );
        }
    }
    out
}

/// `advertiser_match_rates` as an aligned text table (stdout).
pub fn rates_text(rates: &[AdvertiserRate]) -> String {
    let width = rates
        .iter()
        .map(|r| r.advertiser_id.len())
        .max()
        .unwrap_or(0)
        .max(13);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>13}  {:>14}  {:>16}  {:>10}",
        "advertiser_id",
        "total_views",
        "matched_views",
        "total_products",
        "matched_products",
        "match_rate"
    );
    for r in rates {
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:>13}  {:>14}  {:>16}  {:>10.4}",
            r.advertiser_id,
            r.total_views,
            r.matched_views,
            r.total_products,
            r.matched_products,
            r.match_rate
        );
    }
    out
}

/// The whole report as JSON (stdout with `--format json`).
pub fn report_json(report: &RunReport) -> serde_json::Value {
    let s = &report.scan;
    json!({
        "day": report.day.format("%Y-%m-%d").to_string(),
        "scan": {
            "files": s.files,
            "rows_read": s.rows_read,
            "rows_counted": s.rows_counted,
            "rows_outside_day": s.rows_outside_day,
            "rows_missing_ids": s.rows_missing_ids,
        },
        "pairs": report.pairs,
        "matched_pairs": report.matched_pairs,
        "sink": {
            "destination": report.sink.destination,
            "product_rows": report.sink.product_rows,
            "advertiser_rows": report.sink.advertiser_rows,
        },
        "seconds": report.timings.iter().map(|(n, d)| (n.to_string(), json!(d.as_secs_f64()))).collect::<serde_json::Map<_, _>>(),
        "advertiser_match_rates": report.advertiser_rates.iter().map(|r| json!({
            "advertiser_id": r.advertiser_id,
            "total_views": r.total_views,
            "matched_views": r.matched_views,
            "total_products": r.total_products,
            "matched_products": r.matched_products,
            "match_rate": r.match_rate,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(id: &str, total: u64, matched: u64) -> AdvertiserRate {
        AdvertiserRate {
            advertiser_id: id.into(),
            total_views: total,
            matched_views: matched,
            total_products: 1,
            matched_products: 0,
            match_rate: matched as f64 / total as f64,
        }
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(40_000_000), "40,000,000");
    }

    #[test]
    fn top_unmatched_orders_by_unmatched_views_then_id() {
        let rates = [
            rate("a", 10, 10),
            rate("b", 10, 2),
            rate("c", 100, 92),
            rate("d", 5, 0),
        ];
        let ids: Vec<&str> = top_unmatched(&rates, 3)
            .iter()
            .map(|r| r.advertiser_id.as_str())
            .collect();
        assert_eq!(ids, ["b", "c", "d"]);
    }
}
