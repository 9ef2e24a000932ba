//! Where a registry keeps its bytes, as written on the command line
//! (`--blob-store`) and recorded in the registry: `local` (the data
//! directory's `blobs/`) or `s3://BUCKET[/PREFIX]`. How to reach a bucket
//! (endpoint, region, credentials) is not part of the location: it comes
//! from the standard AWS variables every S3 tool reads, so that the same
//! registry can be opened from a laptop and from a server.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BlobLocation {
    Local,
    S3 { bucket: String, prefix: String },
}

impl BlobLocation {
    /// Parses `local` or `s3://BUCKET[/PREFIX]`. The prefix is kept without
    /// slashes at either end; object keys are `PREFIX/sha256/ab/cdef…`.
    pub fn parse(text: &str) -> Result<BlobLocation, String> {
        let text = text.trim();
        if text == "local" {
            return Ok(BlobLocation::Local);
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(format!("blob store {text:?}: expected `local` or `s3://BUCKET[/PREFIX]`"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: what is not one of these cannot be a
        // bucket anywhere, so say so before trying the network.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(format!(
                "blob store {text:?}: {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, dots and dashes)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        // Keys are built from the prefix and a digest; a prefix that URLs
        // would resolve (`..`) or that needs escaping is refused.
        let valid_prefix = prefix.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if !prefix.is_empty() && !valid_prefix {
            return Err(format!(
                "blob store {text:?}: the prefix {prefix:?} must be folder names of letters, digits, `-`, `_` and `.`"
            ));
        }
        Ok(BlobLocation::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }
}

impl fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobLocation::Local => f.write_str("local"),
            BlobLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            BlobLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How requests name the bucket: `https://HOST/BUCKET/key` or
/// `https://BUCKET.HOST/key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlStyle {
    Path,
    VirtualHost,
}

/// How to reach S3: read from the environment, with the few choices the
/// server's flags make (`serve --s3-…`).
#[derive(Clone, Debug)]
pub struct S3Settings {
    pub endpoint: String,
    /// The host clients are given in presigned URLs, when the endpoint the
    /// server uses is one they cannot reach (an internal name).
    pub public_endpoint: Option<String>,
    pub region: String,
    pub url_style: UrlStyle,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Authenticated downloads answer 307 to a presigned GET of the store
    /// instead of streaming through modelreg.
    pub redirect_downloads: bool,
    /// Where jobs' copies of blobs are cached (default: `<data>/cache/blobs`), and how large
    /// the cache may grow.
    pub cache_dir: Option<PathBuf>,
    pub cache_bytes: u64,
    pub timeout: std::time::Duration,
}

/// The server's S3 choices (flags of `serve`); the rest is the environment.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    pub public_endpoint: Option<String>,
    pub url_style: Option<UrlStyle>,
    pub redirect_downloads: bool,
    pub cache_dir: Option<PathBuf>,
    /// None: `DEFAULT_CACHE_BYTES`.
    pub cache_bytes: Option<u64>,
    /// None: `DEFAULT_TIMEOUT`.
    pub timeout: Option<std::time::Duration>,
}

pub const DEFAULT_CACHE_BYTES: u64 = 10 << 30;
/// How long a request waits for the store to make progress (a connect, a
/// read, a write) before the store counts as unavailable.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl S3Settings {
    /// Reads `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`), `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and `AWS_SESSION_TOKEN`. Without an endpoint the store is AWS itself,
    /// addressed by virtual host; with one (Garage, MinIO, Ceph), by path,
    /// which works with an IP address or a name without wildcard DNS.
    pub fn from_env(options: &S3Options) -> Result<S3Settings, String> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".to_string());
        let given_endpoint = var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"));
        let url_style = options.url_style.unwrap_or(if given_endpoint.is_some() { UrlStyle::Path } else { UrlStyle::VirtualHost });
        let endpoint = given_endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        for (name, url) in [("the S3 endpoint", Some(&endpoint)), ("--s3-public-endpoint", options.public_endpoint.as_ref())] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("{name} {url:?} must be an http:// or https:// URL"));
                }
            }
        }
        let missing = |name: &str| format!("{name} is not set: an s3:// blob store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        Ok(S3Settings {
            endpoint,
            public_endpoint: options.public_endpoint.clone(),
            region,
            url_style,
            access_key_id: var("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?,
            session_token: var("AWS_SESSION_TOKEN"),
            redirect_downloads: options.redirect_downloads,
            cache_dir: options.cache_dir.clone(),
            cache_bytes: options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES),
            timeout: options.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_bad_ones_say_why() {
        for text in ["local", "s3://models", "s3://models/team-a/prod"] {
            assert_eq!(BlobLocation::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            BlobLocation::parse("s3://models/a/").unwrap(),
            BlobLocation::S3 { bucket: "models".into(), prefix: "a".into() }
        );
        for (text, says) in [
            ("/var/lib/blobs", "expected `local`"),
            ("s3://Models", "not a bucket name"),
            ("s3://ab", "not a bucket name"),
            ("s3://models/../x", "prefix"),
            ("s3://models/a//b", "prefix"),
            ("s3://models/a b", "prefix"),
        ] {
            let message = BlobLocation::parse(text).unwrap_err();
            assert!(message.contains(says), "{text}: {message}");
        }
    }
}
