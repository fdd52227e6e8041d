//! What the text scanners (CSV, JSON Lines) share: reading a file in blocks of whole lines,
//! and byte-level checks.

use std::fs::File;
use std::io::{Cursor, Read};

use bytes::Bytes;

use super::location::Location;
use super::model::JobError;

/// Bytes a local text file is read in at a time (more when a line is longer).
const BLOCK_BYTES: usize = 8 << 20;

/// A text file as blocks of whole lines (the file's last line may lack its `\n`). A local file
/// is read a block at a time into one reused buffer: no file-sized allocation to fault in and
/// zero, and each block is still in the CPU caches when scanned. An S3 object arrives whole
/// and is one block.
pub struct TextBlocks {
    location: Location,
    source: Source,
    /// Local: the bytes read; `buffer[..handed]` is the last block handed out and
    /// `buffer[handed..]` the start of the next (a partial line).
    buffer: Vec<u8>,
    handed: usize,
}

enum Source {
    File {
        file: File,
        at_end: bool,
    },
    /// The whole bytes: `next` until handed out, then `current`.
    Whole {
        next: Option<Bytes>,
        current: Bytes,
    },
}

impl TextBlocks {
    pub fn open(location: &Location) -> Result<TextBlocks, JobError> {
        let source = match location {
            Location::Local(path) => Source::File {
                file: File::open(path)
                    .map_err(|e| JobError::input(location, format!("cannot read: {e}")))?,
                at_end: false,
            },
            Location::S3 { .. } => Source::Whole {
                next: Some(location.read()?),
                current: Bytes::new(),
            },
        };
        Ok(TextBlocks {
            location: location.clone(),
            source,
            buffer: Vec::new(),
            handed: 0,
        })
    }

    /// The next block, `None` after the last.
    pub fn next_block(&mut self) -> Result<Option<&[u8]>, JobError> {
        let (file, at_end) = match &mut self.source {
            Source::Whole { next, current } => {
                return Ok(next.take().map(|data| {
                    *current = data;
                    &current[..]
                }))
            }
            Source::File { file, at_end } => (file, at_end),
        };
        // Keep the partial line after the last block, at the front.
        self.buffer.drain(..self.handed);
        loop {
            if *at_end {
                self.handed = self.buffer.len();
                return Ok((!self.buffer.is_empty()).then_some(&self.buffer[..]));
            }
            let start = self.buffer.len();
            // A block, or (a line longer than a block) as much again.
            let want = BLOCK_BYTES.max(start * 2) - start;
            self.buffer.reserve(want);
            // Reads into the spare capacity as it is: no zeroing of the buffer first.
            let read = (&mut *file)
                .take(want as u64)
                .read_to_end(&mut self.buffer)
                .map_err(|e| JobError::input(&self.location, format!("cannot read: {e}")))?;
            *at_end = read < want;
            if let Some(last) = memchr::memrchr(b'\n', &self.buffer[start..]) {
                self.handed = start + last + 1;
                return Ok(Some(&self.buffer[..self.handed]));
            }
        }
    }

    /// The file from offset `from` of the last block on, as a reader.
    pub fn rest_from(self, from: usize) -> Box<dyn Read> {
        match self.source {
            Source::File { file, .. } => {
                let mut start = Cursor::new(self.buffer);
                start.set_position(from as u64);
                Box::new(start.chain(file))
            }
            Source::Whole { next, current } => {
                let mut rest = Cursor::new(next.unwrap_or(current));
                rest.set_position(from as u64);
                Box::new(rest)
            }
        }
    }
}

/// The lines of a block, split at `\n` (a `\r` before it is the caller's to trim); no empty
/// line after a final `\n`, so lines count on across blocks.
pub fn lines(block: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', block);
    std::iter::from_fn(move || {
        if start >= block.len() {
            return None;
        }
        let end = ends.next().unwrap_or(block.len());
        let line = &block[start..end];
        start = end + 1;
        Some(line)
    })
}

/// The first position at or after `from` holding one of `needles`, eight bytes at a time: on
/// short lines and fields, cheaper than a `memchr` call per needle.
#[inline]
pub fn find_any<const N: usize>(haystack: &[u8], from: usize, needles: [u8; N]) -> Option<usize> {
    find_first(
        haystack,
        from,
        |word| {
            needles
                .iter()
                .fold(0, |hits, &needle| hits | bytes_equal(word, needle))
        },
        |byte| needles.contains(&byte),
    )
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// The first position at or after `from` of a byte `hit` holds for, eight bytes at a time:
/// `hits` flags them in a little-endian word, in each byte's high bit (other bits are
/// ignored), as [`bytes_equal`] and [`bytes_below`] do. A flag may also be set in a byte above
/// a true hit, never below one, so the lowest flag is the first hit.
#[inline(always)]
pub fn find_first(
    haystack: &[u8],
    mut from: usize,
    hits: impl Fn(u64) -> u64,
    hit: impl Fn(u8) -> bool,
) -> Option<usize> {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    while from + 8 <= haystack.len() {
        let word = u64::from_le_bytes(haystack[from..from + 8].try_into().expect("8 bytes"));
        let flags = hits(word) & HIGHS;
        if flags != 0 {
            return Some(from + (flags.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    haystack[from..]
        .iter()
        .position(|&b| hit(b))
        .map(|p| from + p)
}

/// For [`find_first`]: the bytes of `word` equal to `byte` (per byte, `(x - 1) & !x` has its
/// high bit set where x is zero).
#[inline(always)]
pub fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x
}

/// For [`find_first`]: the bytes of `word` below `bound` (at most 0x80).
#[inline(always)]
pub fn bytes_below(word: u64, bound: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(bound)) & !word
}

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
    fn find_any_finds_the_first_needle_at_every_position() {
        let needles = [b',', b'\n', b'\r', b'"'];
        for len in 0..24 {
            for at in 0..len {
                for needle in needles {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = needle;
                    // A later needle, and bytes one off a needle, never hide the first one.
                    if at + 1 < len {
                        bytes[at + 1] = b',';
                    }
                    if at > 0 {
                        bytes[at - 1] = needle + 1;
                    }
                    assert_eq!(
                        find_any(&bytes, 0, needles),
                        Some(at),
                        "{len} {at} {needle}"
                    );
                    let next = (at + 1 < len && needle == b',').then_some(at + 1);
                    assert_eq!(find_any(&bytes, at + 1, [needle]), next);
                }
            }
            assert_eq!(find_any(&vec![b'a'; len], 0, needles), None);
        }
    }

    #[test]
    fn lines_split_at_newlines_without_a_last_empty_line() {
        let split = |text: &str| {
            lines(text.as_bytes())
                .map(|l| l.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(split("a\nb\n"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(
            split("a\n\nb"),
            vec![b"a".to_vec(), b"".to_vec(), b"b".to_vec()]
        );
        assert_eq!(split("\n"), vec![b"".to_vec()]);
        assert!(split("").is_empty());
    }

    #[test]
    fn blocks_hold_whole_lines_and_the_rest_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        // Lines longer and shorter than a block, and no final newline.
        let long = "x".repeat(BLOCK_BYTES + 10);
        let text = format!("a\n{long}\nb\n{}\nlast", "y".repeat(BLOCK_BYTES - 5));
        std::fs::write(&path, &text).unwrap();
        let mut blocks = TextBlocks::open(&Location::Local(path.clone())).unwrap();
        let mut seen = Vec::new();
        while let Some(block) = blocks.next_block().unwrap() {
            assert!(block.ends_with(b"\n") || block.ends_with(b"last"));
            seen.extend_from_slice(block);
        }
        assert!(blocks.next_block().unwrap().is_none());
        assert_eq!(seen, text.as_bytes());

        let mut blocks = TextBlocks::open(&Location::Local(path)).unwrap();
        let first = blocks.next_block().unwrap().unwrap().len();
        let mut rest = String::new();
        blocks
            .rest_from(first - 2)
            .read_to_string(&mut rest)
            .unwrap();
        assert_eq!(rest, text[first - 2..]);
    }

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
