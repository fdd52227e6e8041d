//! Spec layers: the spec file, overlay files in the order given, then `--set` values; later wins.
//!
//! Mappings merge key by key; any other value (scalar or list) replaces the earlier one; a `~`
//! (null) in a later layer removes the key, restoring the default. Nothing here reads files:
//! callers pass texts, so loading is deterministic and testable.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_yaml::{Mapping, Value};

use super::diagnostics::{did_you_mean, Diagnostics, Origin, SpecDiagnostic};
use super::raw::RawSpec;
use super::source::{Located, LocationIndex, PathSegment, SourceText, Span, SpecPath};

/// The text of one spec layer and the name to show for it.
#[derive(Debug, Clone)]
pub struct LayerText {
    pub name: String,
    pub text: String,
}

struct Layer {
    source: Arc<SourceText>,
    index: LocationIndex,
}

/// Maps with free-form keys that may contain dots: `--set spark.conf.spark.speculation=true`
/// sets the key `spark.speculation` under `spark.conf`.
const FREE_FORM_MAPS: &[&[&str]] = &[
    &["spark", "conf"],
    &["spark", "env"],
    &["cluster", "tags"],
    &["job", "args"],
    &["job", "secrets"],
];

/// The merged spec document and where each of its values came from.
pub struct LoadedSpec {
    layers: Vec<Layer>,
    pub merged: Value,
    /// Strings as written before run variables were filled (`dt={{date}}/`), by path: IAM
    /// grants come from these, so a role's policy stays the same from one day to the next.
    pub templates: HashMap<SpecPath, String>,
}

impl LoadedSpec {
    /// Where the value at `path` was written, falling back to the nearest enclosing key.
    pub fn origin(&self, path: &SpecPath) -> Option<Origin> {
        self.locate(path, |located| located.value)
    }

    /// Where the key of `path` was written (for unknown or misplaced keys).
    pub fn key_origin(&self, path: &SpecPath) -> Option<Origin> {
        self.locate(path, |located| located.key.unwrap_or(located.value))
    }

    /// The source of the first layer, for problems about the spec as a whole.
    pub fn file_origin(&self) -> Option<Origin> {
        self.layers.first().map(|layer| Origin {
            source: layer.source.clone(),
            span: Span {
                offset: 0,
                len: 0,
                line: 1,
                column: 1,
            },
        })
    }

    fn locate(&self, path: &SpecPath, pick: impl Fn(&Located) -> Span) -> Option<Origin> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            // The last layer that wrote a path is the one whose value counts.
            for layer in self.layers.iter().rev() {
                if let Some(located) = layer.index.get(&path) {
                    return Some(Origin {
                        source: layer.source.clone(),
                        span: pick(located),
                    });
                }
            }
            current = path.parent();
        }
        self.file_origin()
    }
}

/// Parses and merges the layers. Syntax errors are reported for every layer at once.
pub fn load(
    base: &LayerText,
    overlays: &[LayerText],
    sets: &[String],
    diagnostics: &mut Diagnostics,
) -> Option<LoadedSpec> {
    let mut layers = Vec::new();
    let mut merged: Option<Value> = None;
    let mut failed = false;
    for text in std::iter::once(base).chain(overlays) {
        let source = SourceText::new(text.name.clone(), text.text.clone());
        match parse_document(&source) {
            Ok(value) => {
                merged = Some(match merged {
                    None => value,
                    Some(mut into) => {
                        merge(&mut into, value);
                        into
                    }
                });
                layers.push(Layer {
                    index: LocationIndex::build(&source),
                    source,
                });
            }
            Err(diagnostic) => {
                diagnostics.push(*diagnostic);
                failed = true;
            }
        }
    }
    let mut merged = merged.unwrap_or_else(|| Value::Mapping(Mapping::new()));
    for set in sets {
        match parse_set(set) {
            Ok((path, value, layer)) => {
                set_path(&mut merged, &path, value);
                layers.push(layer);
            }
            Err(diagnostic) => {
                diagnostics.push(*diagnostic);
                failed = true;
            }
        }
    }
    if failed {
        return None;
    }
    Some(LoadedSpec {
        layers,
        merged,
        templates: HashMap::new(),
    })
}

fn parse_document(source: &Arc<SourceText>) -> Result<Value, Box<SpecDiagnostic>> {
    let value: Value = serde_yaml::from_str(&source.text).map_err(|error| {
        let origin = error.location().map(|location| Origin {
            source: source.clone(),
            span: source.span_at(location.line(), location.column(), 1),
        });
        // serde_yaml appends "at line L column C"; the origin says that already.
        let message = error.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        Box::new(
            SpecDiagnostic::error("spec::yaml-syntax", format!("malformed YAML: {message}"))
                .at(origin)
                .help("fix the YAML syntax here; `yamllint` or an editor with YAML support shows the structure"),
        )
    })?;
    match value {
        Value::Mapping(_) => Ok(value),
        Value::Null => Ok(Value::Mapping(Mapping::new())),
        other => Err(Box::new(
            SpecDiagnostic::error(
                "spec::not-a-mapping",
                format!(
                    "a job spec must be a mapping of keys to values, but this document is a {}",
                    kind_of(&other)
                ),
            )
            .at(Some(Origin {
                source: source.clone(),
                span: Span {
                    offset: 0,
                    len: source.text.len().min(1),
                    line: 1,
                    column: 1,
                },
            }))
            .help("start the file with top-level keys such as `name:`, `release:` and `cluster:`"),
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "list",
        Value::Mapping(_) => "mapping",
        Value::Tagged(_) => "tagged value",
    }
}

fn merge(into: &mut Value, layer: Value) {
    match (into, layer) {
        (Value::Mapping(into), Value::Mapping(layer)) => {
            for (key, value) in layer {
                if value.is_null() {
                    into.remove(&key);
                    continue;
                }
                match into.get_mut(&key) {
                    Some(existing) if existing.is_mapping() && value.is_mapping() => {
                        merge(existing, value)
                    }
                    _ => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, layer) => *into = layer,
    }
}

/// Splits `a.b.c` into path segments, keeping the rest of a free-form map's key whole.
pub fn split_set_key(key: &str) -> Vec<String> {
    let parts: Vec<&str> = key.split('.').collect();
    for prefix in FREE_FORM_MAPS {
        if parts.len() > prefix.len() && parts[..prefix.len()] == prefix[..] {
            let mut segments: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
            segments.push(parts[prefix.len()..].join("."));
            return segments;
        }
    }
    parts.into_iter().map(str::to_string).collect()
}

fn parse_set(argument: &str) -> Result<(SpecPath, Value, Layer), Box<SpecDiagnostic>> {
    let source = SourceText::new("--set", argument);
    let Some((key, raw_value)) = argument.split_once('=') else {
        return Err(Box::new(
            SpecDiagnostic::error("spec::set-syntax", format!("`--set {argument}` has no `=`"))
                .at(Some(Origin {
                    source,
                    span: Span {
                        offset: 0,
                        len: argument.len(),
                        line: 1,
                        column: 1,
                    },
                }))
                .help("write `--set key.path=value`, e.g. `--set cluster.core.count=6`"),
        ));
    };
    let segments = split_set_key(key.trim());
    if segments.iter().any(String::is_empty) {
        return Err(Box::new(
            SpecDiagnostic::error(
                "spec::set-syntax",
                format!("`--set {argument}` has an empty key segment"),
            )
            .at(Some(Origin {
                source,
                span: Span {
                    offset: 0,
                    len: key.len(),
                    line: 1,
                    column: 1,
                },
            }))
            .help("write `--set key.path=value` with no leading, trailing or doubled dots"),
        ));
    }
    // The value is YAML, so `--set cluster.core.count=6` is a number and
    // `--set spark.executors={instances: 4, cores: 4, memory: 8g}` a mapping; what does not
    // parse is taken as plain text.
    let value = if raw_value.trim().is_empty() {
        Value::String(String::new())
    } else {
        serde_yaml::from_str(raw_value).unwrap_or_else(|_| Value::String(raw_value.to_string()))
    };
    let path = SpecPath(segments.into_iter().map(PathSegment::Key).collect());
    let value_span = Span {
        offset: key.len() + 1,
        len: raw_value.len(),
        line: 1,
        column: key.len() + 2,
    };
    let key_span = Span {
        offset: 0,
        len: key.len(),
        line: 1,
        column: 1,
    };
    let mut index = LocationIndex::default();
    index.insert(
        path.clone(),
        Located {
            key: Some(key_span),
            value: value_span,
        },
    );
    Ok((path, value, Layer { source, index }))
}

fn set_path(root: &mut Value, path: &SpecPath, value: Value) {
    let mut current = root;
    for (i, segment) in path.0.iter().enumerate() {
        let PathSegment::Key(key) = segment else {
            return;
        };
        if !current.is_mapping() {
            *current = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(mapping) = current else {
            return;
        };
        let key = Value::String(key.clone());
        if i + 1 == path.0.len() {
            if value.is_null() {
                mapping.remove(&key);
            } else {
                mapping.insert(key, value);
            }
            return;
        }
        current = mapping
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
}

/// Deserializes the merged document, reporting every unknown key and wrong type at once.
///
/// serde stops at the first error; so each error is recorded with its position, the offending
/// node is taken out of a working copy, and deserialization runs again, until it succeeds.
///
/// Returns what deserialized once the bad nodes were taken out (so later checks still run and
/// report their own problems), with the paths that were taken out.
pub fn deserialize(
    loaded: &LoadedSpec,
    diagnostics: &mut Diagnostics,
) -> (Option<RawSpec>, HashSet<SpecPath>) {
    let mut working = loaded.merged.clone();
    // Removing a list element shifts later ones; this remembers each list's original indexes.
    let mut surviving_indexes: HashMap<SpecPath, Vec<usize>> = HashMap::new();
    let mut removed = HashSet::new();
    // Each round removes one node, so the number of nodes bounds the rounds; the cap is a guard.
    for _ in 0..500 {
        match serde_path_to_error::deserialize::<_, RawSpec>(working.clone()) {
            Ok(raw) => return (Some(raw), removed),
            Err(error) => {
                let working_path = to_spec_path(error.path());
                let original_path = to_original(&working_path, &surviving_indexes);
                let message = error.inner().to_string();
                diagnostics.push(describe_serde_error(loaded, &original_path, &message));
                if !remove_at(
                    &mut working,
                    &working_path,
                    &original_path,
                    &mut surviving_indexes,
                ) {
                    return (None, removed);
                }
                removed.insert(original_path);
            }
        }
    }
    (None, removed)
}

fn to_spec_path(path: &serde_path_to_error::Path) -> SpecPath {
    use serde_path_to_error::Segment;
    SpecPath(
        path.iter()
            .filter_map(|segment| match segment {
                Segment::Seq { index } => Some(PathSegment::Index(*index)),
                Segment::Map { key } => Some(PathSegment::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect(),
    )
}

fn to_original(working: &SpecPath, surviving: &HashMap<SpecPath, Vec<usize>>) -> SpecPath {
    let mut original = SpecPath::root();
    for segment in &working.0 {
        original = match segment {
            PathSegment::Key(key) => original.key(key),
            PathSegment::Index(i) => {
                let index = surviving
                    .get(&original)
                    .and_then(|indexes| indexes.get(*i).copied())
                    .unwrap_or(*i);
                original.index(index)
            }
        };
    }
    original
}

fn remove_at(
    root: &mut Value,
    working: &SpecPath,
    original: &SpecPath,
    surviving: &mut HashMap<SpecPath, Vec<usize>>,
) -> bool {
    let Some((last, parents)) = working.0.split_last() else {
        return false;
    };
    let mut current = &mut *root;
    for segment in parents {
        current = match (segment, current) {
            (PathSegment::Key(key), Value::Mapping(m)) => match m.get_mut(key.as_str()) {
                Some(v) => v,
                None => return false,
            },
            (PathSegment::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, current) {
        (PathSegment::Key(key), Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        (PathSegment::Index(i), Value::Sequence(s)) if *i < s.len() => {
            s.remove(*i);
            let list_path = original.parent().unwrap_or_default();
            let indexes = surviving
                .entry(list_path)
                .or_insert_with(|| (0..s.len() + 1).collect());
            indexes.remove(*i);
            true
        }
        _ => false,
    }
}

/// Names quoted in backticks in serde's messages, e.g. the expected fields after "expected".
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn describe_serde_error(loaded: &LoadedSpec, path: &SpecPath, message: &str) -> SpecDiagnostic {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let (unknown, expected) = names.split_first().map_or(("", &[][..]), |(u, e)| (*u, e));
        let parent = path.parent().unwrap_or_default();
        let place = if parent.0.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{parent}`")
        };
        let mut diagnostic = SpecDiagnostic::error(
            "spec::unknown-key",
            format!("unknown key `{unknown}` {place}"),
        )
        .label("not a key emrship knows here")
        .at(loaded.key_origin(path));
        diagnostic = match did_you_mean(unknown, expected.iter().copied()) {
            Some(suggestion) => diagnostic.help(format!("did you mean `{suggestion}`?")),
            None if expected.is_empty() => diagnostic.help("this mapping takes no keys"),
            None => diagnostic.help(format!("expected one of: {}", expected.join(", "))),
        };
        return diagnostic;
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let (unknown, expected) = names.split_first().map_or(("", &[][..]), |(u, e)| (*u, e));
        let mut diagnostic = SpecDiagnostic::error(
            "spec::unknown-value",
            format!("`{path}` cannot be `{unknown}`"),
        )
        .label("not an accepted value")
        .at(loaded.origin(path));
        diagnostic = match did_you_mean(unknown, expected.iter().copied()) {
            Some(suggestion) => diagnostic.help(format!(
                "did you mean `{suggestion}`? accepted: {}",
                expected.join(", ")
            )),
            None => diagnostic.help(format!("accepted values: {}", expected.join(", "))),
        };
        return diagnostic;
    }
    SpecDiagnostic::error(
        "spec::wrong-type",
        format!("`{path}` has the wrong type: {message}"),
    )
    .label("this value")
    .at(loaded.origin(path))
    .help("see the spec reference in the README for what this key takes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, text: &str) -> LayerText {
        LayerText {
            name: name.into(),
            text: text.into(),
        }
    }

    #[test]
    fn later_layers_win_and_null_removes() {
        let mut diagnostics = Diagnostics::default();
        let loaded = load(
            &layer("base.yaml", "a: {b: 1, c: 2}\nd: [1, 2]\ne: x\n"),
            &[layer("prod.yaml", "a: {b: 10}\nd: [3]\ne: ~\n")],
            &[
                "a.c=20".to_string(),
                "spark.conf.spark.speculation=true".into(),
            ],
            &mut diagnostics,
        )
        .unwrap();
        assert!(diagnostics.is_empty());
        let expected: Value = serde_yaml::from_str(
            "a: {b: 10, c: 20}\nd: [3]\nspark: {conf: {spark.speculation: true}}\n",
        )
        .unwrap();
        assert_eq!(loaded.merged, expected);
        let origin = loaded.origin(&SpecPath::parse_dotted("a.b")).unwrap();
        assert_eq!(origin.to_string(), "prod.yaml:1:8");
        let origin = loaded.origin(&SpecPath::parse_dotted("a.c")).unwrap();
        assert_eq!(origin.to_string(), "--set:1:5");
    }

    #[test]
    fn set_keys_keep_dots_inside_free_form_maps() {
        assert_eq!(
            split_set_key("spark.conf.spark.executor.extraJavaOptions"),
            vec!["spark", "conf", "spark.executor.extraJavaOptions"]
        );
        assert_eq!(
            split_set_key("cluster.core.count"),
            vec!["cluster", "core", "count"]
        );
    }
}
