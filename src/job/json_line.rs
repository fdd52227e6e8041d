//! A fast path for JSON Lines: the values of a few keys of a flat object, read in place.
//!
//! serde_json reads a line of views into a borrowed struct at ~3,800 instructions: a call and a
//! UTF-8 check per key and value, a state machine per byte. Lines as data tools write them are
//! flat objects of plain strings, numbers and nulls: [`flat_fields`] walks such a line once,
//! finding the end of each string eight bytes at a time. It answers `None` for anything it
//! does not decide itself (nested values, escapes, a wanted key twice, malformed JSON), and the
//! caller then parses that line with serde; whatever it accepts, serde reads the same way.

use super::counts::bytes_eq;
use super::text;

/// The value under a wanted key: `None` when the key is absent, `Some(None)` for null,
/// `Some(Some(text))` for a string (as a borrowed serde field `Option<Option<&str>>` reads it).
pub type Field<'a> = Option<Option<&'a str>>;

/// The fields of `keys` in `line` (one JSON object, surrounding whitespace allowed), when the
/// line is an object whose values are strings without escapes, numbers, booleans or nulls,
/// and each wanted key, at most once, holds a string or null. `None` otherwise.
pub fn flat_fields<'a, const N: usize>(line: &'a [u8], keys: &[&str; N]) -> Option<[Field<'a>; N]> {
    // An ASCII line needs no UTF-8 check of its strings (the common case, checked at once).
    let ascii = text::is_ascii(line);
    let mut fields = [None; N];
    let mut at = skip_space(line, 0);
    if line.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(line, at + 1);
    if line.get(at) == Some(&b'}') {
        return (skip_space(line, at + 1) == line.len()).then_some(fields);
    }
    loop {
        if line.get(at) != Some(&b'"') {
            return None;
        }
        let (key, end) = plain_string(line, at + 1)?;
        at = skip_space(line, end);
        if line.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(line, at + 1);
        match wanted(keys, key) {
            Some(i) => {
                if fields[i].is_some() {
                    return None;
                }
                match line.get(at)? {
                    b'"' => {
                        let (value, end) = plain_string(line, at + 1)?;
                        fields[i] = Some(Some(as_text(value, ascii)?));
                        at = end;
                    }
                    b'n' => {
                        at = literal(line, at, b"null")?;
                        fields[i] = Some(None);
                    }
                    _ => return None,
                }
            }
            None => {
                // serde reads every key as text: one that is not UTF-8 is an error there.
                if !ascii {
                    std::str::from_utf8(key).ok()?;
                }
                at = skip_scalar(line, at)?;
            }
        }
        at = skip_space(line, at);
        match line.get(at)? {
            b',' => at = skip_space(line, at + 1),
            b'}' => return (skip_space(line, at + 1) == line.len()).then_some(fields),
            _ => return None,
        }
    }
}

/// Which of `keys` is `key`.
#[inline(always)]
fn wanted<const N: usize>(keys: &[&str; N], key: &[u8]) -> Option<usize> {
    for (i, wanted) in keys.iter().enumerate() {
        if bytes_eq(wanted.as_bytes(), key) {
            return Some(i);
        }
    }
    None
}

/// The bytes of a string starting at `from` (after its opening quote) and the position after
/// its closing quote, when it ends before any escape or control character.
#[inline(always)]
fn plain_string(line: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let end = string_stop(line, from)?;
    (line[end] == b'"').then(|| (&line[from..end], end + 1))
}

/// The first position at or after `from` holding a quote, a backslash or a control character
/// (below 0x20), eight bytes at a time.
#[inline]
fn string_stop(line: &[u8], from: usize) -> Option<usize> {
    text::find_first(
        line,
        from,
        |word| {
            text::bytes_equal(word, b'"')
                | text::bytes_equal(word, b'\\')
                | text::bytes_below(word, 0x20)
        },
        |b| b == b'"' || b == b'\\' || b < 0x20,
    )
}

/// A string of a line known to be ASCII (`ascii`), else checked.
#[inline]
fn as_text(bytes: &[u8], ascii: bool) -> Option<&str> {
    if ascii {
        // SAFETY: ASCII bytes are UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

#[inline]
fn skip_space(line: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = line.get(at) {
        at += 1;
    }
    at
}

#[inline]
fn literal(line: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    line[at..].starts_with(word).then_some(at + word.len())
}

/// The position after a string without escapes, a number, `true`, `false` or `null` at `at`.
fn skip_scalar(line: &[u8], at: usize) -> Option<usize> {
    match line.get(at)? {
        b'"' => plain_string(line, at + 1).map(|(_, end)| end),
        b't' => literal(line, at, b"true"),
        b'f' => literal(line, at, b"false"),
        b'n' => literal(line, at, b"null"),
        b'-' | b'0'..=b'9' => skip_number(line, at),
        _ => None,
    }
}

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn skip_number(line: &[u8], mut at: usize) -> Option<usize> {
    let digits = |mut at: usize| {
        while line.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    if line.get(at) == Some(&b'-') {
        at += 1;
    }
    match line.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at = digits(at + 1),
        _ => return None,
    }
    if line.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if let Some(b'e' | b'E') = line.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = line.get(at) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The scan's keys, and its serde fallback: what the fast path must read the same way.
    use crate::job::source::{ViewLine, VIEW_KEYS as KEYS};

    #[test]
    fn flat_lines_read_as_serde_reads_them() {
        let lines: &[&str] = &[
            r#"{"advertiser_id":"a1","product_id":"p1","event_time":"2026-11-20T11:06:20Z"}"#,
            r#" { "advertiser_id" : "a1" ,	"product_id":null } "#,
            r#"{"product_id":"p","n":-12.5e+3,"b":true,"c":false,"z":null,"s":"x y"}"#,
            r#"{"advertiser_id":"ä","product_id":"日本","other":"é"}"#,
            r#"{"advertiser_id":"","product_id":"a long product id past eight bytes"}"#,
            r#"{}"#,
            r#"{"n":0,"m":0.5,"k":1E9,"product_id":"p"}"#,
        ];
        for line in lines {
            let fast = flat_fields(line.as_bytes(), &KEYS);
            assert!(fast.is_some(), "{line}");
            assert_eq!(fast, ViewLine::fields(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let lines: &[&[u8]] = &[
            br#"{"product_id":"p\"q"}"#,
            br#"{"product_id":12}"#,
            br#"{"x":[1,{"y":null}],"product_id":"p1"}"#,
            br#"{"x":"a\nb"}"#,
            br#"{"product_id":"p","product_id":"q"}"#,
            br#"{"advertiser\u005fid":"a"}"#,
            b"{\"x\":\"a\x01b\"}",
            br#"{"product_id":"p",}"#,
            br#"{"product_id":"p"} x"#,
            br#"{"n":01}"#,
            br#"{"n":-}"#,
            br#"{"n":1.}"#,
            br#"{"n":1e}"#,
            br#"{"n":nul}"#,
            br#"{"product_id":"p""#,
            br#"{"product_id":"p"#,
            br#"["a","p",null]"#,
            b"{\"product_id\":\"\xff\"}",
            b"{\"\xff\":1}",
            br#""#,
        ];
        for line in lines {
            assert_eq!(
                flat_fields(line, &KEYS),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn string_stop_finds_the_first_special_byte_at_every_position() {
        for len in 0..24 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    // A later special byte never hides the first one.
                    if at + 1 < len {
                        bytes[at + 1] = 0x01;
                    }
                    assert_eq!(string_stop(&bytes, 0), Some(at), "{len} {at} {special}");
                }
            }
            let plain: Vec<u8> = (0..len).map(|i| 0x20 + (i as u8 * 7) % 0x5f).collect();
            let plain: Vec<u8> = plain
                .into_iter()
                .map(|b| if b == b'"' || b == b'\\' { b'x' } else { b })
                .collect();
            assert_eq!(string_stop(&plain, 0), None);
        }
    }
}
