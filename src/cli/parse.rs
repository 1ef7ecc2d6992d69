//! The parsers clap runs on flag values, so a bad value is reported by flag name before
//! anything connects: offsets, consumer names, durations and byte sizes.

use std::time::Duration;

use crate::engines::reader::StartOffset;

pub fn parse_offset(s: &str) -> Result<StartOffset, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "first" => return Ok(StartOffset::First),
        "last" => return Ok(StartOffset::Last),
        "next" => return Ok(StartOffset::Next),
        "stored" => return Ok(StartOffset::Stored),
        _ => {}
    }
    if let Ok(n) = s.trim().parse::<u64>() {
        return Ok(StartOffset::Offset(n));
    }
    match time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339) {
        Ok(t) => Ok(StartOffset::Timestamp {
            millis: (t.unix_timestamp_nanos() / 1_000_000) as i64,
            text: s.trim().to_string(),
        }),
        Err(_) => Err(format!(
            "'{s}' is not an offset: use first, last, next, stored, a number (e.g. 1500) or an RFC 3339 timestamp (e.g. 2026-11-24T10:00:00Z)"
        )),
    }
}

/// `--listen`: `HOST:PORT` with an address (`127.0.0.1:8080`, `[::1]:8080`) or a host name
/// (`localhost:8080`, resolved here, its IPv4 address first), or `:PORT` for every interface
/// (`0.0.0.0`).
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let example = "e.g. 127.0.0.1:8080, localhost:8080, or :8080 for every interface";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("'{s}' has no port: write HOST:PORT, {example}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' in '{s}' is not a port (0 to 65535): {example}"))?;
    if host.is_empty() {
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{host}': {e}: use an address, {example}"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("'{host}' has no address: use an address, {example}"))
}

/// The names of the independent consumers of a fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerNames(pub Vec<String>);

/// `stats,email` → those names; `3` → consumer-1, consumer-2, consumer-3.
pub fn parse_consumers(s: &str) -> Result<ConsumerNames, String> {
    if let Ok(n) = s.trim().parse::<usize>() {
        return match n {
            1..=255 => Ok(ConsumerNames(
                (1..=n).map(|i| format!("consumer-{i}")).collect(),
            )),
            _ => Err(format!("'{s}': the number of consumers must be 1 to 255")),
        };
    }
    let names: Vec<String> = s.split(',').map(|n| n.trim().to_string()).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(format!("'{s}': consumer names must not be empty"));
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != names.len() {
        return Err(format!("'{s}': consumer names must differ"));
    }
    Ok(ConsumerNames(names))
}

/// `email=2ms` → ("email", 2 ms).
pub fn parse_slow(s: &str) -> Result<(String, Duration), String> {
    let (name, duration) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=DURATION, e.g. email=2ms"))?;
    Ok((name.trim().to_string(), parse_duration(duration)?))
}

/// The longest duration a flag takes (timeouts, `--retry-for`, `--duration`, `--slow`): one year
/// (humantime's `1y`). Longer is a mistake, and `now + 2^64 s` overflows an `Instant` (a panic).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// The longest `--max-age`: a hundred years, far past any retention while the seconds the
/// broker is sent stay small.
pub const MAX_AGE: Duration = Duration::from_secs(100 * 31_557_600);

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_up_to(s, MAX_DURATION, "1year")
}

/// `--max-age`: a duration of up to [`MAX_AGE`].
pub fn parse_max_age(s: &str) -> Result<Duration, String> {
    parse_duration_up_to(s, MAX_AGE, "100years")
}

/// A duration of at most `max` (`max_text` as humantime writes it, for the message; clap names
/// the flag).
fn parse_duration_up_to(s: &str, max: Duration, max_text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}): use e.g. 500ms, 30s, 5m, 2h, 7days")
    })?;
    if duration > max {
        return Err(format!("'{s}' is longer than the maximum, {max_text}"));
    }
    Ok(duration)
}

/// Parses sizes such as `500mb`, `20GB`, `1024` (bytes); units are powers of 1000 as the
/// broker's own `x-max-length-bytes` examples use, `kib`/`mib`/`gib`/`tib` powers of 1024.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let text = s.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "'{s}' is not a size: use e.g. 500mb, 20gb or a number of bytes"
            ))
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("'{s}' is not a size: use e.g. 500mb, 20gb or a number of bytes"))
}

/// `--param NAME=V1,V2,...`: a bench flag's name and the values it takes in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamValues {
    pub name: String,
    pub values: Vec<String>,
}

pub fn parse_param(s: &str) -> Result<ParamValues, String> {
    let Some((name, values)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' is not NAME=V1,V2,..., e.g. sub-entry-size=1,10,100"
        ));
    };
    let name = name.trim().trim_start_matches("--").to_string();
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if name.is_empty() || values.iter().any(String::is_empty) {
        return Err(format!(
            "'{s}': the name and every value must be non-empty, e.g. compression=none,zstd"
        ));
    }
    let mut unique = values.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != values.len() {
        return Err(format!("'{s}': a value is listed twice"));
    }
    Ok(ParamValues { name, values })
}

/// `5%` or `5` → 5.0; from 0 to 100.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let number = s.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a percentage from 0 to 100, e.g. 5%")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_an_address_a_host_name_or_only_a_port() {
        let addr = |s: &str| parse_listen(s).map(|a| a.to_string());
        assert_eq!(addr("127.0.0.1:8080").as_deref(), Ok("127.0.0.1:8080"));
        assert_eq!(addr("[::1]:8080").as_deref(), Ok("[::1]:8080"));
        assert_eq!(addr(":8080").as_deref(), Ok("0.0.0.0:8080"));
        assert_eq!(addr("localhost:8080").as_deref(), Ok("127.0.0.1:8080"));
        assert!(parse_listen("localhost").unwrap_err().contains("no port"));
        assert!(parse_listen(":http").unwrap_err().contains("not a port"));
        assert!(parse_listen("no-such-host.invalid:80")
            .unwrap_err()
            .contains("cannot resolve 'no-such-host.invalid'"));
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("first"), Ok(StartOffset::First));
        assert_eq!(parse_offset("LAST"), Ok(StartOffset::Last));
        assert_eq!(parse_offset("next"), Ok(StartOffset::Next));
        assert_eq!(parse_offset("1500"), Ok(StartOffset::Offset(1500)));
        assert_eq!(
            parse_offset("2026-11-24T10:00:00.250Z"),
            Ok(StartOffset::Timestamp {
                millis: 1_795_514_400_250,
                text: "2026-11-24T10:00:00.250Z".into()
            })
        );
        assert_eq!(
            parse_offset("2026-11-24T11:00:00+01:00").map(|o| matches!(
                o,
                StartOffset::Timestamp {
                    millis: 1_795_514_400_000,
                    ..
                }
            )),
            Ok(true)
        );
        for bad in ["", "-1", "yesterday", "2026-13-01T00:00:00Z"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_byte_size("500mb"), Ok(500_000_000));
        assert_eq!(parse_byte_size("20GB"), Ok(20_000_000_000));
        assert_eq!(parse_byte_size("1kib"), Ok(1024));
        assert_eq!(parse_byte_size("42"), Ok(42));
        for bad in ["", "mb", "0", "5 parsecs", "99999999999tb"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn durations_are_bounded_where_they_are_parsed() {
        assert_eq!(parse_duration("1y"), Ok(MAX_DURATION));
        assert_eq!(
            parse_duration("365days"),
            Ok(Duration::from_secs(365 * 86_400))
        );
        for huge in ["18446744073709551615s", "1y 1s", "2years", "500000years"] {
            let err = parse_duration(huge).unwrap_err();
            assert!(
                err.contains("longer than the maximum, 1year"),
                "{huge}: {err}"
            );
        }
        let err = parse_slow("email=18446744073709551615s").unwrap_err();
        assert!(err.contains("longer than the maximum, 1year"), "{err}");
        assert_eq!(parse_max_age("100y"), Ok(MAX_AGE));
        let err = parse_max_age("18446744073709551615s").unwrap_err();
        assert!(err.contains("longer than the maximum, 100years"), "{err}");
    }

    #[test]
    fn params_name_a_flag_and_its_distinct_values() {
        let p = parse_param("sub-entry-size=1, 10,100").unwrap();
        assert_eq!(p.name, "sub-entry-size");
        assert_eq!(p.values, ["1", "10", "100"]);
        assert_eq!(parse_param("--rate=5").unwrap().name, "rate");
        assert!(parse_param("rate").is_err());
        assert!(parse_param("rate=1,,2").is_err());
        assert!(parse_param("rate=1,1").is_err());
        assert_eq!(parse_percent("5%"), Ok(5.0));
        assert!(parse_percent("150").is_err());
    }
}
