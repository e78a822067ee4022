//! Bounded texts: what an error message may quote of input from the wire.

use std::fmt;

/// Shows at most about `max` bytes of a value's text: its head and its tail
/// with the middle replaced by `[… N bytes …]`, cut on character
/// boundaries.
///
/// Error texts that come from the wire (a serde error quoting an argument, a
/// task name, a task's own error) go through it before they reach a log or a
/// queue's result column, so no payload can make them large.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clipped<'a, T: ?Sized> {
    value: &'a T,
    max: usize,
}

impl<'a, T: fmt::Display + ?Sized> Clipped<'a, T> {
    /// `value`'s text, at most about `max` bytes of it.
    pub(crate) fn new(value: &'a T, max: usize) -> Self {
        Clipped { value, max }
    }
}

impl<T: fmt::Display + ?Sized> fmt::Display for Clipped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.value.to_string();
        if text.len() <= self.max {
            return f.write_str(&text);
        }
        // Two thirds for the head (what it is), a third for the tail (what
        // was expected, and where): serde puts the quoted value in between.
        let head = floor_char_boundary(&text, self.max * 2 / 3);
        let tail = ceil_char_boundary(&text, text.len() - self.max / 3);
        write!(
            f,
            "{}[… {} bytes …]{}",
            &text[..head],
            tail - head,
            &text[tail..]
        )
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::Clipped;

    #[test]
    fn clipped_keeps_a_short_text_whole_and_a_long_one_bounded_at_both_ends() {
        assert_eq!(Clipped::new("short", 80).to_string(), "short");
        let text = format!(
            "invalid type: string \"{}\", expected u64",
            "x".repeat(10_000)
        );
        let shown = Clipped::new(&text, 80).to_string();
        assert!(shown.len() < 120, "{shown}");
        assert!(shown.starts_with("invalid type: string \"xxx"), "{shown}");
        assert!(shown.ends_with("expected u64"), "{shown}");
        assert!(shown.contains("bytes …]"), "{shown}");
        // Multi-byte characters are cut on their boundaries, never inside.
        let wide = "é".repeat(1_000);
        let shown = Clipped::new(&wide, 81).to_string();
        assert!(shown.len() < 130, "{shown}");
    }
}
