//! A deterministic zip: the same entries always give the same bytes.
//!
//! Entries are sorted by name, every timestamp is the zip epoch (1980-01-01 00:00), Unix modes
//! are kept (so the job binary stays executable after `unzip`), and no extra field that could
//! vary (extended timestamps, uid/gid) is written. The bundle's S3 key is the sha256 of these
//! bytes, so determinism is what makes "unchanged → one HEAD, no upload" work.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// One file in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The path inside the archive (`/`-separated, relative).
    pub name: String,
    pub bytes: Vec<u8>,
    /// Unix permission bits (`0o755`); file type bits are added here.
    pub mode: u32,
}

/// Regular file type bits of `st_mode`, stored with the permissions in the entry's external
/// attributes: `unzip` and Python's `zipfile` read the mode from there.
const S_IFREG: u32 = 0o100_000;

/// Writes `entries` as a zip, sorted by name. Two entries with one name are an error (the
/// caller's bug or a clash of a job file with a bundle file), not something to pick from.
pub fn write_zip(mut entries: Vec<ArchiveEntry>) -> Result<Vec<u8>, String> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = entries.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!("two bundle entries are named `{}`", pair[0].name));
    }
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for entry in &entries {
        writer
            .start_file(
                entry.name.as_str(),
                entry_options(entry.mode, entry.bytes.len()),
            )
            .and_then(|()| writer.write_all(&entry.bytes).map_err(Into::into))
            .map_err(|e| format!("cannot add `{}` to the bundle: {e}", entry.name))?;
    }
    writer
        .finish()
        .map(Cursor::into_inner)
        .map_err(|e| format!("cannot finish the bundle zip: {e}"))
}

/// The same options for every entry: only the mode and the size (zip64 or not) vary.
fn entry_options(mode: u32, len: usize) -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        // A fixed level: the default could change between zip releases.
        .compression_level(Some(6))
        .last_modified_time(DateTime::default())
        .unix_permissions(S_IFREG | (mode & 0o7777))
        .large_file(len as u64 >= u32::MAX as u64)
}

/// One file on disk to put in an archive under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub path: std::path::PathBuf,
    pub mode: u32,
}

/// [`write_zip`] for archives too big to hold in memory twice (a Python dependency tree is
/// hundreds of MB): each file is read when its turn comes and the zip is written to `out`.
/// `transform` may rewrite a file's bytes on the way in (the deps build drops lines from
/// pip's RECORD files). Same bytes for the same entries, in any order.
pub fn write_zip_file(
    out: &std::path::Path,
    mut entries: Vec<FileEntry>,
    transform: &dyn Fn(&str, Vec<u8>) -> Vec<u8>,
) -> Result<(), String> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(pair) = entries.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(format!("two archive entries are named `{}`", pair[0].name));
    }
    let file =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut writer = ZipWriter::new(std::io::BufWriter::new(file));
    for entry in &entries {
        let bytes = std::fs::read(&entry.path)
            .map_err(|e| format!("cannot read {}: {e}", entry.path.display()))?;
        let bytes = transform(&entry.name, bytes);
        writer
            .start_file(entry.name.as_str(), entry_options(entry.mode, bytes.len()))
            .and_then(|()| writer.write_all(&bytes).map_err(Into::into))
            .map_err(|e| format!("cannot add `{}` to {}: {e}", entry.name, out.display()))?;
    }
    let mut buffered = writer
        .finish()
        .map_err(|e| format!("cannot finish {}: {e}", out.display()))?;
    buffered
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entry(name: &str, bytes: &[u8], mode: u32) -> ArchiveEntry {
        ArchiveEntry {
            name: name.to_string(),
            bytes: bytes.to_vec(),
            mode,
        }
    }

    fn sample() -> Vec<ArchiveEntry> {
        vec![
            entry("spec.yaml", b"name: x\n", 0o644),
            entry("emrship-job", b"\x7fELF binary", 0o755),
            entry("files/a.conf", b"a = 1\n", 0o600),
        ]
    }

    #[test]
    fn same_entries_give_identical_bytes_in_any_order() {
        let first = write_zip(sample()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(first, write_zip(reversed).unwrap());
    }

    #[test]
    fn a_mode_only_change_changes_the_bytes() {
        let mut changed = sample();
        changed[0].mode = 0o600;
        assert_ne!(write_zip(sample()).unwrap(), write_zip(changed).unwrap());
    }

    #[test]
    fn entries_are_sorted_with_fixed_times_and_their_modes() {
        let bytes = write_zip(sample()).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|name| name.unwrap().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(archive.len(), 3);
        let mut in_order = Vec::new();
        for i in 0..archive.len() {
            let mut file = archive.by_index(i).unwrap();
            let name = file.name().unwrap().into_owned();
            in_order.push(name.clone());
            assert_eq!(file.last_modified(), Some(DateTime::default()));
            assert!(file.extra_data().is_none_or(|data| data.is_empty()));
            let mode = file.unix_mode().unwrap();
            let mut content = Vec::new();
            file.read_to_end(&mut content).unwrap();
            match name.as_str() {
                "emrship-job" => {
                    assert_eq!(mode, 0o100_755);
                    assert_eq!(content, b"\x7fELF binary");
                }
                "files/a.conf" => assert_eq!(mode, 0o100_600),
                "spec.yaml" => assert_eq!(mode, 0o100_644),
                other => panic!("unexpected entry {other}"),
            }
        }
        assert_eq!(in_order, sorted);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut entries = sample();
        entries.push(entry("spec.yaml", b"", 0o644));
        assert!(write_zip(entries).unwrap_err().contains("spec.yaml"));
    }

    #[test]
    fn the_file_writer_gives_the_same_bytes_as_the_memory_writer() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for (i, e) in sample().into_iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, &e.bytes).unwrap();
            files.push(FileEntry {
                name: e.name,
                path,
                mode: e.mode,
            });
        }
        files.reverse();
        let out = dir.path().join("out.zip");
        write_zip_file(&out, files, &|_, bytes| bytes).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), write_zip(sample()).unwrap());
    }
}
