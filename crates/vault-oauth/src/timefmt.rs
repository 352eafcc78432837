//! UTC timestamps: RFC 3339 output, google-auth's `expiry` input.

/// Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The last second [`rfc3339`] and [`parse_utc`] handle: 9999-12-31T23:59:59Z
/// (RFC 3339 has four-digit years).
pub const MAX_UTC_SECONDS: u64 = 253_402_300_799;

/// `2026-11-24T07:59:59Z`. Times after [`MAX_UTC_SECONDS`] are shown as
/// that second.
pub fn rfc3339(unix: u64) -> String {
    // At most MAX_UTC_SECONDS, so the cast cannot wrap.
    let unix = unix.min(MAX_UTC_SECONDS) as i64;
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let seconds = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// google-auth's `expiry`: naive UTC `YYYY-MM-DDTHH:MM:SS[.ffffff][Z]`
/// (a `+00:00` offset is accepted too), years 1970 to 9999. Fractions are
/// dropped.
pub fn parse_utc(text: &str) -> Option<u64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))
        .unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?;
    let mut d = date.split('-');
    let (year, month, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let (hour, minute, second): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..61).contains(&second)
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    let unix = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(unix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_google_forms() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_492_799), "2026-11-24T03:59:59Z");
        for unix in [0, 951_782_400, 1_709_164_800, 1_795_492_799, 4_102_444_800] {
            assert_eq!(parse_utc(&rfc3339(unix)), Some(unix));
        }
        assert_eq!(
            parse_utc("2026-11-24T03:59:59.463025Z"),
            Some(1_795_492_799)
        );
        assert_eq!(parse_utc("2026-11-24T03:59:59"), Some(1_795_492_799));
        assert_eq!(rfc3339(MAX_UTC_SECONDS), "9999-12-31T23:59:59Z");
        assert_eq!(parse_utc("9999-12-31T23:59:59Z"), Some(MAX_UTC_SECONDS));
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
        for bad in [
            "",
            // Fuzz finding (token_file): a huge year overflowed the day
            // count (a panic with overflow checks, a wrong time without).
            "000000000000000000000000000000000000000008819048870308624611-11-24T07:59:59.463025Z",
            "10000-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24",
            "yesterday",
            "2026-11-24T25:00:00Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
