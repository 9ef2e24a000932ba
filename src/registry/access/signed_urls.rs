//! Short-lived URLs that carry their own authority: Octomil's `upload-url`
//! and `download-url`. The Octomil SDK PUTs and GETs them without a key, as
//! it would a presigned object-store URL, so the token in the URL is the
//! credential: 244 random bits, stored only as its sha256, acting for the
//! user (and dying with the API key) that asked for it.
//!
//! An upload token is single-use. Its PUT claims it (`issued` →
//! `receiving`) before reading a byte, stores the blob (`uploaded`), and
//! confirm-upload turns it into a version (`confirmed`); any other order,
//! a second PUT, or an expired token is refused with 403. gc deletes
//! expired rows, which releases the blob of an upload nobody confirmed.
//!
//! The web UI's Download is a signed link to one file of one version
//! (`sign_file_download`), so the browser streams it to disk with no key
//! and no byte through the page's script. It is a `download` row whose
//! detail is `file:<file id>` (the table's CHECK on `kind` predates it, and
//! a format never holds a colon): each redeemer refuses the other's rows.

use std::time::Duration;

use crate::registry::catalogue::models::VersionFile;
use crate::registry::{format_time, now, Error, Principal, Registry, Result};
use crate::store::blobs::Digest;
use crate::store::sql::{params, OptionalExtension};


/// An upload URL's grant: what its asker said they would upload.
#[derive(Clone, Debug)]
pub struct UploadGrant {
    /// The model as the client named it: an id, or a name.
    pub model_ref: String,
    /// The client's version string.
    pub version: String,
    pub filename: String,
}

/// A download URL's grant.
#[derive(Clone, Debug)]
pub struct DownloadGrant {
    pub who: Principal,
    pub model_id: String,
    pub number: i64,
    pub format: String,
}

/// The `detail` of a signed link to one file (see the module's note).
const FILE_DETAIL: &str = "file:";

fn refused() -> Error {
    Error::Forbidden("this signed URL is unknown, expired or already used; ask for a new one".into())
}

/// A token and when it stops working.
#[derive(Clone, Debug)]
pub struct Signed {
    pub token: String,
    pub expires_at: String,
}

fn expiry(ttl: Duration) -> String {
    format_time(time::OffsetDateTime::now_utc() + ttl)
}

impl Registry {
    pub fn sign_upload(&self, who: &Principal, model_ref: &str, version: &str, filename: &str, ttl: Duration) -> Result<Signed> {
        self.sign("upload", who, model_ref, version, filename, None, ttl)
    }

    /// An upload the client sends straight to the blob store, as the blob
    /// `sha256`: the row names it from the start, so gc keeps what arrives
    /// until confirm-upload (or the URL's expiry).
    pub fn sign_direct_upload(&self, who: &Principal, model_ref: &str, version: &str, filename: &str, sha256: &str, ttl: Duration) -> Result<Signed> {
        self.sign("upload", who, model_ref, version, filename, Some(sha256), ttl)
    }

    pub fn sign_download(&self, who: &Principal, model_id: &str, number: i64, format: &str, ttl: Duration) -> Result<Signed> {
        self.sign("download", who, model_id, &number.to_string(), format, None, ttl)
    }

    /// `sha256`: the blob a direct upload will store (see `sign_direct_upload`).
    #[allow(clippy::too_many_arguments)]
    fn sign(&self, kind: &str, who: &Principal, model_ref: &str, version: &str, detail: &str, sha256: Option<&str>, ttl: Duration) -> Result<Signed> {
        let token = crate::registry::access::auth::new_secret();
        let expires_at = expiry(ttl);
        self.conn.execute(
            "INSERT INTO signed_urls (token_hash, kind, team_id, user_id, key_id, model_ref, version, detail, created_at, expires_at, ttl_ms, sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                crate::registry::access::auth::hash_secret(&token),
                kind,
                who.team_id,
                who.user_id,
                who.key_id,
                model_ref,
                version,
                detail,
                now(),
                expires_at,
                ttl.as_millis() as i64,
                sha256
            ],
        )?;
        Ok(Signed { token, expires_at })
    }

    /// The live row of a token of this kind, with the principal it acts
    /// for; 403 when it is unknown, expired or its key was revoked.
    fn redeem(&self, kind: &str, token: &str) -> Result<(Principal, String, String, String, String)> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT s.user_id, s.key_id, s.model_ref, s.version, s.detail, s.state FROM signed_urls s
                 WHERE s.token_hash = ?1 AND s.kind = ?2 AND s.expires_at > ?3
                   AND (s.key_id IS NULL OR EXISTS (SELECT 1 FROM api_keys k WHERE k.id = s.key_id AND k.revoked_at IS NULL))",
            )?
            .query_row(params![crate::registry::access::auth::hash_secret(token), kind, now()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .optional()?
            .ok_or_else(refused)?;
        let (user_id, key_id, model_ref, version, detail, state) = row;
        let mut who = self.principal_of(&user_id).map_err(|_| refused())?;
        who.key_id = key_id;
        Ok((who, model_ref, version, detail, state))
    }

    pub fn redeem_download(&self, token: &str) -> Result<DownloadGrant> {
        let (who, model_id, version, format, _) = self.redeem("download", token)?;
        if format.starts_with(FILE_DETAIL) {
            return Err(refused());
        }
        let number = version.parse().map_err(|_| Error::Internal(format!("signed download of version {version:?}")))?;
        Ok(DownloadGrant { who, model_id, number, format })
    }

    /// A link that downloads one file of one version without a key, for
    /// `who` (who must see the version; a file it does not hold is 404).
    pub fn sign_file_download(&self, who: &Principal, model_id: &str, number: i64, file_id: &str, ttl: Duration) -> Result<(Signed, VersionFile)> {
        let file = self.version_file(who, model_id, number, file_id)?;
        let signed = self.sign("download", who, model_id, &number.to_string(), &format!("{FILE_DETAIL}{}", file.id), None, ttl)?;
        Ok((signed, file))
    }

    /// The file a `sign_file_download` link names, if the link is live and
    /// its user may still see the version; 403 otherwise.
    pub fn redeem_file_download(&self, token: &str) -> Result<VersionFile> {
        let (who, model_id, version, detail, _) = self.redeem("download", token)?;
        let file_id = detail.strip_prefix(FILE_DETAIL).ok_or_else(refused)?;
        let number = version.parse().map_err(|_| Error::Internal(format!("signed download of version {version:?}")))?;
        self.version_file(&who, &model_id, number, file_id).map_err(|e| match e {
            Error::NotFound(_) => refused(),
            other => other,
        })
    }

    /// One file of a version, by its id.
    pub fn version_file(&self, who: &Principal, model_id: &str, number: i64, file_id: &str) -> Result<VersionFile> {
        let version = self.get_version(who, model_id, number)?;
        version
            .files
            .into_iter()
            .find(|f| f.id == file_id)
            .ok_or_else(|| Error::NotFound(format!("version {number} of model {model_id} has no file {file_id}")))
    }

    /// Claims an upload token for the PUT that is about to read its body;
    /// a second PUT of the same token is refused.
    pub fn claim_upload(&self, token: &str) -> Result<UploadGrant> {
        let (_, model_ref, version, filename, state) = self.redeem("upload", token)?;
        let claimed = self.conn.execute(
            "UPDATE signed_urls SET state = 'receiving' WHERE token_hash = ?1 AND state = 'issued'",
            [crate::registry::access::auth::hash_secret(token)],
        )?;
        if claimed == 0 || state != "issued" {
            return Err(Error::Forbidden("this upload URL was already used; ask for a new one".into()));
        }
        Ok(UploadGrant { model_ref, version, filename })
    }

    /// Records the stored blob of a claimed upload. The caller holds the
    /// upload guard, so gc cannot take the blob before this row holds it.
    pub fn finish_upload(&self, token: &str, digest: &Digest) -> Result<()> {
        let hash = crate::registry::access::auth::hash_secret(token);
        let ttl: i64 = self.conn.query_row("SELECT ttl_ms FROM signed_urls WHERE token_hash = ?1", [&hash], |r| r.get(0))?;
        self.conn.execute(
            "UPDATE signed_urls SET state = 'uploaded', sha256 = ?2, size = ?3, expires_at = ?4
             WHERE token_hash = ?1 AND state = 'receiving'",
            params![hash, digest.sha256, digest.size as i64, expiry(Duration::from_millis(ttl.max(0) as u64))],
        )?;
        Ok(())
    }

    /// Takes an uploaded file for confirmation by the user who asked for the
    /// URL: the grant and the stored blob. The token is consumed; if making
    /// the version then fails, `unconfirm_upload` gives it back.
    pub fn confirm_upload(&self, who: &Principal, token: &str) -> Result<(UploadGrant, Digest)> {
        let (owner, model_ref, version, filename, state) = self.redeem("upload", token)?;
        if owner.user_id != who.user_id {
            return Err(Error::NotFound("no upload with this storage_key".into()));
        }
        let hash = crate::registry::access::auth::hash_secret(token);
        let state = if state == "issued" && self.arrived_in_store(&hash)? { "uploaded".to_string() } else { state };
        if state != "uploaded" {
            return Err(Error::Conflict(format!(
                "the upload with this storage_key is {state}, not uploaded: PUT the file to its upload_url first"
            )));
        }
        let (sha256, size): (String, i64) = self.conn.query_row(
            "UPDATE signed_urls SET state = 'confirmed' WHERE token_hash = ?1 AND state = 'uploaded' RETURNING sha256, size",
            [&hash],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((UploadGrant { model_ref, version, filename }, Digest { sha256, size: size as u64 }))
    }

    /// A direct upload (`sign_direct_upload`) whose object is now in the
    /// store becomes `uploaded`, with the size the store reports; the store
    /// has checked its sha256. False when it is not a direct upload, or
    /// nothing has arrived.
    fn arrived_in_store(&self, token_hash: &str) -> Result<bool> {
        let expected: Option<String> =
            self.conn.query_row("SELECT sha256 FROM signed_urls WHERE token_hash = ?1", [token_hash], |r| r.get(0))?;
        let Some(sha256) = expected else { return Ok(false) };
        let Some(size) = self.blobs.stat(&sha256).map_err(crate::registry::store_error)? else { return Ok(false) };
        let updated = self.conn.execute(
            "UPDATE signed_urls SET state = 'uploaded', size = ?2 WHERE token_hash = ?1 AND state = 'issued'",
            params![token_hash, size as i64],
        )?;
        Ok(updated == 1)
    }

    pub fn unconfirm_upload(&self, token: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE signed_urls SET state = 'uploaded' WHERE token_hash = ?1 AND state = 'confirmed'",
            [crate::registry::access::auth::hash_secret(token)],
        )?;
        Ok(())
    }

    /// Deletes expired signed URLs; gc calls it first, so that the blobs
    /// of uploads nobody confirmed become unreferenced.
    pub fn sweep_signed_urls(&self) -> Result<usize> {
        Ok(self.conn.execute("DELETE FROM signed_urls WHERE expires_at <= ?1", [now()])?)
    }
}
