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
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().ok_or(StatsError::NoData)?.split(';').collect();
    let last: Vec<&str> = lines
        .next_back()
        .ok_or(StatsError::NoData)?
        .split(';')
        .collect();
    let count = |column: &'static str| -> Result<u64, StatsError> {
        let i = header
            .iter()
            .position(|h| h.trim() == column)
            .ok_or(StatsError::MissingColumn(column))?;
        let cell = last.get(i).copied().unwrap_or_default();
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

    proptest! {
        #[test]
        fn never_panics(csv in "[a-zA-Z0-9;()\n\t ]{0,200}") {
            let _ = parse(&csv);
        }
    }
}
