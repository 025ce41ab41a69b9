//! Go duration strings (`time.ParseDuration`: `1h30m`, `1.5s`, `250ms`, `0`), as metav1.Duration
//! fields and upstream's flags carry them. Hand-written after Go's algorithm: `humantime` reads
//! other syntax (spaces, `min`, days), and `kube::core::Duration` takes "" for zero and panics on
//! values past `Duration::MAX` (`mul_f64`).

use std::time::Duration;

/// A unit a duration may be written in, and its length in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    pub name: &'static str,
    pub nanos: u64,
}

const fn unit(name: &'static str, nanos: u64) -> Unit {
    Unit { name, nanos }
}

/// Go's units (`µs` as U+00B5 and as U+03BC, as Go accepts both).
pub const GO_UNITS: &[Unit] = &[
    unit("h", 3_600_000_000_000),
    unit("m", 60_000_000_000),
    unit("s", 1_000_000_000),
    unit("ms", 1_000_000),
    unit("us", 1_000),
    unit("µs", 1_000),
    unit("μs", 1_000),
    unit("ns", 1),
];

/// Go's longest duration (`math.MaxInt64` nanoseconds, about 292 years).
pub const GO_MAX: Duration = Duration::from_nanos(GO_MAX_NANOS);
const GO_MAX_NANOS: u64 = i64::MAX as u64;

/// Parses a non-negative Go duration with all of Go's units, up to [`GO_MAX`].
pub fn parse(input: &str) -> Result<Duration, String> {
    parse_with(input, GO_UNITS, GO_MAX)
}

/// Parses a non-negative Go duration written in `units` only, up to `max` (at most [`GO_MAX`]).
/// Surrounding white space is ignored; fractions are truncated to the nanosecond, as Go does.
pub fn parse_with(input: &str, units: &[Unit], max: Duration) -> Result<Duration, String> {
    let text = input.trim();
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration (write e.g. 500ms, 5s, 1m30s)".into());
    }
    if negative {
        return Err(format!("invalid duration {input:?}: negative"));
    }
    let names = || units.iter().map(|u| u.name).collect::<Vec<_>>().join(", ");
    let too_long = || format!("duration {input:?} exceeds the limit of {}", show(max));
    let max_nanos = u64::try_from(max.as_nanos())
        .unwrap_or(u64::MAX)
        .min(GO_MAX_NANOS);
    let mut total: u64 = 0;
    let mut rest = unsigned.as_bytes();
    // Each round consumes at least one byte (a digit or a dot, then a unit), so this ends.
    while !rest.is_empty() {
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return Err(format!("invalid duration {input:?}: expected a number"));
        }
        let int_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let whole = rest[..int_len]
            .iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .filter(|n| *n <= GO_MAX_NANOS)
            .ok_or_else(too_long)?;
        rest = &rest[int_len..];
        let mut has_fraction = false;
        let (mut fraction, mut scale) = (0u64, 1f64);
        if let Some(after) = rest.strip_prefix(b".") {
            let frac_len = after.iter().take_while(|c| c.is_ascii_digit()).count();
            has_fraction = frac_len > 0;
            // As Go: digits that would overflow the numerator are dropped.
            for d in &after[..frac_len] {
                match fraction.checked_mul(10).map(|f| f + u64::from(d - b'0')) {
                    Some(f) if f <= GO_MAX_NANOS => {
                        fraction = f;
                        scale *= 10.0;
                    }
                    _ => break,
                }
            }
            rest = &after[frac_len..];
        }
        if int_len == 0 && !has_fraction {
            return Err(format!("invalid duration {input:?}: expected a number"));
        }
        let unit_len = rest
            .iter()
            .take_while(|c| !(**c == b'.' || c.is_ascii_digit()))
            .count();
        let (name, after) = rest.split_at(unit_len);
        rest = after;
        if name.is_empty() {
            return Err(format!(
                "invalid duration {input:?}: missing unit ({})",
                names()
            ));
        }
        let Some(unit) = units.iter().find(|u| u.name.as_bytes() == name) else {
            let name = String::from_utf8_lossy(name);
            return Err(format!(
                "invalid duration {input:?}: unknown unit {name:?} (use {})",
                names()
            ));
        };
        let mut part = whole.checked_mul(unit.nanos).ok_or_else(too_long)?;
        if fraction > 0 {
            // Through f64 as Go does (exact enough: at most 3.6e12 ns per hour's fraction).
            part += (fraction as f64 * (unit.nanos as f64 / scale)) as u64;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= max_nanos)
            .ok_or_else(too_long)?;
    }
    Ok(Duration::from_nanos(total))
}

/// `24h`, `90m`, `30s`, or the exact seconds, for messages.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    match (d.subsec_nanos(), secs) {
        (0, s) if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        (0, s) if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        (0, s) => format!("{s}s"),
        _ => format!("{d:?}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn go_syntax() {
        let ok = [
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("5.s", Duration::from_secs(5)),
            ("+5s", Duration::from_secs(5)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("3µs", Duration::from_micros(3)),
            ("3μs", Duration::from_micros(3)),
            ("1.0000000019s", Duration::new(1, 1)),
            ("2562047h47m16.854775807s", GO_MAX),
            (" 5s ", Duration::from_secs(5)),
            // From Go's time_test.go.
            ("10.5s4m", Duration::from_millis(250_500)),
            ("39h9m14.425s", Duration::from_millis(140_954_425)),
            ("52763797000ns", Duration::from_nanos(52_763_797_000)),
            ("0.3333333333333333333h", Duration::from_secs(20 * 60)),
            (
                "9007199254740993ns",
                Duration::from_nanos(9_007_199_254_740_993),
            ),
            ("9223372036854775807ns", GO_MAX),
            ("9223372036854775.807us", GO_MAX),
            ("9223372036s854ms775us807ns", GO_MAX),
            ("0.100000000000000000000h", Duration::from_secs(6 * 60)),
            (
                "0.830103483285477580700h",
                Duration::from_nanos(49 * 60_000_000_000 + 48_372_539_827),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        let bad = [
            ("", "empty duration"),
            ("5", "missing unit"),
            ("5d", "unknown unit \"d\""),
            ("5 minutes", "unknown unit"),
            ("m", "expected a number"),
            (".s", "expected a number"),
            ("-5s", "negative"),
            ("2562047h47m16.854775808s", "exceeds the limit"),
            ("9223372036854775808ns", "exceeds the limit"),
            ("3000000h", "exceeds the limit"),
            ("1..5s", "missing unit"),
            ("+-5s", "expected a number"),
            (
                "99999999999999999999999999999999999999999h",
                "exceeds the limit",
            ),
        ];
        for (text, want) in bad {
            let error = parse(text).expect_err(text);
            assert!(error.contains(want), "{text}: {error}");
        }
    }

    #[test]
    fn units_and_limit_can_be_narrowed() {
        let units = &GO_UNITS[..4];
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse_with("24h", units, day), Ok(day));
        let error = parse_with("24h1ms", units, day).unwrap_err();
        assert!(error.contains("exceeds the limit of 24h"), "{error}");
        let error = parse_with("5us", units, day).unwrap_err();
        assert!(
            error.contains("unknown unit \"us\" (use h, m, s, ms)"),
            "{error}"
        );
    }

    /// Go's `Duration.String` (`1h2m3.5s`, `1.5ms`, `0s`), to check that whatever Go prints parses back.
    fn go_string(d: Duration) -> String {
        let nanos = d.as_nanos();
        if nanos == 0 {
            return "0s".into();
        }
        let trim = |whole: u128, frac: u128, digits: usize| {
            let frac = format!("{frac:0digits$}");
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{frac}")
            }
        };
        if nanos < 1_000 {
            return format!("{nanos}ns");
        }
        if nanos < 1_000_000 {
            return format!("{}µs", trim(nanos / 1_000, nanos % 1_000, 3));
        }
        if nanos < 1_000_000_000 {
            return format!("{}ms", trim(nanos / 1_000_000, nanos % 1_000_000, 6));
        }
        let secs = nanos / 1_000_000_000;
        let seconds = format!("{}s", trim(secs % 60, nanos % 1_000_000_000, 9));
        match (secs / 3600, secs / 60 % 60) {
            (0, 0) => seconds,
            (0, m) => format!("{m}m{seconds}"),
            (h, m) => format!("{h}h{m}m{seconds}"),
        }
    }

    proptest! {
        #[test]
        fn what_go_prints_parses_back(nanos in 0..=i64::MAX as u64) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&go_string(d)), Ok(d));
        }
    }
}
