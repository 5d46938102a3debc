//! Calendar arithmetic and ISO-8601 parsing/formatting for the Debezium temporal types.
//! Proleptic Gregorian, no leap seconds, no time-zone database: Debezium sends offsets, not zones.

/// Sentinels for PostgreSQL `infinity` / `-infinity` after normalisation.
pub const INFINITY: i64 = i64::MAX;
pub const NEG_INFINITY: i64 = i64::MIN;
/// What Debezium's PostgreSQL connector sends for timestamp ±infinity (µs since epoch).
pub const PG_INFINITY_MICROS: i64 = 9_223_372_036_825_200_000;
pub const PG_NEG_INFINITY_MICROS: i64 = -9_223_372_036_832_400_000;

pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_year(y: i64, out: &mut String) {
    if (0..=9999).contains(&y) {
        push_padded(y as u64, 4, out);
    } else {
        // ISO-8601 expanded years: sign plus at least four digits.
        out.push(if y < 0 { '-' } else { '+' });
        push_padded(y.unsigned_abs(), 4, out);
    }
}

fn push_padded(v: u64, width: usize, out: &mut String) {
    let mut buf = itoa::Buffer::new();
    let s = buf.format(v);
    for _ in s.len()..width {
        out.push('0');
    }
    out.push_str(s);
}

pub fn format_date(days: i64, out: &mut String) {
    let (y, m, d) = civil_from_days(days);
    push_year(y, out);
    out.push('-');
    push_padded(m as u64, 2, out);
    out.push('-');
    push_padded(d as u64, 2, out);
}

/// `HH:MM:SS[.ffffff|.fffffffff]` from nanoseconds of day.
pub fn format_time_nanos(nanos: i64, out: &mut String) {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    push_padded((secs / 3600) as u64, 2, out);
    out.push(':');
    push_padded(((secs / 60) % 60) as u64, 2, out);
    out.push(':');
    push_padded((secs % 60) as u64, 2, out);
    if frac != 0 {
        out.push('.');
        if frac % 1000 == 0 {
            push_padded((frac / 1000) as u64, 6, out);
        } else {
            push_padded(frac as u64, 9, out);
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` from nanoseconds since the epoch (i128 to cover the full range).
pub fn format_timestamp_nanos(nanos: i128, out: &mut String) {
    let day_nanos = 86_400_000_000_000i128;
    let days = nanos.div_euclid(day_nanos) as i64;
    let rem = nanos.rem_euclid(day_nanos) as i64;
    format_date(days, out);
    out.push('T');
    format_time_nanos(rem, out);
}

/// Parses `YYYY-MM-DD` (optionally with a leading sign / more year digits) into days.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (sign, body) = match b.first()? {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let mut parts = body.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(sign * y, m, d))
}

/// Parses `HH:MM[:SS[.f…]]` into nanoseconds of day. Accepts 24:00:00 (PostgreSQL allows it).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h = two_digits(&b[0..2])?;
    let mi = two_digits(&b[3..5])?;
    let (sec, frac) = if b.len() > 5 {
        if b[5] != b':' || b.len() < 8 {
            return None;
        }
        let sec = two_digits(&b[6..8])?;
        let frac = if b.len() > 8 {
            if b[8] != b'.' && b[8] != b',' {
                return None;
            }
            parse_fraction_nanos(&b[9..])?
        } else {
            0
        };
        (sec, frac)
    } else {
        (0, 0)
    };
    if h > 24 || mi > 59 || sec > 60 {
        return None;
    }
    Some(((h * 60 + mi) * 60 + sec) * 1_000_000_000 + frac)
}

fn two_digits(b: &[u8]) -> Option<i64> {
    if b.len() == 2 && b[0].is_ascii_digit() && b[1].is_ascii_digit() {
        Some(((b[0] - b'0') * 10 + (b[1] - b'0')) as i64)
    } else {
        None
    }
}

fn parse_fraction_nanos(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in b {
        v = v * 10 + (d - b'0') as i64;
    }
    for _ in b.len()..9 {
        v *= 10;
    }
    Some(v)
}

/// Splits a trailing zone designator (`Z`, `+hh:mm`, `+hhmm`, `+hh`) off a time text, returning
/// the offset in seconds.
fn split_offset(s: &str) -> Option<(&str, i64)> {
    if let Some(rest) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((rest, 0));
    }
    let idx = s.rfind(['+', '-'])?;
    let (body, off) = s.split_at(idx);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits: String = off[1..].chars().filter(|c| *c != ':').collect();
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..].parse::<i64>().ok()?,
        ),
        6 => (
            digits[..2].parse::<i64>().ok()?,
            digits[2..4].parse::<i64>().ok()?,
        ),
        _ => return None,
    };
    Some((body, sign * (h * 3600 + m * 60)))
}

/// Parses an ISO offset date-time (`2020-07-17T18:00:22.123Z`, `…+02:00`) into UTC nanoseconds.
pub fn parse_offset_datetime(s: &str) -> Option<i128> {
    let (body, offset_secs) = split_offset(s)?;
    let t = body.find(['T', 't', ' '])?;
    let days = parse_date(&body[..t])?;
    let tod = parse_time(&body[t + 1..])?;
    Some(days as i128 * 86_400_000_000_000 + tod as i128 - offset_secs as i128 * 1_000_000_000)
}

/// Parses a date-time without zone into nanoseconds since the epoch of that wall clock.
pub fn parse_local_datetime(s: &str) -> Option<i128> {
    let t = s.find(['T', 't', ' '])?;
    let days = parse_date(&s[..t])?;
    let tod = parse_time(&s[t + 1..])?;
    Some(days as i128 * 86_400_000_000_000 + tod as i128)
}

/// Parses an ISO offset time (`08:15:30.123Z`, `10:15:30+01:00`) into UTC nanoseconds of day.
pub fn parse_offset_time(s: &str) -> Option<i64> {
    let (body, offset_secs) = split_offset(s)?;
    let tod = parse_time(body)?;
    Some((tod - offset_secs * 1_000_000_000).rem_euclid(86_400_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-719_468 - 1000, -1, 0, 18_460, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2020, 7, 17), 18_460);
        let mut s = String::new();
        format_date(18_460, &mut s);
        assert_eq!(s, "2020-07-17");
    }

    #[test]
    fn offsets_normalise_to_utc() {
        let a = parse_offset_datetime("2018-06-20T06:37:03-07:00").expect("parses");
        let b = parse_offset_datetime("2018-06-20T13:37:03Z").expect("parses");
        assert_eq!(a, b);
        let mut s = String::new();
        format_timestamp_nanos(
            parse_offset_datetime("2020-07-17T18:00:22.5+00:00").expect("parses"),
            &mut s,
        );
        assert_eq!(s, "2020-07-17T18:00:22.500000");
        assert_eq!(parse_offset_time("10:15:30+01:00"), parse_time("09:15:30"));
        assert_eq!(parse_offset_time("00:30:00+01:00"), parse_time("23:30:00"));
    }

    #[test]
    fn time_formatting_uses_micro_or_nano_width() {
        let mut s = String::new();
        format_time_nanos(64_822_000_000_000, &mut s);
        assert_eq!(s, "18:00:22");
        s.clear();
        format_time_nanos(1_500, &mut s);
        assert_eq!(s, "00:00:00.000001500");
        assert!(parse_time("25:00:00").is_none());
        assert!(parse_time("1:00").is_none());
    }
}
