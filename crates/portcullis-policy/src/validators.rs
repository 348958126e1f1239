//! Checksums that turn a pattern match into a real finding: a 16-digit number is a
//! card only if its Luhn sum holds; an IBAN only if its mod-97 check does.

/// Which checksum a rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validator {
    Luhn,
    Iban,
}

impl Validator {
    pub fn check(self, candidate: &str) -> bool {
        match self {
            Validator::Luhn => luhn(candidate),
            Validator::Iban => iban(candidate),
        }
    }
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
