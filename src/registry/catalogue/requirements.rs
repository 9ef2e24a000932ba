//! A requirements.txt parser for the subset DataRobot's `dependencies`
//! can express: `name[extras] op version, op version…` with the operators
//! `<`, `<=`, `==`, `>=`, `>` (the seed's `constraintType` enum). Names and
//! extras follow PEP 508; anything the enum cannot represent (`~=`, `!=`,
//! `===`, URLs, markers, pip options) is reported as an invalid line rather
//! than silently dropped, so that what a version reports matches its file.

use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub package_name: String,
    /// (operator, version) pairs in the order written.
    pub constraints: Vec<(String, String)>,
    /// The text between the brackets, when there are extras.
    pub extras: Option<String>,
    pub line: String,
    /// 1-based.
    pub line_number: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InvalidLine {
    pub line: String,
    pub line_number: usize,
    pub message: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub dependencies: Vec<Dependency>,
    pub invalid: Vec<InvalidLine>,
}

const OPERATORS: [&str; 5] = ["<", "<=", "==", ">=", ">"];

impl Dependency {
    /// DataRobot's `DependencyResponse` shape.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "packageName": self.package_name,
            "constraints": self.constraints.iter().map(|(op, ver)| json!({"constraintType": op, "version": ver})).collect::<Vec<_>>(),
            "line": self.line,
            "lineNumber": self.line_number,
        });
        // Omitted rather than "": the client rejects blank strings.
        if let Some(extras) = &self.extras {
            v["extras"] = json!(extras);
        }
        v
    }
}

impl InvalidLine {
    pub fn to_json(&self) -> Value {
        json!({"line": self.line, "lineNumber": self.line_number, "message": self.message})
    }
}

pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let original = raw.trim_end_matches('\r');
        let content = strip_comment(original).trim();
        if content.is_empty() {
            continue;
        }
        match parse_line(content) {
            Ok((package_name, extras, constraints)) => parsed.dependencies.push(Dependency {
                package_name,
                constraints,
                extras,
                line: original.trim().to_string(),
                line_number,
            }),
            Err(message) => parsed.invalid.push(InvalidLine { line: original.to_string(), line_number, message }),
        }
    }
    parsed
}

/// pip's rule: `#` at the start or after whitespace begins a comment.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

type LineParts = (String, Option<String>, Vec<(String, String)>);

fn parse_line(line: &str) -> Result<LineParts, String> {
    if line.starts_with('-') {
        return Err("pip options (-r, -e, --index-url…) are not supported in requirements.txt".into());
    }
    if line.contains(';') {
        return Err("environment markers are not supported".into());
    }
    if line.contains("://") || line.contains('@') {
        return Err("URL and direct references are not supported".into());
    }
    let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c))).unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("{name:?} is not a valid package name"));
    }
    let mut rest = line[name_end..].trim_start();
    let mut extras = None;
    if let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']').ok_or("unclosed '[' in extras")?;
        let list: Vec<&str> = after[..close].split(',').map(str::trim).collect();
        if list.iter().any(|e| !valid_name(e)) {
            return Err(format!("invalid extras [{}]", &after[..close]));
        }
        extras = Some(list.join(","));
        rest = after[close + 1..].trim_start();
    }
    // PEP 508 allows the specifiers in parentheses.
    if let Some(inner) = rest.strip_prefix('(') {
        rest = inner.strip_suffix(')').ok_or("unclosed '(' around the version specifiers")?.trim();
    }
    let mut constraints = Vec::new();
    if !rest.is_empty() {
        for spec in rest.split(',') {
            let spec = spec.trim();
            let op_len = spec.find(|c: char| !"<>=!~".contains(c)).unwrap_or(spec.len());
            let (op, version) = (&spec[..op_len], spec[op_len..].trim());
            if op.is_empty() {
                return Err(format!("expected a version operator before {spec:?}"));
            }
            if !OPERATORS.contains(&op) {
                return Err(format!("the operator {op:?} is not supported; use one of <, <=, ==, >=, >"));
            }
            if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric() || ".*+!_-".contains(c)) {
                return Err(format!("{version:?} is not a valid version"));
            }
            constraints.push((op.to_string(), version.to_string()));
        }
    }
    Ok((name.to_string(), extras, constraints))
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_forms() {
        let p = parse("# top\npandas==1.5.3\n\nrequests[security, socks]>=2.0,<3  # pinned\nnumpy\nscikit-learn (>=1.0)\n");
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
        assert_eq!(p.dependencies.len(), 4);
        let d = &p.dependencies[0];
        assert_eq!((d.package_name.as_str(), d.line_number), ("pandas", 2));
        assert_eq!(d.constraints, vec![("==".to_string(), "1.5.3".to_string())]);
        let r = &p.dependencies[1];
        assert_eq!(r.extras.as_deref(), Some("security,socks"));
        assert_eq!(r.constraints.len(), 2);
        assert_eq!(r.line, "requests[security, socks]>=2.0,<3  # pinned");
        assert_eq!(r.line_number, 4);
        assert!(p.dependencies[2].constraints.is_empty());
        assert_eq!(p.dependencies[3].constraints, vec![(">=".to_string(), "1.0".to_string())]);
        assert!(p.dependencies[2].to_json().get("extras").is_none());
    }

    #[test]
    fn reports_what_it_cannot_represent() {
        for bad in ["foo~=1.0", "foo!=1", "foo===1", "-r other.txt", "--index-url x", "foo; python_version<'3'",
            "git+https://x/y.git", "foo @ https://x", "-foo", "foo==", "foo>=1,", "foo[bar", "==1.0", "foo bar"] {
            let p = parse(bad);
            assert_eq!(p.invalid.len(), 1, "{bad:?} should be invalid: {p:?}");
            assert_eq!(p.invalid[0].line_number, 1);
        }
    }
}
