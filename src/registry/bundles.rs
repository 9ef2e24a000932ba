//! Whole-model operations DataRobot needs beyond the shared core: copying a
//! model with all its versions (sharing blobs, copying no bytes), and
//! writing a version's files out as a zip.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};

use super::access::EntityKind;
use super::models::{insert_version, Model, NewFile, NewModel, NewVersion, Version};
use super::{Digest, Error, Principal, Registry, Result};

/// Files at least this large are stored, not deflated: compressing model
/// weights gains little and would make a 1 GiB download wait on the CPU.
const STORE_FROM_BYTES: u64 = 16 * 1024 * 1024;

impl Registry {
    /// Copies a model of the caller's team with all its versions. Version
    /// rows and file rows are new (new ids); the files point at the same
    /// blobs, so the copy holds an upload guard (gc must not sweep a blob
    /// between the read and the commit) and reads its source inside the
    /// write transaction (a version added or the model deleted meanwhile is
    /// seen or refused, never half-copied). The caller owns the copy.
    pub fn copy_model(&self, who: &Principal, source_id: &str) -> Result<Model> {
        let _guard = self.upload_guard()?;
        let tx = self.write()?;
        let source = self.get_model(who, source_id)?;
        let versions = self.list_versions(who, source_id)?;
        let copy = self.insert_model(
            &tx,
            who,
            NewModel { name: source.name, description: source.description, attrs: source.attrs, origin: source.origin },
        )?;
        for v in versions {
            let files = v
                .files
                .into_iter()
                .map(|f| NewFile { path: f.path, digest: Digest { sha256: f.sha256, size: f.size } })
                .collect();
            insert_version(&tx, who, &copy.id, v.number, NewVersion { description: v.description, attrs: v.attrs, files, label: v.label })?;
        }
        Registry::grant_owner_in(&tx, EntityKind::Model, &copy.id, &who.user_id)?;
        tx.commit()?;
        self.get_model(who, &copy.id)
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
