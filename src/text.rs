//! Small text formatting shared by stages and the report (numbers for people to read).

/// `60000` → `"60,000"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `one` when `n` is 1, else `many`: "1 file", "3 files".
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// `n` with separators and its noun: "1 file", "1,017 files".
pub fn count(n: usize, one: &'static str, many: &'static str) -> String {
    format!("{} {}", thousands(n as u64), plural(n as u64, one, many))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(60000), "60,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
