//! The shape of `src/`, checked the way rust-analyzer's tidy tests check
//! theirs: read the sources, build the import graph, and fail with the
//! offending line when it bends.
//!
//! Four rules, written once here and once in ARCHITECTURE.md ("Layers"):
//! 1. A module imports only from layers below its own (`LAYERS`, top first);
//!    modules that share a layer do not import each other.
//! 2. Only the registry reaches the store (`store` is SQL and bytes: a door,
//!    a job or the CLI that touched it would bypass the registry's rules).
//! 3. The file-level import graph has no cycle, within a module too.
//! 4. Only the store names the database engine's crate (`ENGINE_CRATES`):
//!    the registry goes through `store::sql`, so that a second engine is
//!    added there and not in every registry file. Test code counts too.
//!
//! An import is any `crate::…`, `super::…` or `self::…` path outside
//! comments and `#[cfg(test)]` code, `use` lines and inline paths alike,
//! resolved to the longest prefix that names a module file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers of `src/`, top first. A top-level module missing here fails
/// the test: a new module needs a place before it lands.
const LAYERS: &[&[&str]] = &[
    &["main"],
    // commands, offline or over HTTP
    &["cli"],
    // mounts every door on one router
    &["server"],
    // the doors: three dialects and modelreg's own routes; the web UI
    &["api", "ui"],
    // the transport: connections, router, request and response
    &["http"],
    // the job runner and its lanes
    &["jobs"],
    // the work jobs do: model servers, builds, conversions; pulls from git
    &["compute", "git"],
    // the managed Python runtime
    &["runtime"],
    // the domain: every operation, typed in and out
    &["registry"],
    // storage, child processes
    &["store", "process"],
    // counters, which everything above may record into
    &["metrics"],
];

/// Modules that only the named modules may import (besides themselves).
const ONLY_FROM: &[(&str, &[&str])] = &[("store", &["registry"])];

/// External crates that only one folder of `src/` may name: the database
/// engines, behind the SQL seam in `src/store/sql/`.
const ENGINE_CRATES: &[(&str, &str)] = &[("rusqlite", "store/"), ("postgres", "store/sql/")];

#[test]
fn src_keeps_its_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&root) {
        let entry = entry.expect("walking src/");
        if entry.path().extension().is_some_and(|e| e == "rs") {
            let relative = entry.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            files.insert(relative, std::fs::read_to_string(entry.path()).expect("reading a source file"));
        }
    }
    assert!(files.len() > 50, "found only {} files under {}", files.len(), root.display());
    let problems = check(&files);
    assert!(problems.is_empty(), "src/ breaks its layering (see ARCHITECTURE.md, \"Layers\"):\n\n{}", problems.join("\n"));
}

// The checker fails on what it exists to catch.

fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect()
}

#[test]
fn a_lower_layer_importing_a_higher_one_is_named_with_its_line() {
    let problems = check(&tree(&[
        ("main.rs", "mod api;\nmod registry;\nfn main() {}\n"),
        ("api/mod.rs", "pub fn render() {}\n"),
        ("registry/mod.rs", "pub struct Registry;\n\nuse crate::api::render;\n"),
    ]));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("src/registry/mod.rs:3"), "{}", problems[0]);
    assert!(problems[0].contains("use crate::api::render;"), "{}", problems[0]);
    assert!(problems[0].contains("`registry` imports `api`"), "{}", problems[0]);
}

#[test]
fn peers_and_the_store_are_off_limits() {
    let problems = check(&tree(&[
        ("ui/mod.rs", "fn f() { crate::api::datarobot::attachment(\"x\"); }\n"),
        ("api/datarobot.rs", "pub fn attachment(_: &str) {}\nuse crate::store::db::open;\n"),
        ("store/db.rs", "pub fn open() {}\n"),
    ]));
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("src/ui/mod.rs:1") && p.contains("`ui` imports `api`")), "{problems:#?}");
    assert!(problems.iter().any(|p| p.contains("src/api/datarobot.rs:2") && p.contains("only `registry`")), "{problems:#?}");
}

#[test]
fn a_cycle_inside_a_module_is_found_through_grouped_and_relative_imports() {
    let problems = check(&tree(&[
        ("api/mod.rs", "pub mod a;\npub mod b;\n"),
        ("api/a.rs", "use super::{b::{self, helper}, c};\n"),
        ("api/b.rs", "// use super::a; is only a comment\nfn f() { super::a::g(); }\n"),
    ]));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("cycle") && problems[0].contains("src/api/a.rs") && problems[0].contains("src/api/b.rs"), "{}", problems[0]);
    assert!(problems[0].contains("super::a::g()"), "{}", problems[0]);
}

#[test]
fn only_the_store_names_the_database_engine() {
    let problems = check(&tree(&[
        ("registry/mod.rs", "pub mod models;\npub mod page;\n"),
        ("registry/models.rs", "// not rusqlite::Row: a comment\nuse rusqlite::{params, Row};\nfn f(r: &rusqlite::Row) {}\n"),
        ("registry/page.rs", "fn f() {}\n#[cfg(test)]\nmod tests { fn g(_: rusqlite::types::Value) {} }\n"),
        ("registry/sqlite_ish.rs", "fn my_rusqlite_helper() {}\n"),
        ("store/sql/mod.rs", "mod sqlite;\n"),
        ("store/sql/sqlite.rs", "use rusqlite::Connection;\n"),
        // a method and a URL of the engine's name are not the crate
        ("registry/database.rs", "fn f() { Database::postgres(\"postgres://h/db\", 4); }\n"),
        ("store/sql/postgresql.rs", "use postgres::NoTls;\n"),
        ("store/blobs/mod.rs", "fn f(_: postgres::Client) {}\n"),
    ]));
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[2].contains("src/store/blobs/mod.rs:1") && problems[2].contains("only src/store/sql/"), "{}", problems[2]);
    assert!(problems[0].contains("src/registry/models.rs:2") && problems[0].contains("use rusqlite::{params, Row};"), "{}", problems[0]);
    assert!(problems[0].contains("and 1 more line") && problems[0].contains("store::sql"), "{}", problems[0]);
    assert!(problems[1].contains("src/registry/page.rs:3"), "{}", problems[1]);
}

#[test]
fn a_module_without_a_layer_is_refused_and_tests_are_not_imports() {
    let problems = check(&tree(&[
        ("newthing.rs", "use crate::registry::Registry;\n"),
        ("registry/mod.rs", "pub struct Registry;\n#[cfg(test)]\nmod tests { use crate::api::x; }\n"),
        ("api/mod.rs", "pub fn x() {}\n"),
    ]));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("`newthing` has no layer"), "{}", problems[0]);
}

/// Every broken rule, one line each.
fn check(files: &BTreeMap<String, String>) -> Vec<String> {
    let edges = import_edges(files);
    let mut problems = Vec::new();
    let mut unplaced = BTreeSet::new();
    for file in files.keys() {
        let module = top_module(file);
        if layer_of(module).is_none() && unplaced.insert(module) {
            problems.push(format!("`{module}` has no layer: add it to LAYERS in tests/layering.rs and to ARCHITECTURE.md"));
        }
    }
    for (from, targets) in &edges {
        let from_module = top_module(from);
        for (to, line) in targets {
            let to_module = top_module(to);
            if from_module == to_module {
                continue;
            }
            let at = format!("src/{from}:{}: `{}`", line.number, line.text);
            if let Some((_, allowed)) = ONLY_FROM.iter().find(|(m, _)| *m == to_module) {
                if !allowed.contains(&from_module) {
                    problems.push(format!("{at}: `{from_module}` imports `{to_module}`, which only `{}` may use", allowed.join("`, `")));
                    continue;
                }
            }
            if let (Some(a), Some(b)) = (layer_of(from_module), layer_of(to_module)) {
                if a >= b {
                    let why = if a == b { "its peer in the same layer" } else { "a layer above it" };
                    problems.push(format!("{at}: `{from_module}` imports `{to_module}`, {why}"));
                }
            }
        }
    }
    for (file, text) in files {
        for (name, home) in ENGINE_CRATES {
            if file.starts_with(home) {
                continue;
            }
            let lines = lines_naming(&without_comments(text), name);
            if let Some(&first) = lines.first() {
                let more = match lines.len() {
                    1 => String::new(),
                    2 => " (and 1 more line)".to_string(),
                    n => format!(" (and {} more lines)", n - 1),
                };
                let line = text.lines().nth(first - 1).unwrap_or("").trim();
                problems.push(format!(
                    "src/{file}:{first}: `{line}`{more}: names `{name}`, which only src/{home} may: go through `store::sql`"
                ));
            }
        }
    }
    for cycle in cycles(&edges) {
        let mut text = format!("an import cycle among {} files:", cycle.len());
        for (i, file) in cycle.iter().enumerate() {
            let next = &cycle[(i + 1) % cycle.len()];
            let line = &edges[file][next];
            text.push_str(&format!("\n    src/{file}:{}: `{}` -> src/{next}", line.number, line.text));
        }
        problems.push(text);
    }
    problems
}

fn top_module(file: &str) -> &str {
    let first = file.split('/').next().unwrap_or(file);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Where an import was written.
#[derive(Clone, Debug)]
struct Line {
    number: usize,
    text: String,
}

/// file -> (imported file -> the first line that imports it).
fn import_edges(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeMap<String, Line>> {
    let mut edges = BTreeMap::new();
    for (file, text) in files {
        let code = code_of(text);
        let here = module_path(file);
        let mut targets: BTreeMap<String, Line> = BTreeMap::new();
        for (offset, path) in paths_in(&code, &here) {
            let Some(target) = module_file(files, &path) else { continue };
            if target != *file {
                let number = code[..offset].matches('\n').count() + 1;
                let text = text.lines().nth(number - 1).unwrap_or("").trim().to_string();
                targets.entry(target).or_insert(Line { number, text });
            }
        }
        edges.insert(file.clone(), targets);
    }
    edges
}

/// The source without comments and without its `#[cfg(test)]` code (a
/// module's tests are not part of the product's graph).
fn code_of(text: &str) -> String {
    without_comments(&text[..text.find("#[cfg(test)]").unwrap_or(text.len())])
}

/// The line numbers (from 1) where `name` appears as a whole identifier.
fn lines_naming(code: &str, name: &str) -> Vec<usize> {
    let mut lines = Vec::new();
    for (offset, _) in code.match_indices(name) {
        let before = code[..offset].chars().next_back();
        let rest = &code[offset + name.len()..];
        // the crate as a path's first segment (`name::…`), or `use name;`: not
        // a method or module of that name further down a path (`Database::postgres`),
        // nor a word in a string (`"postgres://"`)
        let as_path = rest.starts_with("::") || code[..offset].trim_end().ends_with("use") && rest.trim_start().starts_with(';');
        if !before.is_some_and(|c| is_ident(c) || c == ':') && as_path {
            let line = code[..offset].matches('\n').count() + 1;
            if lines.last() != Some(&line) {
                lines.push(line);
            }
        }
    }
    lines
}

/// The source with its comments turned into spaces, so offsets still give
/// line numbers. Strings and character literals are followed only so that
/// a `//` or a quote inside one is not taken for a comment or the end of a
/// string.
fn without_comments(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut in_string) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_string {
            match c {
                '\\' => {
                    out.extend(&chars[i..(i + 2).min(chars.len())]);
                    i += 2;
                    continue;
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
            continue;
        } else if c == '"' {
            in_string = true;
        } else if c == '\'' {
            // 'x' and '\x…' are characters; 'a alone is a lifetime
            let end = match next {
                Some('\\') => chars[i + 2..].iter().position(|&c| c == '\'').map(|p| i + 2 + p),
                Some(_) if chars.get(i + 2) == Some(&'\'') => Some(i + 2),
                _ => None,
            };
            if let Some(end) = end {
                out.extend(&chars[i..=end]);
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// `api/datarobot/models.rs` -> [api, datarobot, models]; a `mod.rs` is its folder.
fn module_path(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(String::from).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "main" | "lib")) {
        parts.pop();
    }
    parts
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every absolute module path named in `code`, with the offset it starts at.
fn paths_in(code: &str, here: &[String]) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let starts_path = i == 0 || !(is_ident(bytes[i - 1] as char) || bytes[i - 1] == b':');
        let base: Option<(Vec<String>, usize)> = if !starts_path {
            None
        } else if rest.starts_with("crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with("self::") {
            Some((here.to_vec(), "self::".len()))
        } else if rest.starts_with("super::") {
            let mut base = here.to_vec();
            let mut len = 0;
            while rest[len..].starts_with("super::") {
                base.pop();
                len += "super::".len();
            }
            Some((base, len))
        } else {
            None
        };
        match base {
            Some((base, len)) => {
                let (paths, used) = expand(&rest[len..]);
                for path in paths {
                    found.push((i, base.iter().cloned().chain(path).collect()));
                }
                i += len + used.max(1);
            }
            None => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    found
}

/// The paths of `a::b::{c, d::{e, f}}` (after `crate::` or its kin), and
/// how many bytes they took.
fn expand(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut head = Vec::new();
    let mut i = 0;
    loop {
        let ident_len = text[i..].find(|c: char| !is_ident(c)).unwrap_or(text.len() - i);
        if ident_len > 0 {
            head.push(text[i..i + ident_len].to_string());
            i += ident_len;
        }
        let group = if text[i..].starts_with("::{") {
            Some(3)
        } else if i == 0 && text.starts_with('{') {
            Some(1)
        } else {
            None
        };
        if let Some(open) = group {
            i += open;
            let mut paths = Vec::new();
            loop {
                let skipped = text[i..].len() - text[i..].trim_start_matches(|c: char| c.is_whitespace() || c == ',').len();
                i += skipped;
                if i >= text.len() || text[i..].starts_with('}') {
                    break;
                }
                let (inner, used) = expand(&text[i..]);
                for path in inner {
                    let path: Vec<String> = path.into_iter().filter(|p| p != "self").collect();
                    paths.push(head.iter().cloned().chain(path).collect());
                }
                i += used.max(1);
                // `x as y`: the alias names nothing new
                let after = text[i..].trim_start();
                if let Some(alias) = after.strip_prefix("as ") {
                    let alias = alias.trim_start();
                    let alias_len = alias.find(|c: char| !is_ident(c)).unwrap_or(alias.len());
                    i = text.len() - alias[alias_len..].len();
                }
            }
            return (paths, (i + 1).min(text.len()));
        }
        if text[i..].starts_with("::") && text[i + 2..].starts_with(is_ident) {
            i += 2;
            continue;
        }
        return (vec![head], i);
    }
}

/// The file a module path lands in: its longest prefix that names one.
fn module_file(files: &BTreeMap<String, String>, path: &[String]) -> Option<String> {
    (1..=path.len()).rev().find_map(|n| {
        let base = path[..n].join("/");
        [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|candidate| files.contains_key(candidate))
    })
}

/// Every strongly connected component of more than one file, each in the
/// order of one cycle through it.
fn cycles(edges: &BTreeMap<String, BTreeMap<String, Line>>) -> Vec<Vec<String>> {
    let mut components = Vec::new();
    let mut done: BTreeSet<&String> = BTreeSet::new();
    for start in edges.keys() {
        if done.contains(start) {
            continue;
        }
        // The files `start` reaches and the files that reach `start`: their
        // intersection is its component.
        let forward = reachable(edges, start, false);
        let backward = reachable(edges, start, true);
        let component: BTreeSet<&String> = forward.intersection(&backward).copied().collect();
        done.extend(component.iter().copied());
        done.insert(start);
        if component.len() > 1 {
            components.push(cycle_through(edges, start, &component));
        }
    }
    components
}

fn reachable<'a>(edges: &'a BTreeMap<String, BTreeMap<String, Line>>, start: &'a String, reverse: bool) -> BTreeSet<&'a String> {
    let mut seen = BTreeSet::from([start]);
    let mut stack = vec![start];
    while let Some(file) = stack.pop() {
        let next: Vec<&String> = if reverse {
            edges.iter().filter(|(_, targets)| targets.contains_key(file)).map(|(from, _)| from).collect()
        } else {
            edges.get(file).map(|targets| targets.keys().filter(|t| edges.contains_key(*t)).collect()).unwrap_or_default()
        };
        for n in next {
            if seen.insert(n) {
                stack.push(n);
            }
        }
    }
    seen
}

/// One cycle from `start` back to itself inside `component` (breadth-first,
/// so the shortest), to show the edges that close it.
fn cycle_through(edges: &BTreeMap<String, BTreeMap<String, Line>>, start: &String, component: &BTreeSet<&String>) -> Vec<String> {
    let mut parent: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(file) = queue.pop_front() {
        for next in edges[file].keys().filter(|n| component.contains(n)) {
            if next == start {
                let mut cycle = vec![file.clone()];
                let mut at = file;
                while at != start {
                    at = parent[at];
                    cycle.push(at.clone());
                }
                cycle.reverse();
                return cycle;
            }
            if !parent.contains_key(next) && next != start {
                parent.insert(next, file);
                queue.push_back(next);
            }
        }
    }
    component.iter().map(|f| (*f).clone()).collect()
}
