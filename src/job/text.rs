//! Byte-level helpers of the text scanners (CSV, JSON Lines).

/// Whether every byte is ASCII, eight bytes at a time. The standard library's check runs a
/// byte at a time past its last 64-byte block, which is most of a short id or line.
#[inline]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let mut seen = 0u64;
    for word in &mut words {
        seen |= u64::from_le_bytes(word.try_into().expect("8 bytes"));
    }
    for &byte in words.remainder() {
        seen |= u64::from(byte);
    }
    seen & 0x8080_8080_8080_8080 == 0
}

/// `bytes` as text, if UTF-8. ASCII (ids almost always are) is decided inline: the general
/// validator costs a call and ~100 instructions per short id.
#[inline]
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        // SAFETY: ASCII bytes are UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_utf8_agree_with_the_standard_library() {
        let base = "0123456789abcdefghijklmnopqrstuvwxyz-é日本".as_bytes();
        for from in 0..base.len() {
            for to in from..=base.len() {
                let bytes = &base[from..to];
                assert_eq!(is_ascii(bytes), bytes.is_ascii());
                assert_eq!(utf8(bytes), std::str::from_utf8(bytes).ok());
            }
        }
    }
}
