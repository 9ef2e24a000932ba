//! Whole-model operations DataRobot needs beyond the shared core: copying a
//! model with all its versions (sharing blobs, copying no bytes), and
//! writing a version's files out as a zip.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use rusqlite::params;
use serde_json::Value;

use super::models::{Model, Version};
use super::{new_id, now, Error, Principal, Registry, Result};

/// Files at least this large are stored, not deflated: compressing model
/// weights gains little and would make a 1 GiB download wait on the CPU.
const STORE_FROM_BYTES: u64 = 16 * 1024 * 1024;

impl Registry {
    /// Copies a model of the caller's team with all its versions. Version
    /// rows and file rows are new (new ids); the files point at the same
    /// blobs. The caller owns the copy.
    pub fn copy_model(&self, who: &Principal, source_id: &str) -> Result<Model> {
        let source = self.get_model(who, source_id)?;
        let versions = self.list_versions(who, source_id)?;
        let tx = self.write()?;
        let at = now();
        let id = new_id();
        tx.execute(
            "INSERT INTO models (id, team_id, name, description, created_by, created_at, modified_at, attrs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
            params![id, who.team_id, source.name, source.description, who.user_id, at, Value::Object(source.attrs.clone()).to_string()],
        )?;
        for v in &versions {
            let vid = new_id();
            tx.execute(
                "INSERT INTO model_versions (id, model_id, number, description, created_by, created_at, attrs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![vid, id, v.number, v.description, who.user_id, at, Value::Object(v.attrs.clone()).to_string()],
            )?;
            for (position, f) in v.files.iter().enumerate() {
                tx.execute(
                    "INSERT INTO version_files (id, version_id, position, path, sha256, size, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![new_id(), vid, position as i64, f.path, f.sha256, f.size as i64, at],
                )?;
            }
        }
        tx.execute(
            "INSERT INTO access_roles (kind, entity_id, user_id, role) VALUES ('model', ?1, ?2, 'OWNER')",
            params![id, who.user_id],
        )?;
        tx.commit()?;
        self.get_model(who, &id)
    }

    /// Writes the version's files, at their paths, into an anonymous temp
    /// file (deleted when dropped) and returns it rewound, with its size.
    /// Memory stays flat: every file is streamed from its blob.
    pub fn version_zip(&self, version: &Version) -> Result<(File, u64)> {
        let tmp_dir = self.data_dir.join("tmp");
        std::fs::create_dir_all(&tmp_dir)?;
        let mut file = tempfile::tempfile_in(&tmp_dir)?;
        {
            let mut zip = zip::ZipWriter::new(&mut file);
            let mut files: Vec<_> = version.files.iter().collect();
            files.sort_by(|a, b| a.path.cmp(&b.path));
            for f in files {
                let method =
                    if f.size >= STORE_FROM_BYTES { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(method)
                    .large_file(f.size >= u32::MAX as u64)
                    .unix_permissions(0o644);
                zip.start_file(f.path.as_str(), options).map_err(zip_error)?;
                let mut blob = self.open_blob(&f.sha256)?;
                std::io::copy(&mut blob, &mut zip)?;
            }
            zip.finish().map_err(zip_error)?;
        }
        file.flush()?;
        let size = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, size))
    }
}

fn zip_error(e: zip::result::ZipError) -> Error {
    Error::Internal(format!("writing the zip failed: {e}"))
}
