//! Dependency expressions: simple (`name [op evr]`) and rich/boolean (`(a or b)`, `(a if b else
//! c)`, `(a unless b)`, `(a with b)`, `(a without b)`, `and`, nested), parsed as rpm does.
//!
//! As in rpm, one parenthesised level chains a single operator (`(a and b and c)`); mixing
//! operators needs parentheses, except `if`/`unless` with their `else`. Names may contain
//! balanced parentheses (`perl(Foo::Bar)`, `libc.so.6()(64bit)`).

use crate::evr::{Evr, Op};
use std::fmt;

/// A dependency.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dep {
    Simple {
        name: String,
        range: Option<(Op, Evr)>,
    },
    And(Vec<Dep>),
    Or(Vec<Dep>),
    /// All of them satisfied by one package.
    With(Vec<Dep>),
    /// The first satisfied by a package the second does not match.
    Without(Box<Dep>, Box<Dep>),
    If {
        then: Box<Dep>,
        cond: Box<Dep>,
        otherwise: Option<Box<Dep>>,
    },
    Unless {
        then: Box<Dep>,
        cond: Box<Dep>,
        otherwise: Option<Box<Dep>>,
    },
}

/// Why a dependency string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dependency {text:?}: {why} at position {pos}")]
pub struct DepError {
    pub text: String,
    pub why: String,
    pub pos: usize,
}

impl Dep {
    /// A simple dependency on `name` with an optional range.
    pub fn simple(name: &str, range: Option<(Op, Evr)>) -> Dep {
        Dep::Simple {
            name: name.to_string(),
            range,
        }
    }

    /// Parses a dependency as found in RPM headers and repodata.
    pub fn parse(s: &str) -> Result<Dep, DepError> {
        let mut p = Parser {
            s: s.as_bytes(),
            pos: 0,
            text: s,
        };
        p.ws();
        let dep = if p.peek() == Some(b'(') {
            p.rich()?
        } else {
            p.simple()?
        };
        p.ws();
        if p.pos != s.len() {
            return Err(p.err("unexpected text after the dependency"));
        }
        Ok(dep)
    }

    /// Whether this is a rich (boolean) dependency.
    /// The names of every simple dependency inside this one, in order (one for a simple
    /// dependency; every operand's for a rich one).
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(d) = stack.pop() {
            match d {
                Dep::Simple { name, .. } => out.push(name.as_str()),
                Dep::And(v) | Dep::Or(v) | Dep::With(v) => stack.extend(v.iter().rev()),
                Dep::Without(a, b) => stack.extend([&**b, &**a]),
                Dep::If {
                    then,
                    cond,
                    otherwise,
                }
                | Dep::Unless {
                    then,
                    cond,
                    otherwise,
                } => {
                    stack.extend(otherwise.as_deref());
                    stack.extend([&**cond, &**then]);
                }
            }
        }
        out
    }

    pub fn is_rich(&self) -> bool {
        !matches!(self, Dep::Simple { .. })
    }
}

/// Whether a name or version can be printed inside a rich dependency and read back the same.
fn balanced(token: &str) -> bool {
    token.matches('(').count() == token.matches(')').count()
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    text: &'a str,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn err(&self, why: &str) -> DepError {
        DepError {
            text: self.text.to_string(),
            why: why.to_string(),
            pos: self.pos,
        }
    }

    /// A token of non-space characters; a `)` ends it unless it closes a `(` of the token.
    fn token(&mut self) -> &str {
        let start = self.pos;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || c == b',' {
                break;
            }
            if c == b')' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            if c == b'(' {
                depth += 1;
            }
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    fn simple(&mut self) -> Result<Dep, DepError> {
        let name = self.token().to_string();
        if name.is_empty() {
            return Err(self.err("missing name"));
        }
        if !balanced(&name) {
            return Err(self.err("unbalanced parentheses in the name"));
        }
        let save = self.pos;
        self.ws();
        let op_start = self.pos;
        while self.peek().is_some_and(|c| matches!(c, b'<' | b'>' | b'=')) {
            self.pos += 1;
        }
        if self.pos == op_start {
            self.pos = save;
            return Ok(Dep::simple(&name, None));
        }
        let op_text = std::str::from_utf8(&self.s[op_start..self.pos]).unwrap_or("");
        let op = Op::parse(op_text).ok_or_else(|| self.err("unknown comparison operator"))?;
        self.ws();
        let evr = self.token().to_string();
        if evr.is_empty() {
            return Err(self.err("missing version after the operator"));
        }
        if !balanced(&evr) {
            return Err(self.err("unbalanced parentheses in the version"));
        }
        Ok(Dep::simple(&name, Some((op, Evr::parse(&evr)))))
    }

    fn operand(&mut self, depth: usize) -> Result<Dep, DepError> {
        self.ws();
        if self.peek() == Some(b'(') {
            if depth >= MAX_DEPTH {
                return Err(self.err("nested too deeply"));
            }
            self.rich_at(depth + 1)
        } else {
            self.simple()
        }
    }

    fn rich(&mut self) -> Result<Dep, DepError> {
        self.rich_at(0)
    }

    /// `( operand (op operand)* )` with one operator per level.
    fn rich_at(&mut self, depth: usize) -> Result<Dep, DepError> {
        self.pos += 1; // '('
        let first = self.operand(depth)?;
        let mut items = vec![first];
        let mut op: Option<String> = None;
        let mut otherwise: Option<Dep> = None;
        loop {
            self.ws();
            match self.peek() {
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.err("missing ')'")),
                _ => {}
            }
            let word_at = self.pos;
            let word = self.token().to_string();
            match (op.as_deref(), word.as_str()) {
                (None, "and" | "or" | "if" | "unless" | "with" | "without") => op = Some(word),
                (Some(o), w) if o == w && matches!(o, "and" | "or" | "with") => {}
                (Some("if" | "unless"), "else") if otherwise.is_none() && items.len() == 2 => {
                    otherwise = Some(self.operand(depth)?);
                    continue;
                }
                _ => {
                    self.pos = word_at;
                    return Err(self.err(if word.is_empty() {
                        "expected an operator"
                    } else {
                        "unexpected operator (mixing operators needs parentheses)"
                    }));
                }
            }
            if matches!(op.as_deref(), Some("if" | "unless" | "without")) && items.len() == 2 {
                return Err(self.err("this operator takes two operands"));
            }
            items.push(self.operand(depth)?);
        }
        let mut it = items.into_iter();
        let one = |v: Option<Dep>| Box::new(v.expect("two operands"));
        Ok(match op.as_deref() {
            None => return Err(self.err("a rich dependency needs an operator")),
            Some("and") => Dep::And(it.collect()),
            Some("or") => Dep::Or(it.collect()),
            Some("with") => Dep::With(it.collect()),
            Some("without") => Dep::Without(one(it.next()), one(it.next())),
            Some("if") => Dep::If {
                then: one(it.next()),
                cond: one(it.next()),
                otherwise: otherwise.map(Box::new),
            },
            Some("unless") => Dep::Unless {
                then: one(it.next()),
                cond: one(it.next()),
                otherwise: otherwise.map(Box::new),
            },
            Some(_) => unreachable!("operators are checked above"),
        })
    }
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Dep], op: &str| {
            f.write_str("(")?;
            for (i, d) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{d}")?;
            }
            f.write_str(")")
        };
        match self {
            Dep::Simple { name, range: None } => f.write_str(name),
            Dep::Simple {
                name,
                range: Some((op, evr)),
            } => write!(f, "{name} {} {evr}", op.as_str()),
            Dep::And(v) => join(f, v, "and"),
            Dep::Or(v) => join(f, v, "or"),
            Dep::With(v) => join(f, v, "with"),
            Dep::Without(a, b) => write!(f, "({a} without {b})"),
            Dep::If {
                then,
                cond,
                otherwise,
            }
            | Dep::Unless {
                then,
                cond,
                otherwise,
            } => {
                let op = if matches!(self, Dep::If { .. }) {
                    "if"
                } else {
                    "unless"
                };
                write!(f, "({then} {op} {cond}")?;
                if let Some(o) = otherwise {
                    write!(f, " else {o}")?;
                }
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_inside_rich_dependencies() {
        let d = Dep::parse("((a >= 1 or /bin/b) if c else (d without e))").unwrap();
        assert_eq!(d.names(), ["a", "/bin/b", "c", "d", "e"]);
        assert_eq!(Dep::parse("x = 1").unwrap().names(), ["x"]);
    }

    fn rt(s: &str) -> String {
        Dep::parse(s).unwrap().to_string()
    }

    #[test]
    fn simple_dependencies() {
        assert_eq!(Dep::parse("bash").unwrap(), Dep::simple("bash", None));
        assert_eq!(rt("glibc >= 2.38-1"), "glibc >= 2.38-1");
        assert_eq!(rt("perl(Foo::Bar)"), "perl(Foo::Bar)");
        assert_eq!(rt("libc.so.6()(64bit)"), "libc.so.6()(64bit)");
        assert_eq!(rt("  /bin/sh "), "/bin/sh");
        // As in rpm, operators are separated by whitespace: this is one (odd) name.
        assert_eq!(
            Dep::parse("kernel=6.6.1").unwrap(),
            Dep::simple("kernel=6.6.1", None)
        );
    }

    #[test]
    fn rich_dependencies() {
        assert_eq!(rt("(a or b)"), "(a or b)");
        assert_eq!(rt("(a >= 1 or b or c < 2)"), "(a >= 1 or b or c < 2)");
        assert_eq!(rt("(a if b)"), "(a if b)");
        assert_eq!(rt("(a if b else c)"), "(a if b else c)");
        assert_eq!(rt("(a unless b else c)"), "(a unless b else c)");
        assert_eq!(rt("(a with b)"), "(a with b)");
        assert_eq!(rt("(a without b)"), "(a without b)");
        assert_eq!(rt("((a or b) and (c if d))"), "((a or b) and (c if d))");
        assert_eq!(
            rt("(perl(X) or python3dist(y) >= 2)"),
            "(perl(X) or python3dist(y) >= 2)"
        );
        match Dep::parse("(a if b else c)").unwrap() {
            Dep::If {
                otherwise: Some(o), ..
            } => assert_eq!(*o, Dep::simple("c", None)),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn malformed_rich_dependencies_are_errors() {
        for bad in [
            "(a or b",
            "(a or b and c)",
            "(a)",
            "(a if b if c)",
            "(a without b without c)",
            "(a or)",
            "(a xor b)",
            "a b",
            "(a else b)",
            "",
        ] {
            assert!(Dep::parse(bad).is_err(), "{bad:?}");
        }
        // Found by fuzzing: a name with an unbalanced '(' printed back into something unparsable.
        assert!(Dep::parse("(1==wi or \u{1d}r1g\0\0t2(bc )").is_err());
        // ... and the same in a version.
        assert!(Dep::parse("(1i or x = \u{8}(^ )").is_err());
        // An epoch too large for u64 still prints back to the same dependency.
        let huge = Dep::parse("a > 99999999999999999999999:").unwrap();
        assert_eq!(Dep::parse(&huge.to_string()).unwrap(), huge);
        let deep = format!("{}a{}", "(a or ".repeat(100), ")".repeat(100));
        assert!(Dep::parse(&deep).is_err());
    }
}
