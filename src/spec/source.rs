//! Source text of spec layers and where every key and value sits in it.
//!
//! serde's YAML deserializer forgets positions, so a second, event-level pass over the same text
//! records a `line:column` span for every key and value path. Diagnostics look paths up here.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One segment of a path into the spec document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A path such as `cluster.core.instance_type` or `job.files[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecPath(pub Vec<PathSegment>);

impl SpecPath {
    pub fn root() -> Self {
        SpecPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_string()));
        SpecPath(segments)
    }

    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        SpecPath(segments)
    }

    pub fn parent(&self) -> Option<SpecPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(SpecPath(self.0[..self.0.len() - 1].to_vec()))
        }
    }

    /// Builds a path from dotted text (`cluster.core.count`), no indexes.
    pub fn parse_dotted(text: &str) -> Self {
        SpecPath(
            text.split('.')
                .filter(|s| !s.is_empty())
                .map(|s| PathSegment::Key(s.to_string()))
                .collect(),
        )
    }
}

impl fmt::Display for SpecPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => write!(f, "{key}")?,
                PathSegment::Key(key) if key.contains('.') => write!(f, ".\"{key}\"")?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A byte range in a source text, with its 1-based line and column for humans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
    pub line: usize,
    pub column: usize,
}

/// The text of one layer: a spec file, an overlay, or one `--set` argument.
#[derive(Debug)]
pub struct SourceText {
    /// What a user would type to find it: a path as given, or `--set` for a command-line value.
    pub name: String,
    pub text: String,
}

impl SourceText {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Self> {
        Arc::new(SourceText {
            name: name.into(),
            text: text.into(),
        })
    }

    /// Byte offset of a 1-based line and 0-based character column.
    pub fn byte_offset(&self, line: usize, char_column: usize) -> usize {
        let mut offset = 0;
        for (i, line_text) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let within: usize = line_text
                    .chars()
                    .take(char_column)
                    .map(char::len_utf8)
                    .sum();
                return offset + within;
            }
            offset += line_text.len();
        }
        self.text.len()
    }

    /// The span of a 1-based line and column as reported by the YAML deserializer.
    pub fn span_at(&self, line: usize, column: usize, len: usize) -> Span {
        let offset = self.byte_offset(line, column.saturating_sub(1));
        let len = len.min(self.text.len().saturating_sub(offset));
        Span {
            offset,
            len,
            line,
            column,
        }
    }
}

/// Where a key and its value stand in one source.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    pub key: Option<Span>,
    pub value: Span,
}

/// Every path of one YAML document mapped to its position.
#[derive(Debug, Default)]
pub struct LocationIndex {
    entries: BTreeMap<SpecPath, Located>,
}

impl LocationIndex {
    /// Indexes `source`. Malformed YAML yields a partial index; the deserializer reports the
    /// syntax error itself, with its own position.
    pub fn build(source: &SourceText) -> Self {
        let mut builder = IndexBuilder {
            source,
            stack: Vec::new(),
            index: LocationIndex::default(),
        };
        let mut parser = Parser::new_from_str(&source.text);
        let _ = parser.load(&mut builder, false);
        builder.index
    }

    pub fn get(&self, path: &SpecPath) -> Option<&Located> {
        self.entries.get(path)
    }

    pub fn contains(&self, path: &SpecPath) -> bool {
        self.entries.contains_key(path)
    }

    /// Inserts one entry; used for `--set` sources, which are not YAML documents.
    pub fn insert(&mut self, path: SpecPath, located: Located) {
        self.entries.insert(path, located);
    }
}

enum Container {
    Mapping {
        path: SpecPath,
        pending_key: Option<(String, Span)>,
    },
    Sequence {
        path: SpecPath,
        next_index: usize,
    },
}

struct IndexBuilder<'a> {
    source: &'a SourceText,
    stack: Vec<Container>,
    index: LocationIndex,
}

impl IndexBuilder<'_> {
    fn span(&self, marker: Marker, len: usize) -> Span {
        let offset = self.source.byte_offset(marker.line(), marker.col());
        Span {
            offset,
            len: len.min(self.source.text.len().saturating_sub(offset)),
            line: marker.line(),
            column: marker.col() + 1,
        }
    }

    /// Claims the slot a value fills: the pending key of a mapping, or the next sequence index.
    /// Returns the value's path and its key span.
    fn claim_value_slot(&mut self) -> Option<(SpecPath, Option<Span>)> {
        match self.stack.last_mut()? {
            Container::Mapping { path, pending_key } => {
                let (key, key_span) = pending_key.take()?;
                Some((path.key(&key), Some(key_span)))
            }
            Container::Sequence { path, next_index } => {
                let index = *next_index;
                *next_index += 1;
                Some((path.index(index), None))
            }
        }
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Container::Mapping {
                pending_key: None,
                ..
            })
        )
    }

    fn open(&mut self, marker: Marker, mapping: bool) {
        let path = if self.stack.is_empty() {
            SpecPath::root()
        } else if let Some((path, key)) = self.claim_value_slot() {
            // A block collection's own marker points past its first key; its key is the better
            // anchor for messages about the whole collection.
            let value = key.unwrap_or_else(|| self.span(marker, 1));
            self.index
                .entries
                .insert(path.clone(), Located { key, value });
            path
        } else {
            // A collection used as a mapping key: not part of our schema; index nothing inside.
            SpecPath(vec![PathSegment::Key("<complex key>".into())])
        };
        self.stack.push(if mapping {
            Container::Mapping {
                path,
                pending_key: None,
            }
        } else {
            Container::Sequence {
                path,
                next_index: 0,
            }
        });
    }
}

impl MarkedEventReceiver for IndexBuilder<'_> {
    fn on_event(&mut self, event: Event, marker: Marker) {
        match event {
            Event::MappingStart(..) => self.open(marker, true),
            Event::SequenceStart(..) => self.open(marker, false),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Scalar(text, style, ..) => {
                let quotes = match style {
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => 2,
                    _ => 0,
                };
                let span = self.span(marker, text.chars().count() + quotes);
                if self.expects_key() {
                    if let Some(Container::Mapping { pending_key, .. }) = self.stack.last_mut() {
                        *pending_key = Some((text, span));
                    }
                } else if let Some((path, key)) = self.claim_value_slot() {
                    self.index
                        .entries
                        .insert(path, Located { key, value: span });
                }
            }
            Event::Alias(_) => {
                if let Some((path, key)) = self.claim_value_slot() {
                    let value = self.span(marker, 1);
                    self.index.entries.insert(path, Located { key, value });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_keys_values_and_sequence_items_with_one_based_columns() {
        let source = SourceText::new(
            "spec.yaml",
            "name: x\ncluster:\n  core: { instance_type: 'r5.2xlarge', count: 4 }\nfiles: [a, b]\n",
        );
        let index = LocationIndex::build(&source);
        let at = |p: &str| index.get(&SpecPath::parse_dotted(p)).copied().unwrap();
        assert_eq!((at("name").value.line, at("name").value.column), (1, 7));
        let instance_type = at("cluster.core.instance_type");
        assert_eq!(instance_type.value.line, 3);
        assert_eq!(
            &source.text[instance_type.value.offset..][..instance_type.value.len],
            "'r5.2xlarge'"
        );
        let key = instance_type.key.unwrap();
        assert_eq!(&source.text[key.offset..][..key.len], "instance_type");
        let second = index
            .get(&SpecPath::parse_dotted("files").index(1))
            .unwrap();
        assert_eq!((second.value.line, second.value.column), (4, 12));
    }

    #[test]
    fn byte_offsets_count_multibyte_characters() {
        let source = SourceText::new("s", "a: \"é\"\nb: c\n");
        let index = LocationIndex::build(&source);
        let b = index.get(&SpecPath::parse_dotted("b")).unwrap();
        assert_eq!(&source.text[b.value.offset..][..b.value.len], "c");
    }
}
