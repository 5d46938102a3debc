//! Calendar arithmetic and ISO-8601 parsing/formatting for the Debezium temporal types.
//! Proleptic Gregorian, no leap seconds, no time-zone database: Debezium sends offsets, not zones.

/// Sentinels for PostgreSQL `infinity` / `-infinity` after normalisation.
pub const INFINITY: i64 = i64::MAX;
pub const NEG_INFINITY: i64 = i64::MIN;
/// What Debezium's PostgreSQL connector sends for timestamp ±infinity (µs since epoch).
pub const PG_INFINITY_MICROS: i64 = 9_223_372_036_825_200_000;
pub const PG_NEG_INFINITY_MICROS: i64 = -9_223_372_036_832_400_000;

pub const MICROS_PER_DAY: i64 = 86_400_000_000;
pub const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// The largest |year| the text parsers take: Date32 ends near ±5.9 million years and µs
/// timestamps near ±292,000, so larger years can only be refused; refusing them here keeps
/// [`days_from_civil`] far from overflow.
const MAX_YEAR: i64 = 1_000_000_000;

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

/// `HH:MM:SS[.ffffff|.fffffffff]` from nanoseconds of day (see [`format_clock`]).
pub fn format_time_nanos(nanos: i64, out: &mut String) {
    format_clock(nanos, NANOS_PER_SECOND, out);
}

/// Units per second of nanosecond and microsecond values.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
pub const MICROS_PER_SECOND: u64 = 1_000_000;

/// A count of `1 / per_second` seconds as a clock reading, the way MySQL writes `TIME`:
/// `[-]HH:MM:SS[.ffffff|.fffffffff]`, hours unbounded (at least two digits), the fraction only
/// when it is not zero (six digits when it is whole microseconds, nine otherwise). A time of
/// day is the non-negative case. `per_second` is 10^3, 10^6 or 10^9.
pub fn format_clock(value: i64, per_second: u64, out: &mut String) {
    if value < 0 {
        out.push('-');
    }
    let magnitude = value.unsigned_abs();
    let secs = magnitude / per_second;
    // Below one second, so in nanoseconds below 10^9.
    let frac_nanos = (magnitude % per_second) * (NANOS_PER_SECOND / per_second);
    push_padded(secs / 3600, 2, out);
    out.push(':');
    push_padded((secs / 60) % 60, 2, out);
    out.push(':');
    push_padded(secs % 60, 2, out);
    if frac_nanos != 0 {
        out.push('.');
        if frac_nanos.is_multiple_of(1000) {
            push_padded(frac_nanos / 1000, 6, out);
        } else {
            push_padded(frac_nanos, 9, out);
        }
    }
}

/// Parses what [`format_clock`] writes back into a count of `1 / per_second` seconds:
/// `[-]H…H:MM:SS[.f…]` with at least two hour digits, minutes and seconds below 60 and at most
/// nine fraction digits, those finer than the unit zero (never rounded). `None` for anything
/// else, or a value beyond i64.
pub fn parse_clock(text: &str, per_second: u64) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (hms, fraction) = match body.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (body, None),
    };
    let b = hms.as_bytes();
    let n = b.len();
    if n < 8 || b[n - 3] != b':' || b[n - 6] != b':' {
        return None;
    }
    let hours = &b[..n - 6];
    if !hours.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hours = hms[..n - 6].parse::<u64>().ok()?;
    let minutes = two_digits(&b[n - 5..n - 3])?.unsigned_abs();
    let seconds = two_digits(&b[n - 2..])?.unsigned_abs();
    if minutes > 59 || seconds > 59 {
        return None;
    }
    let frac_nanos = match fraction {
        Some(f) => parse_fraction_nanos(f.as_bytes())?.unsigned_abs(),
        None => 0,
    };
    let nanos_per_unit = NANOS_PER_SECOND / per_second;
    if !frac_nanos.is_multiple_of(nanos_per_unit) {
        return None;
    }
    let magnitude = hours
        .checked_mul(3600)?
        .checked_add(minutes * 60 + seconds)?
        .checked_mul(per_second)?
        .checked_add(frac_nanos / nanos_per_unit)?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
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
    // Far beyond every date and timestamp type, and small enough for the calendar arithmetic.
    if y > MAX_YEAR {
        return None;
    }
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

    /// MySQL's TIME(6) extremes in µs.
    const MYSQL_MAX_US: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000 + 999_999;

    fn clock(v: i64, per_second: u64) -> String {
        let mut s = String::new();
        format_clock(v, per_second, &mut s);
        s
    }

    #[test]
    fn signed_spans_are_written_as_mysql_writes_time() {
        // Issue #17: each of these used to come out of unsigned arithmetic.
        for (us, text) in [
            (-1, "-00:00:00.000001"),
            (-1_000_000, "-00:00:01"),
            (-5_400_500_000, "-01:30:00.500000"),
            (-MYSQL_MAX_US, "-838:59:59.999999"),
            (MYSQL_MAX_US, "838:59:59.999999"),
            (-(MYSQL_MAX_US - 999_999), "-838:59:59"),
            (90_000_000_000, "25:00:00"),
            (0, "00:00:00"),
            (86_400_000_000, "24:00:00"),
            (i64::MIN, "-2562047788:00:54.775808"),
            (i64::MAX, "2562047788:00:54.775807"),
        ] {
            assert_eq!(clock(us, MICROS_PER_SECOND), text, "{us}");
            assert_eq!(parse_clock(text, MICROS_PER_SECOND), Some(us), "{text}");
        }
        assert_eq!(clock(-1, NANOS_PER_SECOND), "-00:00:00.000000001");
        assert_eq!(clock(-1_000, NANOS_PER_SECOND), "-00:00:00.000001");
        // The old entry point, now never wrapping either.
        let mut s = String::new();
        format_time_nanos(-1_000, &mut s);
        assert_eq!(s, "-00:00:00.000001");
    }

    #[test]
    fn clock_text_parses_only_what_format_clock_writes() {
        for bad in [
            "",
            "-",
            "1:00:00",
            "00:60:00",
            "00:00:60",
            "00:00:00.",
            "00:00:00.1234567890",
            "00:00:00.0000001",
            "+00:00:01",
            "--00:00:01",
            "00:00",
            "0a:00:00",
            "é0:00:00",
            "00:00:00Z",
            "99999999999999999999:00:00",
            "2562047788:00:54.775808",
        ] {
            assert_eq!(parse_clock(bad, MICROS_PER_SECOND), None, "{bad:?}");
        }
        assert_eq!(
            parse_clock("-2562047788:00:54.775808", MICROS_PER_SECOND),
            Some(i64::MIN)
        );
        assert_eq!(parse_clock("-00:00:00", MICROS_PER_SECOND), Some(0));
        assert_eq!(parse_clock("00:00:00.5", MICROS_PER_SECOND), Some(500_000));
        assert_eq!(parse_clock("00:00:00.000000001", NANOS_PER_SECOND), Some(1));
    }

    #[test]
    fn far_years_are_refused_not_wrapped() {
        assert_eq!(parse_date("99999999999999999-01-01"), None);
        assert_eq!(parse_date("-99999999999999999-01-01"), None);
        assert!(parse_date("1000000000-01-01").is_some());
        assert_eq!(
            parse_offset_datetime("9223372036854775807-01-01T00:00:00Z"),
            None
        );
    }

    proptest::proptest! {
        /// Every MySQL TIME(6) value survives rendering and parsing back.
        #[test]
        fn mysql_time_range_round_trips(us in -MYSQL_MAX_US..=MYSQL_MAX_US) {
            let text = clock(us, MICROS_PER_SECOND);
            proptest::prop_assert_eq!(parse_clock(&text, MICROS_PER_SECOND), Some(us), "{}", text);
        }

        #[test]
        fn every_i64_round_trips_in_both_units(v: i64) {
            for per_second in [MICROS_PER_SECOND, NANOS_PER_SECOND] {
                let text = clock(v, per_second);
                proptest::prop_assert_eq!(parse_clock(&text, per_second), Some(v), "{}", text);
            }
        }
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
