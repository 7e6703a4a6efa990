//! Reads the call counters from sipp's statistics file (`-trace_stat -stf
//! FILE`): a `;`-separated header line, then one row per dump; the last row
//! holds the final cumulative counts.

/// Why the statistics file could not be read.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StatsError {
    /// No header line and data row.
    #[error("statistics file has no data row")]
    NoData,
    /// The header lacks a column the harness needs.
    #[error("statistics file has no {0} column")]
    MissingColumn(&'static str),
    /// A needed cell is not a number.
    #[error("statistics column {column} holds {value:?}, not a count")]
    BadCount {
        /// The column name.
        column: &'static str,
        /// The cell.
        value: String,
    },
}

/// The header line and the last row of the statistics file.
struct LastRow<'a> {
    header: Vec<&'a str>,
    last: Vec<&'a str>,
}

impl<'a> LastRow<'a> {
    fn of(csv: &'a str) -> Result<Self, StatsError> {
        let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().ok_or(StatsError::NoData)?.split(';').collect();
        let last = lines
            .next_back()
            .ok_or(StatsError::NoData)?
            .split(';')
            .collect();
        Ok(Self { header, last })
    }

    /// The last row's cell under `column` (empty when the row is short).
    fn cell(&self, column: &'static str) -> Result<&'a str, StatsError> {
        let i = self
            .header
            .iter()
            .position(|h| h.trim() == column)
            .ok_or(StatsError::MissingColumn(column))?;
        Ok(self.last.get(i).copied().unwrap_or_default())
    }
}

/// Final cumulative call counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CallCounts {
    /// `SuccessfulCall(C)`.
    pub successful: u64,
    /// `FailedCall(C)`.
    pub failed: u64,
}

/// Parses the statistics file's contents.
pub fn parse(csv: &str) -> Result<CallCounts, StatsError> {
    let row = LastRow::of(csv)?;
    let count = |column: &'static str| -> Result<u64, StatsError> {
        let cell = row.cell(column)?;
        cell.trim().parse().map_err(|_| StatsError::BadCount {
            column,
            value: cell.to_owned(),
        })
    };
    Ok(CallCounts {
        successful: count("SuccessfulCall(C)")?,
        failed: count("FailedCall(C)")?,
    })
}

/// Timing figures of a run, from the last row (cumulative columns).
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct Timing {
    /// `ResponseTime1(C)`: mean time from the request to the first
    /// response marked `rtd="true"` (the scenarios mark the INVITE's 200),
    /// in milliseconds.
    pub response_ms: f64,
    /// `ResponseTime1StDev(C)`, in milliseconds.
    pub response_stdev_ms: f64,
    /// `CallLength(C)`: mean call length, in milliseconds.
    pub call_length_ms: f64,
    /// `Retransmissions(C)`: requests and responses sipp sent again.
    pub retransmissions: u64,
}

/// `HH:MM:SS:uuuuuu`, as sipp writes durations, in milliseconds.
fn duration_ms(cell: &str) -> Option<f64> {
    let mut parts = cell.trim().split(':').map(|p| p.parse::<u64>().ok());
    let (Some(Some(h)), Some(Some(m)), Some(Some(s)), Some(Some(us)), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(((h * 60 + m) * 60 + s) as f64 * 1e3 + us as f64 / 1e3)
}

/// Parses the timing columns of the statistics file.
pub fn parse_timing(csv: &str) -> Result<Timing, StatsError> {
    let row = LastRow::of(csv)?;
    let ms = |column: &'static str| -> Result<f64, StatsError> {
        let c = row.cell(column)?;
        duration_ms(c).ok_or_else(|| StatsError::BadCount {
            column,
            value: c.to_owned(),
        })
    };
    let retrans = row.cell("Retransmissions(C)")?;
    Ok(Timing {
        response_ms: ms("ResponseTime1(C)")?,
        response_stdev_ms: ms("ResponseTime1StDev(C)")?,
        call_length_ms: ms("CallLength(C)")?,
        retransmissions: retrans.trim().parse().map_err(|_| StatsError::BadCount {
            column: "Retransmissions(C)",
            value: retrans.to_owned(),
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str =
        "StartTime;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);";

    #[test]
    fn takes_the_last_row() {
        let csv = format!("{HEADER}\nt0\t1;0;0;0;0;0;\nt1\t2;0;1;3;0;2;\n");
        assert_eq!(
            parse(&csv),
            Ok(CallCounts {
                successful: 3,
                failed: 2
            })
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(parse(""), Err(StatsError::NoData));
        assert_eq!(parse(HEADER), Err(StatsError::NoData));
        assert_eq!(
            parse("A;FailedCall(C)\n1;2\n"),
            Err(StatsError::MissingColumn("SuccessfulCall(C)"))
        );
        assert_eq!(
            parse(&format!("{HEADER}\n1;2;3\n")),
            Err(StatsError::BadCount {
                column: "SuccessfulCall(C)",
                value: String::new()
            })
        );
        assert!(matches!(
            parse(&format!("{HEADER}\na;b;c;x;e;f\n")),
            Err(StatsError::BadCount { .. })
        ));
    }

    #[test]
    fn timing_columns() {
        let csv = "Retransmissions(C);ResponseTime1(C);ResponseTime1StDev(C);CallLength(C)\n\
                   0;00:00:00:000000;00:00:00:000000;00:00:00:000000\n\
                   7;00:00:00:012500;00:00:00:001000;00:01:02:250000\n";
        let t = parse_timing(csv).unwrap();
        assert_eq!(t.retransmissions, 7);
        assert!((t.response_ms - 12.5).abs() < 1e-9);
        assert!((t.response_stdev_ms - 1.0).abs() < 1e-9);
        assert!((t.call_length_ms - 62_250.0).abs() < 1e-9);
        assert_eq!(duration_ms("00:00:01"), None);
        assert_eq!(duration_ms("00:00:01:5:6"), None);
        assert!(matches!(
            parse_timing("Retransmissions(C);ResponseTime1(C)\n0;00:00:00:000001\n"),
            Err(StatsError::MissingColumn("ResponseTime1StDev(C)"))
        ));
    }

    proptest! {
        #[test]
        fn never_panics(csv in "[a-zA-Z0-9;()\n\t ]{0,200}") {
            let _ = parse(&csv);
            let _ = parse_timing(&csv);
        }
    }
}
