//! Durations as people write them in scenario files: `250ms`, `5s`, `1m30s`, `0`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use metal_api::duration::Unit;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration written as Go-style text (`h`, `m`, `s`, `ms` units, combinable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);

    pub fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    pub fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }
}

impl From<Dur> for Duration {
    fn from(d: Dur) -> Self {
        d.0
    }
}

/// Longest duration a scenario may write: no run on one machine lasts a day (the 10,000-server
/// benchmark takes ten minutes), and anything longer only overflows the clocks it is added to.
pub const MAX: Duration = Duration::from_secs(24 * 3600);

/// The units a scenario may write (Go's down to milliseconds, what the runner counts in).
const UNITS: &[Unit] = metal_api::duration::GO_UNITS.split_at(4).0; // h, m, s, ms

/// Parses `1h2m3s`, `1.5s`, `250ms`, `0`, up to `MAX`.
pub fn parse(input: &str) -> Result<Duration, String> {
    let total = metal_api::duration::parse_with(input, UNITS, MAX)?;
    // Whole milliseconds: what the runner and the printed form (`Display`) count in.
    if !total.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(format!(
            "invalid duration {input:?}: finer than a millisecond"
        ));
    }
    Ok(total)
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            write!(f, "0")
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as `500ms`, `5s`, `1m30s` or `0`.",
            "pattern": "^(0|([0-9]+(\\.[0-9]+)?(h|m|s|ms))+)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert!(parse("5").unwrap_err().contains("missing unit"));
        assert!(parse("5d").unwrap_err().contains("unknown unit"));
        assert_eq!(parse("24h").unwrap(), MAX);
        assert!(
            parse("1.5ms")
                .unwrap_err()
                .contains("finer than a millisecond")
        );
    }

    #[test]
    fn huge_durations_are_errors_not_panics() {
        let long = format!("{}s", "9".repeat(400));
        for text in [
            "25h",
            "1441m",
            "99999999999999999999999999h",
            "18446744073709551615s18446744073709551615s",
            "23h59m60s1ms",
            long.as_str(),
        ] {
            assert!(parse(text).is_err(), "{text} parsed");
        }
        assert!(
            parse("25h")
                .unwrap_err()
                .contains("exceeds the limit of 24h")
        );
        assert_eq!(Dur::from_millis(90_000).to_string(), "90s");
        assert_eq!(Dur::from_millis(120_000).to_string(), "2m");
        assert_eq!(Dur::from_millis(250).to_string(), "250ms");
    }
}
