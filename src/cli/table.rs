//! The CLI's human output: aligned columns under a header, sizes a person
//! reads at a glance. `--json` prints what the API answers instead.

use serde_json::Value;

/// Rows printed as columns padded to their widest cell, headers first.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }

    fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate().take(columns) {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i + 1 < columns {
                    line.push_str(&format!("{cell:<width$}  "));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `1.50 MiB`: a byte count as a person reads it.
pub fn human_size(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// A byte count in a JSON value (a number, or a number in a string as
/// Paperspace writes them) as a cell: `1.50 MiB`, or `-`.
pub fn size(v: &Value) -> String {
    match v {
        Value::String(s) => s.parse().map_or_else(|_| cell(v), human_size),
        _ => v.as_u64().map_or_else(|| "-".into(), human_size),
    }
}

/// How one kind of object prints as a table: its headers, and the cells of
/// one object (as many as there are headers).
pub struct Columns {
    pub headers: &'static [&'static str],
    pub cells: fn(&Value) -> Vec<String>,
}

impl Columns {
    /// A row per item of `value` when it is a list, else one row for it.
    pub fn table(&self, value: &Value) -> Table {
        let mut table = Table::new(self.headers);
        match value.as_array() {
            Some(items) => items.iter().for_each(|item| table.row((self.cells)(item))),
            None => table.row((self.cells)(value)),
        }
        table
    }
}

/// `value` as JSON, or as a table of `columns`.
pub fn print(value: &Value, as_json: bool, columns: &Columns) {
    if as_json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        columns.table(value).print();
    }
}

/// A JSON value as a table cell: `-` for nothing, strings without quotes.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `auc=0.93 f1=0.71`: an object of names to values on one line.
pub fn pairs(v: &Value) -> String {
    match v.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_under_their_headers() {
        let mut t = Table::new(&["VERSION", "SIZE", "NOTE"]);
        t.row(vec!["12".into(), "1.00 KiB".into(), "x".into()]);
        t.row(vec!["3".into(), "5 B".into(), String::new()]);
        assert_eq!(
            t.render(),
            "VERSION  SIZE      NOTE\n12       1.00 KiB  x\n3        5 B\n"
        );
        assert_eq!(
            pairs(&serde_json::json!({"auc": 0.9, "f1": 0.7})),
            "auc=0.9 f1=0.7"
        );
        assert_eq!(human_size(1536), "1.50 KiB");
        assert_eq!((size(&serde_json::json!("1024")), size(&serde_json::json!(2048)), size(&Value::Null)), ("1.00 KiB".into(), "2.00 KiB".into(), "-".into()));
    }

    #[test]
    fn one_object_is_a_table_of_one_row() {
        const NAMES: Columns = Columns { headers: &["NAME", "SIZE"], cells: |v| vec![cell(&v["name"]), size(&v["size"])] };
        let one = serde_json::json!({"name": "a", "size": 1});
        assert_eq!(NAMES.table(&one).render(), "NAME  SIZE\na     1 B\n");
        let list = serde_json::json!([{"name": "bb", "size": null}, one]);
        assert_eq!(NAMES.table(&list).render(), "NAME  SIZE\nbb    -\na     1 B\n");
    }
}
