//! Checksums that turn a pattern match into a real finding: a 16-digit number is a
//! card only if its Luhn sum holds; an IBAN only if its mod-97 check does.

/// Which checksum a rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    Luhn,
    Iban,
    /// 7 to 15 digits (E.164's bounds), not all the same digit.
    PhoneDigits,
}

impl Validator {
    pub fn check(self, candidate: &str) -> bool {
        match self {
            Validator::Luhn => luhn(candidate),
            Validator::Iban => iban(candidate),
            Validator::PhoneDigits => phone_digits(candidate),
        }
    }
}

/// A phone number's digit count: 7 to 15, and not one digit repeated.
pub fn phone_digits(s: &str) -> bool {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    let groups: Vec<usize> = s.split('-').map(str::len).collect();
    // 2024-11-23 has eight digits too.
    let iso_date = groups == [4, 2, 2] && s.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    (7..=15).contains(&digits.len()) && digits.iter().any(|d| *d != digits[0]) && !iso_date
}

/// Luhn over the digits of `s` (spaces and dashes allowed), 12 to 19 digits.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if !(12..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 IBAN check (country code, check digits, mod 97 == 1), spaces allowed.
pub fn iban(s: &str) -> bool {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if !(15..=34).contains(&compact.len()) || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    if !head[..2].chars().all(|c| c.is_ascii_alphabetic())
        || !head[2..].chars().all(|c| c.is_ascii_digit())
    {
        return false;
    }
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let value = c.to_digit(36).unwrap_or(0);
        for digit in value.to_string().chars() {
            remainder = (remainder * 10 + digit.to_digit(10).unwrap_or(0)) % 97;
        }
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_digits_bound_the_count_and_refuse_dates() {
        assert!(phone_digits("0961-7596216"));
        assert!(phone_digits("(579)888-3058"));
        assert!(!phone_digits("555 12"));
        assert!(!phone_digits("0000000"));
        assert!(!phone_digits("2024-11-23"));
        assert!(!phone_digits("1234567890123456"));
    }

    #[test]
    fn luhn_accepts_test_cards_and_rejects_typos() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1234"));
        assert!(!luhn("4111a111 1111 1111"));
    }

    #[test]
    fn iban_checks_mod_97() {
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("XX00"));
    }
}
