//! List names: any UTF-8 text of 1 to 256 bytes without control characters, and
//! their reversible encoding into file paths that stay inside the data directory.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Most bytes a list name may have.
pub const MAX_NAME_BYTES: usize = 256;

/// Hex characters per path component; a 256-byte name needs three components.
const SEGMENT: usize = 200;

/// A valid list name. Cloning is one reference-count increment: a live list's
/// name is held in several places (registry, server, published cell, hooks) and
/// shares one allocation.
///
/// ```
/// use sluicegate_todo::domain::ListName;
/// assert!(ListName::new("../etc/passwd").is_ok()); // valid: stored safely anyway
/// assert!(ListName::new("").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListName(Arc<str>);

/// Why a text is not a valid list name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidListName {
    /// The name is empty.
    Empty,
    /// The name is longer than 256 bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name has a control character.
    ControlChar {
        /// Byte offset of the character.
        index: usize,
    },
}

impl fmt::Display for InvalidListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidListName::Empty => f.write_str("list name is empty; it must have 1 to 256 bytes"),
            InvalidListName::TooLong { len } => write!(
                f,
                "list name is {len} bytes; at most {MAX_NAME_BYTES} are allowed"
            ),
            InvalidListName::ControlChar { index } => write!(
                f,
                "list name has a control character at byte {index}; control characters are not allowed"
            ),
        }
    }
}

impl std::error::Error for InvalidListName {}

impl ListName {
    /// Checks and wraps a name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidListName> {
        let name = name.into();
        if name.is_empty() {
            return Err(InvalidListName::Empty);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(InvalidListName::TooLong { len: name.len() });
        }
        if let Some((index, _)) = name.char_indices().find(|(_, c)| c.is_control()) {
            return Err(InvalidListName::ControlChar { index });
        }
        Ok(ListName(name.into()))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ListName {
    type Error = InvalidListName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ListName::new(s)
    }
}

impl From<ListName> for String {
    fn from(n: ListName) -> String {
        n.0.to_string()
    }
}

/// The name's text, shared with the name (no copy).
impl From<ListName> for Arc<str> {
    fn from(n: ListName) -> Arc<str> {
        n.0
    }
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ListName {
    type Err = InvalidListName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ListName::new(s)
    }
}

impl AsRef<str> for ListName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The relative path of a list's file: the lowercase hex of its UTF-8 bytes, cut
/// into components of at most 200 characters (directories `d…`, then the file
/// `l….json`). Only `[a-z0-9.]` appear, so no name can climb out of the data
/// directory, collide on a case-insensitive file system, or hit a reserved name.
pub fn encode_path(name: &ListName) -> PathBuf {
    let hex: String = name.as_str().bytes().map(|b| format!("{b:02x}")).collect();
    let chunks: Vec<&str> = hex
        .as_bytes()
        .chunks(SEGMENT)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    let mut path = PathBuf::new();
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        if i == last {
            path.push(format!("l{chunk}.json"));
        } else {
            path.push(format!("d{chunk}"));
        }
    }
    path
}

/// The list name a relative path encodes, if it is one [`encode_path`] makes.
pub fn decode_path(rel: &Path) -> Option<ListName> {
    let comps: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (file, dirs) = comps.split_last()?;
    let mut hex = String::new();
    for d in dirs {
        let chunk = d.strip_prefix('d')?;
        if chunk.len() != SEGMENT {
            return None;
        }
        hex.push_str(chunk);
    }
    let chunk = file.strip_prefix('l')?.strip_suffix(".json")?;
    if chunk.is_empty() || chunk.len() > SEGMENT {
        return None;
    }
    hex.push_str(chunk);
    if !hex.len().is_multiple_of(2) || hex.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let name = ListName::new(String::from_utf8(bytes).ok()?).ok()?;
    // Only the canonical encoding decodes (no two paths for one name).
    (encode_path(&name) == rel).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside_and_round_trip() {
        let long3 = "日".repeat(85); // 255 bytes of 3-byte chars
        for raw in [
            "bad/name",
            "../x",
            "..",
            ".",
            "CON",
            "日本語",
            "a\\b",
            " ",
            long3.as_str(),
        ] {
            let name = ListName::new(raw).unwrap();
            let p = encode_path(&name);
            assert!(p.is_relative());
            for c in p.components() {
                let Component::Normal(s) = c else {
                    panic!("{raw}: {c:?}")
                };
                let s = s.to_str().unwrap();
                assert!(s.len() <= 255);
                assert!(s
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.'));
            }
            assert_eq!(decode_path(&p), Some(name), "{raw}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(ListName::new(""), Err(InvalidListName::Empty));
        assert_eq!(
            ListName::new("x".repeat(257)),
            Err(InvalidListName::TooLong { len: 257 })
        );
        assert!(ListName::new("x".repeat(256)).is_ok());
        assert_eq!(
            ListName::new("a\nb"),
            Err(InvalidListName::ControlChar { index: 1 })
        );
    }

    #[test]
    fn other_paths_do_not_decode() {
        for p in [
            "x.json",
            "l.json",
            "lzz.json",
            "l6.json",
            "../l61.json",
            "l61.tmp",
        ] {
            assert_eq!(decode_path(Path::new(p)), None, "{p}");
        }
    }
}
