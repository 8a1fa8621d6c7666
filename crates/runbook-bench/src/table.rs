//! The printed result: one row per figure, each next to the baseline measured in
//! the same run, the ratio between them and whether the target was met.

use std::time::Duration;

/// One line of the table. Figures are preformatted: rows mix times, rates and sizes.
pub struct Row {
    pub benchmark: String,
    pub measured: String,
    pub baseline_name: String,
    pub baseline: String,
    /// Measured divided by baseline.
    pub ratio: f64,
    /// Empty for a reference figure, which has no target (and counts as met).
    pub target: String,
    pub met: bool,
}

/// Prints the rows as a Markdown table whose columns fit their widest cell.
pub fn print(rows: &[Row]) {
    let header = [
        "benchmark",
        "measured",
        "baseline",
        "baseline",
        "ratio",
        "target",
        "result",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.benchmark.clone(),
                row.measured.clone(),
                row.baseline_name.clone(),
                row.baseline.clone(),
                // Three decimals: a ratio just over its target must not print as the target.
                format!("{:.3}×", row.ratio),
                row.target.clone(),
                match (row.target.is_empty(), row.met) {
                    (true, _) => "—",
                    (false, true) => "met",
                    (false, false) => "MISSED",
                }
                .to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|title| title.chars().count());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // Numbers align right, words left.
    let right = [false, true, false, true, true, false, false];
    let print_line = |line: &[String]| {
        let mut text = String::from("|");
        for ((cell, width), right) in line.iter().zip(widths).zip(right) {
            let pad = " ".repeat(width - cell.chars().count());
            if right {
                text += &format!(" {pad}{cell} |");
            } else {
                text += &format!(" {cell}{pad} |");
            }
        }
        println!("{text}");
    };
    print_line(&header.map(String::from));
    let rule: String = widths
        .iter()
        .zip(right)
        .map(|(width, right)| {
            let dashes = "-".repeat(*width);
            if right {
                format!("-{dashes}:|")
            } else {
                format!("-{dashes}-|")
            }
        })
        .collect();
    println!("|{rule}");
    for line in &cells {
        print_line(line);
    }
}

/// The middle sample (the lower one of an even count).
pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50)
}

/// The nearest-rank percentile: the smallest sample with at least `pct` % of the
/// samples at or below it.
pub fn percentile(samples: &[Duration], pct: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Milliseconds with three decimals.
pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// 2000 as "2,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut text = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=20).rev().map(Duration::from_millis).collect();
        assert_eq!(median(&samples), Duration::from_millis(10));
        assert_eq!(percentile(&samples, 95), Duration::from_millis(19));
        assert_eq!(percentile(&samples, 100), Duration::from_millis(20));
        assert_eq!(
            median(&[Duration::from_millis(7)]),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn groups_digits_by_three() {
        assert_eq!(thousands(20), "20");
        assert_eq!(thousands(2000), "2,000");
        assert_eq!(thousands(1_000_000_000), "1,000,000,000");
    }
}
