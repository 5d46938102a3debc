//! Exact decimals: never through f64. Unscaled integers are i128 up to 38 digits, i256 beyond.

use arrow_buffer::i256;

/// An exact decimal as an unscaled integer plus scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub unscaled: i256,
    pub scale: i32,
}

/// Interprets big-endian two's-complement bytes (Java `BigInteger.toByteArray`).
pub fn from_twos_complement(bytes: &[u8]) -> Option<i256> {
    if bytes.len() > 32 {
        // Longer encodings are only valid when the extra leading bytes are pure sign extension.
        let (head, tail) = bytes.split_at(bytes.len() - 32);
        let fill = if tail[0] & 0x80 != 0 { 0xff } else { 0 };
        if head.iter().any(|&b| b != fill) {
            return None;
        }
        return from_twos_complement(tail);
    }
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = if negative { [0xffu8; 32] } else { [0u8; 32] };
    buf[32 - bytes.len()..].copy_from_slice(bytes);
    Some(i256::from_be_bytes(buf))
}

/// Parses plain or exponent decimal text exactly: `-12.340`, `1e3`, `123456789876543212345678987654321.110`.
pub fn parse_text(text: &str) -> Option<Decimal> {
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mantissa, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => {
            let exp: i32 = std::str::from_utf8(&rest[i + 1..]).ok()?.parse().ok()?;
            (&rest[..i], exp)
        }
        None => (rest, 0),
    };
    // i128 covers 38 digits, which is nearly every value; i256 takes over on overflow.
    let mut small: i128 = 0;
    let mut big: Option<i256> = None;
    let mut digits = 0usize;
    let mut scale: i32 = 0;
    let mut seen_point = false;
    let ten = i256::from_i128(10);
    for &b in mantissa {
        match b {
            b'0'..=b'9' => {
                let d = (b - b'0') as i128;
                match big {
                    None => match small.checked_mul(10).and_then(|v| v.checked_add(d)) {
                        Some(v) => small = v,
                        None => {
                            big = Some(
                                i256::from_i128(small)
                                    .checked_mul(ten)?
                                    .checked_add(i256::from_i128(d))?,
                            )
                        }
                    },
                    Some(v) => big = Some(v.checked_mul(ten)?.checked_add(i256::from_i128(d))?),
                }
                digits += 1;
                if seen_point {
                    scale += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    let mut unscaled = big.unwrap_or_else(|| i256::from_i128(small));
    if digits == 0 {
        return None;
    }
    if negative {
        unscaled = unscaled.checked_neg()?;
    }
    Some(Decimal {
        unscaled,
        scale: scale.checked_sub(exponent)?,
    })
}

impl Decimal {
    /// Changes the scale without losing digits; `None` if digits would be dropped or it overflows.
    pub fn rescale(self, target: i32) -> Option<i256> {
        let ten = i256::from_i128(10);
        if target >= self.scale {
            let mut v = self.unscaled;
            for _ in 0..(target - self.scale) {
                v = v.checked_mul(ten)?;
            }
            Some(v)
        } else {
            let mut v = self.unscaled;
            for _ in 0..(self.scale - target) {
                let (q, r) = (v.checked_div(ten)?, v.checked_rem(ten)?);
                if r != i256::ZERO {
                    return None;
                }
                v = q;
            }
            Some(v)
        }
    }
}

/// Renders an unscaled integer at `scale` as plain decimal text (`-0.05`, `1200` for scale -2).
pub fn format(unscaled: i256, scale: i32, out: &mut String) {
    let digits = unscaled.to_string();
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits.as_str()),
    };
    if negative {
        out.push('-');
    }
    if scale <= 0 {
        out.push_str(digits);
        if digits != "0" {
            for _ in 0..(-scale) {
                out.push('0');
            }
        }
        return;
    }
    let scale = scale as usize;
    if digits.len() > scale {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str("0.");
        for _ in 0..(scale - digits.len()) {
            out.push('0');
        }
        out.push_str(digits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(d: i256, scale: i32) -> String {
        let mut s = String::new();
        format(d, scale, &mut s);
        s
    }

    #[test]
    fn twos_complement_matches_java_biginteger() {
        // "EtaH" = 0x12d687 = 1234567; "AP//////////" = 2^64-1; 0xff = -1.
        assert_eq!(
            from_twos_complement(&[0x12, 0xd6, 0x87]),
            Some(i256::from_i128(1234567))
        );
        assert_eq!(
            from_twos_complement(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Some(i256::from_i128(u64::MAX as i128))
        );
        assert_eq!(from_twos_complement(&[0xff]), Some(i256::from_i128(-1)));
        assert_eq!(from_twos_complement(&[]), Some(i256::ZERO));
    }

    #[test]
    fn text_parse_is_exact_beyond_f64() {
        let d = parse_text("123456789876543212345678987654321.110").expect("parses");
        assert_eq!(d.scale, 3);
        assert_eq!(
            render(d.unscaled, d.scale),
            "123456789876543212345678987654321.110"
        );
        let e = parse_text("1.5e3").expect("parses");
        assert_eq!(e.rescale(0), Some(i256::from_i128(1500)));
        assert_eq!(
            parse_text("12.345").expect("parses").rescale(2),
            None,
            "no silent rounding"
        );
        assert_eq!(
            parse_text("-0.5").expect("parses").rescale(2),
            Some(i256::from_i128(-50))
        );
        assert!(parse_text("1.2.3").is_none());
        assert!(parse_text("").is_none());
        assert!(parse_text("-").is_none());
    }

    #[test]
    fn formatting_keeps_scale() {
        assert_eq!(render(i256::from_i128(1230), 2), "12.30");
        assert_eq!(render(i256::from_i128(-5), 2), "-0.05");
        assert_eq!(render(i256::from_i128(12), -2), "1200");
        assert_eq!(render(i256::ZERO, 3), "0.000");
    }
}
