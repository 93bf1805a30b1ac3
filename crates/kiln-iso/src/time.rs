//! ECMA-119 dates (the 7-byte directory record form and the 17-byte volume descriptor form), in
//! UTC, from seconds since 1970.

/// (year, month 1–12, day 1–31, hour, minute, second) of `unix` seconds (UTC).
fn civil(unix: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
    )
}

/// The 7-byte form (years since 1900, …, GMT offset 0). Years past 2155 are clamped.
pub(crate) fn record_date(unix: u64) -> [u8; 7] {
    let (y, mo, d, h, mi, s) = civil(unix);
    [
        (y - 1900).clamp(0, 255) as u8,
        mo as u8,
        d as u8,
        h as u8,
        mi as u8,
        s as u8,
        0,
    ]
}

/// The 17-byte form: "YYYYMMDDHHMMSScc" in digits and a GMT offset of 0.
pub(crate) fn volume_date(unix: u64) -> [u8; 17] {
    let (y, mo, d, h, mi, s) = civil(unix);
    let text = format!("{:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00", y.clamp(0, 9999));
    let mut out = [0u8; 17];
    out[..16].copy_from_slice(text.as_bytes());
    out
}

/// "Not specified": sixteen '0' digits and offset 0.
pub(crate) const NO_DATE: [u8; 17] = *b"0000000000000000\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(&volume_date(0)[..16], b"1970010100000000");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(&volume_date(1_709_210_096)[..16], b"2024022912345600");
        assert_eq!(record_date(1_709_210_096), [124, 2, 29, 12, 34, 56, 0]);
    }
}
