//! CSV datasets as the checks need them: the header, the feature columns
//! (the target and partition columns dropped, as DataRobot does before
//! scoring), chunks of rows re-encoded for a request, and small samples
//! with one column blanked. Reading is streaming: a chunk at a time.

use std::io::Read;

/// One row's fields, in the dataset's column order.
pub type Row = csv::StringRecord;

/// A dataset opened for scoring.
pub struct Table<R: Read> {
    reader: csv::Reader<R>,
    pub header: Vec<String>,
    /// Indices of the columns sent to the model.
    features: Vec<usize>,
}

impl<R: Read> Table<R> {
    /// Reads the header; `drop` names the columns the model must not see.
    pub fn open(source: R, drop: &[String]) -> Result<Table<R>, String> {
        let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(source);
        let header: Vec<String> =
            reader.headers().map_err(|e| format!("the dataset's header cannot be read: {e}"))?.iter().map(str::to_string).collect();
        let features = (0..header.len()).filter(|i| !drop.contains(&header[*i])).collect();
        Ok(Table { reader, header, features })
    }

    /// The names of the columns sent to the model.
    pub fn feature_names(&self) -> Vec<&str> {
        self.features.iter().map(|i| self.header[*i].as_str()).collect()
    }

    /// The index (in the dataset) of a column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Up to `n` next rows; empty at the end.
    pub fn next_rows(&mut self, n: usize) -> Result<Vec<Row>, String> {
        let mut rows = Vec::with_capacity(n.min(4096));
        let mut record = csv::StringRecord::new();
        while rows.len() < n {
            match self.reader.read_record(&mut record) {
                Ok(true) => rows.push(record.clone()),
                Ok(false) => break,
                Err(e) => return Err(format!("the dataset cannot be read: {e}")),
            }
        }
        Ok(rows)
    }

    /// `rows` as CSV with the feature columns only; with `blank`, that
    /// feature (an index into `feature_names`) is empty in every row.
    pub fn encode(&self, rows: &[Row], blank: Option<usize>) -> Vec<u8> {
        encode(&self.feature_names(), &self.features, rows, blank)
    }

    /// Like `encode` for several variants at once: the rows once per entry of
    /// `blanks`, one after the other, in one body.
    pub fn encode_variants(&self, rows: &[Row], blanks: &[usize]) -> Vec<u8> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(self.feature_names());
        for blank in blanks {
            for row in rows {
                write_row(&mut writer, &self.features, row, Some(*blank));
            }
        }
        writer.into_inner().unwrap_or_default()
    }
}

fn write_row(writer: &mut csv::Writer<Vec<u8>>, features: &[usize], row: &Row, blank: Option<usize>) {
    let fields = features.iter().enumerate().map(|(i, c)| if Some(i) == blank { "" } else { row.get(*c).unwrap_or("") });
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(fields);
}

fn encode(names: &[&str], features: &[usize], rows: &[Row], blank: Option<usize>) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(names);
    for row in rows {
        write_row(&mut writer, features, row, blank);
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_blanks_and_quotes() {
        let csv = "x1,y,note\n1,2,\"a, \"\"b\"\"\"\n3,4,\"line\nbreak\"\n";
        let mut t = Table::open(csv.as_bytes(), &["y".to_string()]).unwrap();
        assert_eq!(t.feature_names(), ["x1", "note"]);
        let rows = t.next_rows(10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(String::from_utf8(t.encode(&rows, None)).unwrap(), "x1,note\n1,\"a, \"\"b\"\"\"\n3,\"line\nbreak\"\n");
        assert_eq!(String::from_utf8(t.encode(&rows[..1], Some(0))).unwrap(), "x1,note\n,\"a, \"\"b\"\"\"\n");
        assert_eq!(String::from_utf8(t.encode_variants(&rows[..1], &[0, 1])).unwrap(), "x1,note\n,\"a, \"\"b\"\"\"\n1,\n");
        assert!(t.next_rows(10).unwrap().is_empty());
    }

    #[test]
    fn a_ragged_row_is_an_error() {
        let mut t = Table::open("a,b\n1\n".as_bytes(), &[]).unwrap();
        assert!(t.next_rows(10).unwrap_err().contains("cannot be read"));
    }
}
