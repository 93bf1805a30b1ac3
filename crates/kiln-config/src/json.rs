//! A JSON parser that keeps byte spans for every value and every object key.
//!
//! Upstream parses configs with Go's `encoding/json`; this parser accepts exactly the same syntax
//! (RFC 8259, no extensions, no byte order mark, nesting up to 10000 levels) and reports syntax
//! errors with Go's message text, so kiln's errors can quote upstream. Unlike a serde-based parser
//! it keeps duplicate keys in document order (Go applies them in turn; the last one wins) and the
//! span of every key and value, which is what lets diagnostics point at a line and column.

use std::fmt;

/// Byte range `[start, end)` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A parsed JSON value with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// The JSON value kinds. Numbers keep their literal text: the target type decides how it is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Member>),
}

/// One `"key": value` pair of an object, in document order (duplicates kept).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    pub fn new(value: Value, span: Span) -> Self {
        Node { value, span }
    }
}

impl Drop for Node {
    /// Drops nested values iteratively: a 10000-deep document must not overflow the stack.
    fn drop(&mut self) {
        let mut pending: Vec<Value> = Vec::new();
        let take = |v: &mut Value, pending: &mut Vec<Value>| match v {
            Value::Array(items) => pending.extend(
                items
                    .iter_mut()
                    .map(|n| std::mem::replace(&mut n.value, Value::Null)),
            ),
            Value::Object(members) => pending.extend(
                members
                    .iter_mut()
                    .map(|m| std::mem::replace(&mut m.value.value, Value::Null)),
            ),
            _ => {}
        };
        take(&mut self.value, &mut pending);
        while let Some(mut v) = pending.pop() {
            take(&mut v, &mut pending);
        }
    }
}

impl Value {
    /// The word Go's `UnmarshalTypeError` uses for this kind of JSON value.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }
}

impl Node {
    /// The value of the member whose key matches `name` the way Go matches struct fields
    /// (exact match preferred, else case-insensitive); the last duplicate wins.
    pub fn member(&self, name: &str) -> Option<&Node> {
        self.member_entry(name).map(|m| &m.value)
    }

    /// Like [`Node::member`] but returns the whole member (key span included).
    pub fn member_entry(&self, name: &str) -> Option<&Member> {
        let Value::Object(members) = &self.value else {
            return None;
        };
        members
            .iter()
            .rev()
            .find(|m| m.key == name)
            .or_else(|| members.iter().rev().find(|m| keys_match(&m.key, name)))
    }

    /// The `index`-th element of an array.
    pub fn element(&self, index: usize) -> Option<&Node> {
        match &self.value {
            Value::Array(items) => items.get(index),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Go's `encoding/json` key matching: byte-equal, or equal under Unicode simple case folding.
pub fn keys_match(key: &str, field: &str) -> bool {
    key == field || {
        let mut a = key.chars().map(fold);
        let mut b = field.chars().map(fold);
        loop {
            match (a.next(), b.next()) {
                (None, None) => break true,
                (Some(x), Some(y)) if x == y => continue,
                _ => break false,
            }
        }
    }
}

/// Simple case folding to a canonical lower-case character; also folds the Kelvin sign and the
/// long s the way Go's `bytes.EqualFold` does.
fn fold(c: char) -> char {
    let mut upper = c.to_uppercase();
    let u = match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    };
    let mut lower = u.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// A syntax error, with Go's message text and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub offset: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SyntaxError {}

/// Go's nesting limit (`maxNestingDepth` in encoding/json's scanner).
const MAX_DEPTH: usize = 10_000;

/// Parses one JSON document.
pub fn parse(text: &[u8]) -> Result<Node, SyntaxError> {
    let mut p = Parser { s: text, pos: 0 };
    let node = p.value()?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.invalid(c, "after top-level value"));
    }
    Ok(node)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

/// A container whose closing bracket has not been read yet.
enum Container {
    Array {
        start: usize,
        items: Vec<Node>,
    },
    Object {
        start: usize,
        members: Vec<Member>,
        /// The key of the member whose value is being parsed.
        key: (String, Span),
    },
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eof(&self) -> SyntaxError {
        SyntaxError {
            message: "unexpected end of JSON input".into(),
            offset: self.s.len(),
        }
    }

    fn invalid(&self, c: u8, context: &str) -> SyntaxError {
        SyntaxError {
            message: format!("invalid character {} {}", quote_char(c), context),
            offset: self.pos,
        }
    }

    /// The next byte, or the end-of-input error.
    fn next_byte(&mut self) -> Result<u8, SyntaxError> {
        let c = self.peek().ok_or_else(|| self.eof())?;
        self.pos += 1;
        Ok(c)
    }

    /// Parses one value. Iterative (an explicit stack of open containers), so deeply nested
    /// input cannot overflow the call stack.
    fn value(&mut self) -> Result<Node, SyntaxError> {
        let mut open: Vec<Container> = Vec::new();
        'value: loop {
            self.skip_ws();
            let start = self.pos;
            let c = self.peek().ok_or_else(|| self.eof())?;
            let mut node = match c {
                b'{' | b'[' => {
                    if open.len() + 1 > MAX_DEPTH {
                        return Err(self.invalid(c, "exceeded max depth"));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    let close = if c == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        let value = if c == b'{' {
                            Value::Object(Vec::new())
                        } else {
                            Value::Array(Vec::new())
                        };
                        Node::new(value, Span::new(start, self.pos))
                    } else if c == b'{' {
                        let key = self.object_key()?;
                        open.push(Container::Object {
                            start,
                            members: Vec::new(),
                            key,
                        });
                        continue 'value;
                    } else {
                        open.push(Container::Array {
                            start,
                            items: Vec::new(),
                        });
                        continue 'value;
                    }
                }
                b'"' => {
                    let s = self.string()?;
                    Node::new(Value::String(s), Span::new(start, self.pos))
                }
                b'-' | b'0'..=b'9' => {
                    let n = self.number()?;
                    Node::new(Value::Number(n), Span::new(start, self.pos))
                }
                b't' => Node::new(
                    self.literal("true", Value::Bool(true))?,
                    Span::new(start, self.pos),
                ),
                b'f' => Node::new(
                    self.literal("false", Value::Bool(false))?,
                    Span::new(start, self.pos),
                ),
                b'n' => Node::new(
                    self.literal("null", Value::Null)?,
                    Span::new(start, self.pos),
                ),
                _ => return Err(self.invalid(c, "looking for beginning of value")),
            };
            // A value is complete: hand it to the innermost open container, closing containers
            // for as long as their closing bracket follows.
            loop {
                let Some(container) = open.last_mut() else {
                    return Ok(node);
                };
                self.skip_ws();
                let c = self.next_byte()?;
                match container {
                    Container::Array { items, .. } => {
                        items.push(node);
                        match c {
                            b',' => continue 'value,
                            b']' => {}
                            _ => {
                                self.pos -= 1;
                                return Err(self.invalid(c, "after array element"));
                            }
                        }
                    }
                    Container::Object { members, key, .. } => {
                        let (key, key_span) = std::mem::take(key);
                        members.push(Member {
                            key,
                            key_span,
                            value: node,
                        });
                        match c {
                            b',' => {
                                self.skip_ws();
                                let next_key = self.object_key()?;
                                if let Some(Container::Object { key, .. }) = open.last_mut() {
                                    *key = next_key;
                                }
                                continue 'value;
                            }
                            b'}' => {}
                            _ => {
                                self.pos -= 1;
                                return Err(self.invalid(c, "after object key:value pair"));
                            }
                        }
                    }
                }
                node = match open.pop() {
                    Some(Container::Array { start, items }) => {
                        Node::new(Value::Array(items), Span::new(start, self.pos))
                    }
                    Some(Container::Object { start, members, .. }) => {
                        Node::new(Value::Object(members), Span::new(start, self.pos))
                    }
                    None => unreachable!("a container was open"),
                };
            }
        }
    }

    /// Reads `"key"` and the `:` after it.
    fn object_key(&mut self) -> Result<(String, Span), SyntaxError> {
        let start = self.pos;
        match self.peek() {
            Some(b'"') => {}
            Some(c) => return Err(self.invalid(c, "looking for beginning of object key string")),
            None => return Err(self.eof()),
        }
        let key = self.string()?;
        let span = Span::new(start, self.pos);
        self.skip_ws();
        match self.next_byte()? {
            b':' => Ok((key, span)),
            c => {
                self.pos -= 1;
                Err(self.invalid(c, "after object key"))
            }
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, SyntaxError> {
        for (i, expected) in word.bytes().enumerate() {
            let c = self.next_byte()?;
            if c != expected {
                self.pos -= 1;
                return Err(self.invalid(
                    c,
                    &format!(
                        "in literal {word} (expecting {})",
                        quote_char(word.as_bytes()[i])
                    ),
                ));
            }
        }
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            Some(c) => return Err(self.invalid(c, "in numeric literal")),
            None => return Err(self.eof()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(match self.peek() {
                    Some(c) => self.invalid(c, "after decimal point in numeric literal"),
                    None => self.eof(),
                });
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(match self.peek() {
                    Some(c) => self.invalid(c, "in exponent of numeric literal"),
                    None => self.eof(),
                });
            }
        }
        // The slice is ASCII by construction.
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let c = self.next_byte()?;
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => {
                    self.pos -= 1;
                    return Err(self.invalid(c, "in \\u hexadecimal character escape"));
                }
            };
            v = v * 16 + u32::from(d);
        }
        Ok(v)
    }

    /// Reads a string literal. Invalid UTF-8 and unpaired surrogates become U+FFFD, as in Go.
    fn string(&mut self) -> Result<String, SyntaxError> {
        self.pos += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.next_byte()?;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.next_byte()?;
                    let simple = match e {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => {
                            self.pos -= 1;
                            return Err(self.invalid(e, "in string escape code"));
                        }
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let ch = self.unicode_escape()?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => {
                    self.pos -= 1;
                    return Err(self.invalid(c, "in string literal"));
                }
                _ => out.push(c),
            }
        }
        Ok(match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// After `\u`: one escape, or a surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char, SyntaxError> {
        let first = self.hex4()?;
        if !(0xD800..0xDC00).contains(&first) {
            return Ok(char::from_u32(first).unwrap_or('\u{FFFD}'));
        }
        // A high surrogate: combine with a following low-surrogate escape when there is one.
        if self.s.get(self.pos..self.pos + 2) == Some(b"\\u") {
            let save = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                return Ok(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            self.pos = save;
        }
        Ok('\u{FFFD}')
    }
}

/// Go's `quoteChar`: how encoding/json names an unexpected byte in an error message.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => format!("'{}'", go_quote_rune(char::from(c))),
    }
}

/// The inside of Go's `strconv.Quote` for one rune.
pub(crate) fn go_quote_rune(c: char) -> String {
    match c {
        '\u{7}' => r"\a".into(),
        '\u{8}' => r"\b".into(),
        '\u{c}' => r"\f".into(),
        '\n' => r"\n".into(),
        '\r' => r"\r".into(),
        '\t' => r"\t".into(),
        '\u{b}' => r"\v".into(),
        '\\' => r"\\".into(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
        c if is_go_printable(c) => c.to_string(),
        c if (c as u32) < 0x10000 => format!("\\u{:04x}", c as u32),
        c => format!("\\U{:08x}", c as u32),
    }
}

/// Go's `strconv.Quote` of a whole string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push_str(&go_quote_rune(c));
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: graphic characters and ASCII space, no other spaces,
/// no control or format characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xD800..=0xDFFF
        | 0xE000..=0xF8FF | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().message
    }

    #[test]
    fn parses_nested_values_with_spans() {
        let text = r#" {"a": [1, -2.5e3, "x\u00e9\ud83d\ude00"], "b": {"c": null}, "a": true} "#;
        let n = parse(text.as_bytes()).unwrap();
        assert_eq!(&text[n.span.start..n.span.end], text.trim());
        // The last duplicate wins when looking a member up.
        assert_eq!(n.member("A").unwrap().value, Value::Bool(true));
        let Value::Object(m) = &n.value else { panic!() };
        let Value::Array(items) = &m[0].value.value else {
            panic!()
        };
        assert_eq!(items[1].value, Value::Number("-2.5e3".into()));
        assert_eq!(items[2].value, Value::String("xé😀".into()));
        assert_eq!(&text[m[1].key_span.start..m[1].key_span.end], "\"b\"");
    }

    #[test]
    fn syntax_errors_use_go_texts() {
        assert_eq!(err(""), "unexpected end of JSON input");
        assert_eq!(err("{"), "unexpected end of JSON input");
        assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            err("{\"a\":1 \"b\":2}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(err("[1 2]"), "invalid character '2' after array element");
        assert_eq!(
            err("{,}"),
            "invalid character ',' looking for beginning of object key string"
        );
        assert_eq!(err("[01]"), "invalid character '1' after array element");
        assert_eq!(err("01"), "invalid character '1' after top-level value");
        assert_eq!(err("tru"), "unexpected end of JSON input");
        assert_eq!(
            err("trux"),
            "invalid character 'x' in literal true (expecting 'e')"
        );
        assert_eq!(err("\"a\tb\""), "invalid character '\\t' in string literal");
        assert_eq!(
            err("\"\\q\""),
            "invalid character 'q' in string escape code"
        );
        assert_eq!(err("1."), "unexpected end of JSON input");
        assert_eq!(
            err("1.x"),
            "invalid character 'x' after decimal point in numeric literal"
        );
        assert_eq!(err("-x"), "invalid character 'x' in numeric literal");
        assert_eq!(
            err("\u{feff}{}"),
            "invalid character 'ï' looking for beginning of value"
        );
        assert_eq!(
            err("{'a':1}"),
            r"invalid character '\'' looking for beginning of object key string"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(20_000);
        assert_eq!(err(&deep), "invalid character '[' exceeded max depth");
        let ok = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8_and_lone_surrogates_become_replacement_characters() {
        let n = parse(b"\"a\xffb\\ud800c\"").unwrap();
        assert_eq!(n.value, Value::String("a\u{FFFD}b\u{FFFD}c".into()));
    }

    #[test]
    fn keys_match_like_go() {
        assert!(keys_match("SSHPubkeyPaths", "SSHPubKeyPaths"));
        assert!(keys_match("name", "Name"));
        assert!(keys_match("\u{212A}ernelOptions", "KernelOptions"));
        assert!(!keys_match("Names", "Name"));
    }
}
