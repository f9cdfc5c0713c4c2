//! The S3 store (AWS, Selectel, Yandex, MinIO, any S3 API): requests are signed sans-IO by
//! `rusty-s3` (SigV4 presigned URLs, `UNSIGNED-PAYLOAD`, so bodies stream) and sent with the
//! workspace's one reqwest + rustls stack.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, S3Action as _};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use url::Url;

use crate::{MediaError, ObjectInfo, RecordingKey, Uploaded};

/// How long the store's own request URLs live (they are used at once).
const REQUEST_URL_LIFE: Duration = Duration::from_secs(300);

/// Files larger than this go up in parts (S3 allows 5 GiB in one PUT, but a lost connection
/// then costs the whole file).
pub const DEFAULT_PART_SIZE: u64 = 16 * 1024 * 1024;

/// S3's smallest part (all but the last).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Where and how to reach the bucket. Credentials come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), never from a
/// file in the repository.
#[derive(Clone)]
pub struct S3Config {
    /// `https://s3.amazonaws.com`, `https://s3.ru-1.storage.selcloud.ru`, `http://127.0.0.1:9000`.
    pub endpoint: Url,
    pub region: String,
    pub bucket: String,
    /// `bucket` in the path (MinIO and most self-hosted servers) rather than in the host name.
    pub path_style: bool,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
    /// Files larger than this are uploaded in parts of this size (at least 5 MiB).
    pub part_size: u64,
    /// Extra PEM roots for an endpoint with a private CA.
    pub extra_root_certs_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// A bucket of recordings.
#[derive(Debug, Clone)]
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    part_size: u64,
}

impl S3Store {
    pub fn new(config: S3Config) -> Result<Self, MediaError> {
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            config.endpoint.clone(),
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| {
            MediaError::Config(format!(
                "S3 bucket `{}` at {} cannot be addressed: {e}",
                config.bucket, config.endpoint
            ))
        })?;
        let credentials = match config.session_token {
            Some(token) => Credentials::new_with_token(config.access_key, config.secret_key, token),
            None => Credentials::new(config.access_key, config.secret_key),
        };
        let tls = calldesk_tls::client_config(
            config.extra_root_certs_pem.as_deref(),
            config.endpoint.scheme() == "https",
            &calldesk_tls::HTTP_ALPN,
        )
        .map_err(|e| MediaError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| MediaError::Config(format!("cannot set up the S3 client: {e}")))?;
        if config.part_size < MIN_PART_SIZE {
            return Err(MediaError::Config(format!(
                "S3 part size {} bytes is below S3's minimum of 5 MiB",
                config.part_size
            )));
        }
        Ok(Self {
            bucket,
            credentials,
            http,
            part_size: config.part_size,
        })
    }

    /// Creates the bucket (tests and first set-up; production buckets are made by their owner).
    pub async fn create_bucket(&self) -> Result<(), MediaError> {
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(REQUEST_URL_LIFE);
        let response = self.send("create the bucket", self.http.put(url)).await?;
        expect_success("create the bucket", response).await?;
        Ok(())
    }

    pub async fn exists(&self, key: &RecordingKey) -> Result<Option<ObjectInfo>, MediaError> {
        let url = self
            .bucket
            .head_object(Some(&self.credentials), key.as_str())
            .sign(REQUEST_URL_LIFE);
        let response = self.send("check a recording", self.http.head(url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = expect_success("check a recording", response).await?;
        let size = response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(Some(ObjectInfo { size }))
    }

    /// Uploads `file` under `key`: one streamed PUT up to the part size, else a multipart
    /// upload of part-size pieces, each streamed from the file; a failed multipart upload is
    /// aborted. Putting the same file under the same key again changes nothing.
    pub async fn upload_file(
        &self,
        key: &RecordingKey,
        file: &Path,
        content_type: &str,
    ) -> Result<Uploaded, MediaError> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| MediaError::io(file, e))?
            .len();
        if size <= self.part_size {
            let mut action = self
                .bucket
                .put_object(Some(&self.credentials), key.as_str());
            action.headers_mut().insert("content-type", content_type);
            let url = action.sign(REQUEST_URL_LIFE);
            let body = file_part(file, 0, size).await?;
            let request = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body);
            let response = self.send("upload a recording", request).await?;
            expect_success("upload a recording", response).await?;
            return Ok(Uploaded { size, parts: 1 });
        }
        let mut create = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key.as_str());
        create.headers_mut().insert("content-type", content_type);
        let url = create.sign(REQUEST_URL_LIFE);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type);
        let response = self.send("start a multipart upload", request).await?;
        let text = success_text("start a multipart upload", response).await?;
        let created = CreateMultipartUpload::parse_response(&text).map_err(|e| {
            MediaError::BadResponse(format!("S3 answered a multipart start with bad XML: {e}"))
        })?;
        let upload_id = created.upload_id().to_owned();
        match self.upload_parts(key, file, size, &upload_id).await {
            Ok(parts) => Ok(Uploaded { size, parts }),
            Err(e) => {
                self.abort(key, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn upload_parts(
        &self,
        key: &RecordingKey,
        file: &Path,
        size: u64,
        upload_id: &str,
    ) -> Result<u32, MediaError> {
        let mut etags = Vec::new();
        let mut offset = 0;
        let mut number: u16 = 1;
        while offset < size {
            let len = self.part_size.min(size - offset);
            let url = self
                .bucket
                .upload_part(Some(&self.credentials), key.as_str(), number, upload_id)
                .sign(REQUEST_URL_LIFE);
            let request = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(file_part(file, offset, len).await?);
            let response = self.send("upload a part", request).await?;
            let response = expect_success("upload a part", response).await?;
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    MediaError::BadResponse("S3 accepted a part without an ETag".to_owned())
                })?
                .to_owned();
            etags.push(etag);
            offset += len;
            number = number.checked_add(1).ok_or_else(|| {
                MediaError::Config("a recording needs more than 65535 parts".to_owned())
            })?;
        }
        let complete = CompleteMultipartUpload::new(
            &self.bucket,
            Some(&self.credentials),
            key.as_str(),
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = complete.sign(REQUEST_URL_LIFE);
        let request = self.http.post(url).body(complete.body());
        let response = self.send("finish a multipart upload", request).await?;
        // S3 may answer 200 with an error in the body once the parts were slow to join.
        let text = success_text("finish a multipart upload", response).await?;
        if text.contains("<Error>") {
            return Err(MediaError::Refused {
                action: "finish a multipart upload",
                status: 200,
                detail: s3_error_detail(&text),
            });
        }
        Ok(u32::from(number - 1))
    }

    /// Best effort: the parts of a failed upload are dropped (a bucket lifecycle rule catches
    /// what this misses).
    async fn abort(&self, key: &RecordingKey, upload_id: &str) {
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key.as_str(), upload_id)
            .sign(REQUEST_URL_LIFE);
        match self.http.delete(url).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), %key, "could not abort a multipart upload")
            }
            Err(e) => tracing::warn!(error = %e, %key, "could not abort a multipart upload"),
        }
    }

    /// A GET URL for `key` that works for `expires_in` from `now` and needs no credentials.
    pub fn presign_get(
        &self,
        key: &RecordingKey,
        expires_in: Duration,
        now: SystemTime,
    ) -> Result<Url, MediaError> {
        let at = jiff::Timestamp::try_from(now)
            .map_err(|e| MediaError::Config(format!("the clock is unusable: {e}")))?;
        Ok(self
            .bucket
            .get_object(Some(&self.credentials), key.as_str())
            .sign_with_time(expires_in, &at))
    }

    /// Reads a whole object (tests and checks; the app streams the presigned URL instead).
    pub async fn get(&self, key: &RecordingKey) -> Result<Vec<u8>, MediaError> {
        let url = self.presign_get(key, REQUEST_URL_LIFE, SystemTime::now())?;
        let response = self.send("read a recording", self.http.get(url)).await?;
        let bytes = expect_success("read a recording", response)
            .await?
            .bytes()
            .await
            .map_err(|e| MediaError::transport("read a recording", &e))?;
        Ok(bytes.to_vec())
    }

    /// The keys under `prefix` (at most 1000; tests and checks).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, MediaError> {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix);
        let url = action.sign(REQUEST_URL_LIFE);
        let response = self.send("list recordings", self.http.get(url)).await?;
        let text = success_text("list recordings", response).await?;
        let parsed = rusty_s3::actions::ListObjectsV2::parse_response(&text).map_err(|e| {
            MediaError::BadResponse(format!("S3 answered a listing with bad XML: {e}"))
        })?;
        Ok(parsed
            .contents
            .into_iter()
            .map(|o| (o.key, o.size.unwrap_or(0)))
            .collect())
    }

    async fn send(
        &self,
        action: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, MediaError> {
        request
            .send()
            .await
            .map_err(|e| MediaError::transport(action, &e))
    }
}

/// `len` bytes of `file` from `offset`, as a streamed request body.
async fn file_part(file: &Path, offset: u64, len: u64) -> Result<reqwest::Body, MediaError> {
    let mut f = tokio::fs::File::open(file)
        .await
        .map_err(|e| MediaError::io(file, e))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| MediaError::io(file, e))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 64 * 1024);
    Ok(reqwest::Body::wrap_stream(stream))
}

async fn expect_success(
    action: &'static str,
    response: reqwest::Response,
) -> Result<reqwest::Response, MediaError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(MediaError::Refused {
        action,
        status: status.as_u16(),
        detail: s3_error_detail(&text),
    })
}

/// The body of a successful answer.
async fn success_text(
    action: &'static str,
    response: reqwest::Response,
) -> Result<String, MediaError> {
    expect_success(action, response)
        .await?
        .text()
        .await
        .map_err(|e| MediaError::transport(action, &e))
}

/// `Code: Message` from an S3 error body, else its first 200 characters.
fn s3_error_detail(body: &str) -> String {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => body.chars().take(200).collect(),
    }
}
