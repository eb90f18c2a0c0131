//! Cutting text to a size, for records that must stay small whatever they carry: a dead letter
//! holding a 1 MiB event must still fit in one Kafka record.

/// The most bytes of an event or job body a dead letter carries.
pub const DEAD_LETTER_BODY_BYTES: usize = 256 * 1024;

/// Marks text that was cut.
pub const MARK: &str = "…[truncated]";

/// `text` if it has at most `max` bytes, otherwise its longest prefix of at most `max` bytes
/// that ends on a character boundary, followed by [`MARK`].
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_short_text_and_cuts_long_text_on_a_char_boundary() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), format!("abc{MARK}"));
        // 'é' takes two bytes: cutting at 2 would split it.
        assert_eq!(truncate("aé", 2), format!("a{MARK}"));
    }
}
