//! The node's HTTP API on loopback (documented in docs/api.yaml): health, catalogue read
//! and edit, peers, and Prometheus metrics. Handlers do not touch the replica: they send a
//! request to the daemon's loop and wait for its answer, so every edit goes through the one
//! place that signs, persists and announces.

use std::collections::BTreeMap;

use accord_catalogue::edit::EditSpec;
use accord_catalogue::{Catalogue, Problem};
use accord_service::{Command, Reply};

use crate::artifacts::ReleaseView;
use crate::cmd::bundle::{clear_staging_tags, pin_releases, staging_tag};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The audit log's rows: sequence number and exact stored bytes.
pub type AuditRows = Vec<(u64, Vec<u8>)>;

/// What the daemon's loop answers to: reads it serialises itself, and writes it hands to
/// the core as they are (`accord_service::Command`, with its reply handle).
#[derive(Debug)]
pub enum ApiRequest {
    /// A write (edit, proposal, signatures, root) for the core.
    Command(Command),
    View(oneshot::Sender<NodeView>),
    /// The signed changes that touched a capability.
    History {
        id: String,
        reply: oneshot::Sender<Vec<accord_catalogue::history::Edit>>,
    },
    /// A proposal's statement, checked before its artifacts are streamed in.
    ProposeCheck {
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<crate::artifacts::Proposal, String>>,
    },
    Releases(oneshot::Sender<Vec<ReleaseView>>),
    /// Which blob a channel serves for one artifact of a release (its BLAKE3 and size).
    Artifact {
        /// `CAP@VER`, `CAP@VER#IDPREFIX` or `sha256:ID`.
        selector: String,
        name: String,
        production: bool,
        reply: oneshot::Sender<Result<([u8; 32], u64), String>>,
    },
    /// A release's statement with every approval collected so far (DSSE JSON).
    Statement {
        selector: String,
        reply: oneshot::Sender<Result<Vec<u8>, String>>,
    },
    /// The audit log's rows, raw (the client verifies the chain itself).
    Audit(oneshot::Sender<Result<AuditRows, String>>),
    /// An export's plan (`accord bundle export` at a running node): the catalogue since a
    /// receipt and the releases whose artifacts are all in `held`.
    ExportPlan {
        request: crate::cmd::bundle::PlanRequest,
        held: std::collections::HashSet<[u8; 32]>,
        reply: oneshot::Sender<Result<crate::cmd::bundle::ExportPlan, String>>,
    },
    /// A Sigstore trusted-root update the steering committee signed: applied if it verifies
    /// (`accord sigstore-root apply`); answers its sequence.
    SigstoreRoot {
        envelope: Vec<u8>,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogueView {
    pub catalogue: Catalogue,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerView {
    pub peer_id: String,
    pub jurisdiction: Option<String>,
    pub connected: bool,
}

/// Counters for `/metrics`: the core's (sync and promotion, kept once, in the core) and
/// the mirror's, in one flat JSON object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(flatten)]
    pub sync: accord_service::SyncMetrics,
    #[serde(flatten)]
    pub promotion: accord_service::PromotionMetrics,
    #[serde(flatten)]
    pub mirror: accord_service::MirrorMetrics,
    /// Per other jurisdiction, when this node's view of it was last brought up to date
    /// (Unix seconds: the end of a sync with one of its nodes, or a bundle import).
    #[serde(default)]
    pub view_updated_unix: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeView {
    pub jurisdiction: String,
    pub peer_id: String,
    pub root_version: u64,
    pub heads: Vec<String>,
    pub view: CatalogueView,
    pub peers: Vec<PeerView>,
    pub metrics: Metrics,
}

#[derive(Clone)]
struct Api {
    tx: mpsc::Sender<ApiRequest>,
    token: String,
    /// The node key, to prove to the CLI that this is the data directory's node before it
    /// sends the token (a stale `api.addr` may point at anything by now).
    identity: std::sync::Arc<accord_trust::SecretKey>,
    /// `Host` values a request may carry: this API's own address (DNS rebinding).
    hosts: std::sync::Arc<Vec<String>>,
    /// The blob store: proposals stream into it and artifacts stream out of it, so the API
    /// never reads or writes a path outside the data directory.
    store: accord_blobs::BlobStore,
    /// The data directory: an imported bundle's artifacts are staged in it.
    data_dir: std::path::PathBuf,
    /// One bundle import at a time: each clears what a killed one left (its staging
    /// directory and tags), which must not be another's still in use.
    importing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// What the node signs to prove who it is: a domain, the CLI's challenge, and the address
/// the CLI dialled (so the proof cannot be replayed at another address).
pub fn identity_message(challenge: &[u8; 32], addr: &str) -> Vec<u8> {
    let mut m = b"accord/api-identity/v1\0".to_vec();
    m.extend_from_slice(challenge);
    m.extend_from_slice(addr.as_bytes());
    m
}

type ApiError = (StatusCode, Json<serde_json::Value>);

fn error(status: StatusCode, msg: impl Into<String>) -> ApiError {
    (status, Json(serde_json::json!({ "error": msg.into() })))
}

impl Api {
    async fn view(&self) -> Result<NodeView, ApiError> {
        self.ask(ApiRequest::View).await
    }

    /// Sends a request to the loop and waits for its answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ApiRequest,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        let gone = || error(StatusCode::SERVICE_UNAVAILABLE, "node is shutting down");
        self.tx.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Hands a write to the core and waits for its answer.
    async fn command<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Result<T, String>, ApiError> {
        self.ask(|tx| {
            ApiRequest::Command(make(Reply::new(move |answer| {
                // The handler may have gone (client hung up); the write stands regardless.
                let _ = tx.send(answer);
            })))
        })
        .await
    }
}

/// The API for a node listening on `bound`.
pub fn router(
    tx: mpsc::Sender<ApiRequest>,
    token: String,
    node_key: accord_trust::SecretKey,
    bound: std::net::SocketAddr,
    store: accord_blobs::BlobStore,
    data_dir: std::path::PathBuf,
) -> Router {
    let mut hosts = vec![bound.to_string()];
    if bound.ip().is_loopback() {
        hosts.push(format!("localhost:{}", bound.port()));
    }
    let api = Api {
        tx,
        token,
        identity: std::sync::Arc::new(node_key),
        hosts: std::sync::Arc::new(hosts),
        store,
        data_dir,
        importing: std::sync::Arc::new(tokio::sync::Mutex::new(())),
    };
    Router::new()
        .route("/health", get(health))
        .route("/v1/identity", get(identity))
        .route("/v1/catalogue", get(catalogue))
        .route("/v1/catalogue/{id}", get(capability).post(edit))
        .route("/v1/catalogue/{id}/history", get(history))
        .route("/v1/peers", get(peers))
        .route("/v1/root", axum::routing::post(apply_root))
        .route(
            "/v1/sigstore-root",
            axum::routing::post(apply_sigstore_root),
        )
        .route("/v1/bundles", axum::routing::post(import_bundle))
        .route("/v1/bundles/plan", axum::routing::post(export_plan))
        .route("/v1/blobs/{blake3}", get(blob))
        .route(
            "/v1/releases",
            get(releases)
                .post(propose)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/releases/{selector}", get(release))
        .route("/v1/releases/{selector}/artifacts/{name}", get(artifact))
        .route("/v1/releases/{selector}/statement", get(statement))
        .route("/v1/production", get(production))
        .route("/v1/signatures", axum::routing::post(signatures))
        .route("/v1/audit", get(audit))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            only_own_host,
        ))
        .with_state(api)
}

/// Refuses a request whose `Host` is not this API's address: a web page the operator opens
/// can make the browser send requests to 127.0.0.1 under its own name (DNS rebinding), and
/// this is where that ends.
async fn only_own_host(
    State(api): State<Api>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !api.hosts.iter().any(|h| h == host) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {:?} is not this node's API address; refused",
                host.chars().take(80).collect::<String>()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

#[derive(Debug, Deserialize)]
struct Challenge {
    challenge: String,
}

/// Signs the CLI's challenge with the node key.
async fn identity(
    State(api): State<Api>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<Challenge>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut challenge = [0u8; 32];
    hex::decode_to_slice(&q.challenge, &mut challenge)
        .map_err(|_| error(StatusCode::BAD_REQUEST, "challenge must be 64 hex digits"))?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let sig = api.identity.sign(&identity_message(&challenge, host));
    Ok(Json(serde_json::json!({
        "keyid": api.identity.id().to_string(),
        "signature": hex::encode(sig),
    })))
}

async fn health(State(api): State<Api>) -> Result<Json<serde_json::Value>, ApiError> {
    let v = api.view().await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "jurisdiction": v.jurisdiction,
        "peer_id": v.peer_id,
        "root_version": v.root_version,
        "peers_connected": v.peers.iter().filter(|p| p.connected).count(),
        "heads": v.heads,
    })))
}

async fn catalogue(State(api): State<Api>) -> Result<Json<CatalogueView>, ApiError> {
    Ok(Json(api.view().await?.view))
}

async fn capability(State(api): State<Api>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let v = api.view().await?;
    match v.view.catalogue.capability(&id) {
        Some(c) => Ok(Json(c.clone()).into_response()),
        None => Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown capability {id}"),
        )),
    }
}

async fn history(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Vec<accord_catalogue::history::Edit>>, ApiError> {
    if accord_catalogue::schema::check_capability_id(&id).is_err()
        || api.view().await?.view.catalogue.capability(&id).is_none()
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown capability {id}"),
        ));
    }
    Ok(Json(
        api.ask(|reply| ApiRequest::History { id, reply }).await?,
    ))
}

async fn edit(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&api, &headers)?;
    if body.len() > 64 * 1024 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "edit larger than 64 KiB",
        ));
    }
    let spec: EditSpec = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("not an edit: {e}")))?;
    if spec.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "nothing to edit"));
    }
    match api
        .command(|reply| Command::Edit {
            capability: id,
            spec,
            reply,
        })
        .await?
    {
        Ok(change) => Ok(Json(serde_json::json!({ "change": change }))),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// Writes need the token from the data dir: only someone who can read the node's files may
/// change what the node signs.
fn authorize(api: &Api, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or_default();
    if constant_time_eq(presented.as_bytes(), api.token.as_bytes()) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong API token (api.token in the data dir)",
        ))
    }
}

async fn apply_root(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&api, &headers)?;
    let bytes = bounded(&body, accord_protocol::limits::MAX_ROOT_BYTES, "root")?;
    let version = api
        .command(|reply| Command::AdoptRoot { bytes, reply })
        .await?
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(serde_json::json!({ "root_version": version })))
}

/// A small document sent whole, refused past `max` bytes.
fn bounded(body: &axum::body::Bytes, max: usize, what: &str) -> Result<Vec<u8>, ApiError> {
    if body.len() > max {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} larger than {} KiB", max >> 10),
        ));
    }
    Ok(body.to_vec())
}

/// `accord bundle import` into this running node (issue 16): the bundle streams in; its
/// artifacts are staged in the data dir with their digests checked as they pass; only when
/// the whole bundle has been read do they enter the blob store (under staging tags), then
/// the catalogue's changes go through the core like a peer's message, all or nothing; then
/// the releases' own tags replace the staging ones. A bad part or a crash before the core
/// commits leaves the catalogue as it was (verified blobs under staging tags at most, which
/// nothing names and the next import's staging removes with its directory).
async fn import_bundle(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    use futures::StreamExt as _;
    authorize(&api, &headers)?;
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let _one_at_a_time = api.importing.lock().await;
    // Staging tags a killed (or abandoned) import left: the blobs they hold are named by
    // nothing else until a release pins them.
    let _ = clear_staging_tags(&api.store).await;
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::convert::Infallible>>(8);
    let data_dir = api.data_dir.clone();
    let reading = tokio::task::spawn_blocking(move || {
        let staged =
            crate::cmd::bundle::stage(crate::cmd::bundle::ChannelReader::new(rx), &data_dir)?;
        crate::cmd::bundle::check_statements(&staged.contents)?;
        anyhow::Ok(staged)
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| bad(format!("the upload broke off: {e}")))?;
        if tx.send(Ok(chunk)).await.is_err() {
            break; // the reader stopped: it says why below
        }
    }
    drop(tx);
    let staged = reading
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| bad(format!("{e:#}; nothing was imported")))?;
    crate::testpoint::pause("bundle-verified");
    // Until the catalogue is in, this import's staging tags go with any failure.
    let unpin_staging = || async {
        let _ = clear_staging_tags(&api.store).await;
    };
    for (a, path) in &staged.artifacts {
        let imported = api.store.import(path, &staging_tag(a), |_| {}).await;
        match imported {
            Ok((hash, size)) if hash == a.blake3 && size == a.size => {}
            Ok(_) => {
                unpin_staging().await;
                return Err(bad(format!(
                    "artifact {} changed in the staging directory; nothing was imported",
                    a.name
                )));
            }
            Err(e) => {
                unpin_staging().await;
                return Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
            }
        }
    }
    crate::testpoint::pause("bundle-artifacts-in");
    let export = staged.contents.export.clone();
    let message = staged.contents.catalogue.clone();
    let signed = accord_bundle::ExportInfo::signed_bytes(
        &export.id,
        &export.jurisdiction,
        export.at,
        &message,
    );
    let answer = api
        .command(|reply| Command::ImportCatalogue {
            message,
            exporter: export.jurisdiction.clone(),
            exported_at: export.at,
            signed,
            key: export.key.clone(),
            signature: export.signature.clone(),
            reply,
        })
        .await;
    let (heads, changes) = match answer {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            unpin_staging().await;
            return Err(bad(format!("{e}; nothing was imported")));
        }
        Err(e) => {
            unpin_staging().await;
            return Err(e);
        }
    };
    crate::testpoint::pause("bundle-committed");
    // Committed. The imported artifacts are held under their releases' own tags from now
    // on (the core pins what it mirrors too); the staging tags go whatever happens.
    let pinned = pin_releases(&api.store, &staged.contents.releases).await;
    unpin_staging().await;
    if let Err(e) = pinned {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the bundle's catalogue was imported, but {e:#}; import it again"),
        ));
    }
    // The receipt: every artifact of the catalogue's releases the store now holds whole.
    let views = api.ask(ApiRequest::Releases).await?;
    let whole = held_whole(&api.store, &views).await;
    let held: std::collections::BTreeSet<String> = views
        .iter()
        .flat_map(|v| &v.artifacts)
        .filter(|a| a.blake3_bytes().is_some_and(|h| whole.contains(&h)))
        .map(|a| a.sha256.clone())
        .collect();
    let receipt = crate::cmd::bundle::Receipt {
        export: export.id.clone(),
        heads,
        artifacts: held.into_iter().collect(),
        imported_at: accord_protocol::Timestamp::now().unix(),
    };
    Ok(Json(serde_json::json!({
        "receipt": receipt,
        "changes": changes,
        "artifacts": staged.artifacts.len(),
        "jurisdiction": export.jurisdiction,
    })))
}

/// `accord bundle export` at a running node: what to write (the CLI writes it, fetching
/// each artifact from `/v1/blobs/{blake3}`). Held means held whole by this node's store.
async fn export_plan(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<crate::cmd::bundle::ExportPlan>, ApiError> {
    authorize(&api, &headers)?;
    let body = bounded(&body, 16 << 20, "export request")?;
    let request: crate::cmd::bundle::PlanRequest = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("not an export request: {e}"),
        )
    })?;
    let held = held_whole(&api.store, &api.ask(ApiRequest::Releases).await?).await;
    let plan = api
        .ask(|reply| ApiRequest::ExportPlan {
            request,
            held,
            reply,
        })
        .await?
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(plan))
}

/// The artifacts of `views` (BLAKE3) this node's store holds whole.
async fn held_whole(
    store: &accord_blobs::BlobStore,
    views: &[ReleaseView],
) -> std::collections::HashSet<[u8; 32]> {
    let mut held = std::collections::HashSet::new();
    for h in views
        .iter()
        .flat_map(|v| &v.artifacts)
        .filter_map(crate::artifacts::ArtifactView::blake3_bytes)
    {
        if store.local(&h).await.is_ok_and(|l| l.complete) {
            held.insert(h);
        }
    }
    held
}

/// `GET /v1/blobs/{blake3}`: a blob this node holds whole, verified against its BLAKE3
/// tree as it is read (for an export written by the CLI, which hashes it again).
async fn blob(
    State(api): State<Api>,
    Path(blake3): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&api, &headers)?;
    let hash = <[u8; 32]>::try_from(hex::decode(&blake3).unwrap_or_default()).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "not a BLAKE3 digest (64 hex digits)",
        )
    })?;
    let local = api
        .store
        .local(&hash)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if !local.complete {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("blob {blake3} is not held whole here"),
        ));
    }
    Ok(blob_response(&api.store, hash, local.bytes))
}

/// A blob's bytes as a streamed answer, verified against its BLAKE3 tree as they are read.
fn blob_response(store: &accord_blobs::BlobStore, hash: [u8; 32], size: u64) -> Response {
    let rx = store.read_verified(hash);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map_err(|e| std::io::Error::other(e.to_string())), rx))
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn apply_sigstore_root(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&api, &headers)?;
    let envelope = bounded(&body, accord_protocol::limits::MAX_ENVELOPE_BYTES, "update")?;
    let sequence = api
        .ask(|reply| ApiRequest::SigstoreRoot { envelope, reply })
        .await?
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(serde_json::json!({ "sequence": sequence })))
}

async fn releases(State(api): State<Api>) -> Result<Json<Vec<ReleaseView>>, ApiError> {
    Ok(Json(api.ask(ApiRequest::Releases).await?))
}

async fn release(
    State(api): State<Api>,
    Path(selector): Path<String>,
) -> Result<Json<ReleaseView>, ApiError> {
    let sel: accord_protocol::Selector =
        selector
            .parse()
            .map_err(|e: accord_protocol::ProtocolError| {
                error(StatusCode::BAD_REQUEST, e.to_string())
            })?;
    let mut found: Vec<ReleaseView> = api
        .ask(ApiRequest::Releases)
        .await?
        .into_iter()
        .filter(|r| r.matches(&sel))
        .collect();
    match found.len() {
        1 => Ok(Json(found.remove(0))),
        0 => Err(error(
            StatusCode::NOT_FOUND,
            format!("no release {sel} in the catalogue"),
        )),
        n => {
            let labels: Vec<String> = found.iter().map(ReleaseView::label).collect();
            Err(error(
                StatusCode::CONFLICT,
                format!(
                    "{sel} names {n} conflicting statements: {}; name one as CAP@VER#IDPREFIX",
                    labels.join(", ")
                ),
            ))
        }
    }
}

/// The releases live in this node's production.
async fn production(State(api): State<Api>) -> Result<Json<Vec<ReleaseView>>, ApiError> {
    let v = api.view().await?;
    let mut live = api.ask(ApiRequest::Releases).await?;
    live.retain(|r| r.promoted_on.contains(&v.jurisdiction));
    Ok(Json(live))
}

async fn statement(
    State(api): State<Api>,
    Path(selector): Path<String>,
) -> Result<Response, ApiError> {
    match api
        .ask(|reply| ApiRequest::Statement { selector, reply })
        .await?
    {
        Ok(bytes) => Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response()),
        Err(e) => Err(error(StatusCode::NOT_FOUND, e)),
    }
}

async fn signatures(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<accord_promote::admit::Imported>, ApiError> {
    authorize(&api, &headers)?;
    if body.len() > accord_protocol::limits::MAX_ENVELOPE_BYTES {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "envelope too large"));
    }
    let envelope = body.to_vec();
    match api
        .command(|reply| Command::Sign { envelope, reply })
        .await?
    {
        Ok(done) => Ok(Json(done)),
        Err(e) => Err(error(StatusCode::BAD_REQUEST, e)),
    }
}

/// One audit row: its sequence number and the exact stored bytes, hex.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRow {
    pub seq: u64,
    pub row: String,
}

async fn audit(State(api): State<Api>) -> Result<Json<Vec<AuditRow>>, ApiError> {
    match api.ask(ApiRequest::Audit).await? {
        Ok(rows) => Ok(Json(
            rows.into_iter()
                .map(|(seq, r)| AuditRow {
                    seq,
                    row: hex::encode(r),
                })
                .collect(),
        )),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e)),
    }
}

/// Media type of a proposal: `u32 big-endian N | N bytes of {"envelope": DSSE} | the
/// artifacts' bytes, each exactly its size, in the statement's order`.
pub const PROPOSAL_TYPE: &str = "application/vnd.accord.proposal";

/// `POST /v1/releases`: a proposal streamed in. The statement is checked first (by the
/// loop, against the catalogue), then each artifact goes straight into the blob store and
/// must hash to what the statement says, then the loop records the statement. The node
/// reads no path: what it imports is exactly what was sent.
async fn propose(
    State(api): State<Api>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&api, &headers)?;
    let bad = |m: String| error(StatusCode::BAD_REQUEST, m);
    let mut body = Framed {
        stream: body.into_data_stream(),
        buf: bytes::Bytes::new(),
    };
    let len = body.read_exact(4).await.map_err(bad)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > accord_protocol::limits::MAX_ENVELOPE_BYTES + 64 * 1024 {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "proposal header too large",
        ));
    }
    let header: serde_json::Value =
        serde_json::from_slice(&body.read_exact(len).await.map_err(bad)?)
            .map_err(|e| bad(format!("not a proposal: {e}")))?;
    let envelope = serde_json::to_vec(&header["envelope"]).map_err(|e| bad(e.to_string()))?;
    let proposal = api
        .ask(|reply| ApiRequest::ProposeCheck { envelope, reply })
        .await?
        .map_err(bad)?;
    let mut pinned = Vec::new();
    for a in &proposal.artifacts {
        let tag = accord_mirror::wants::pin_tag(&proposal.id, &a.name);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        let rx =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let (pumped, imported) =
            tokio::join!(body.pump(a.size, tx), api.store.import_stream(rx, &tag));
        pinned.push(tag);
        crate::testpoint::pause("propose-import");
        // Both digests the leads will sign must be the bytes' own: the store checks BLAKE3,
        // the pump hashes SHA-256 as the bytes pass.
        let outcome = pumped.and_then(|sha256| imported.map_err(|e| e.to_string()).map(|i| (sha256, i))).and_then(|(sha256, (hash, size))| {
            if hash == a.blake3 && size == a.size && sha256 == a.sha256 {
                Ok(())
            } else {
                Err(format!(
                    "{}: the bytes sent have SHA-256 {}, BLAKE3 {} and {size} bytes, the statement says {}, {} and {}",
                    a.name,
                    hex::encode(sha256),
                    hex::encode(hash),
                    hex::encode(a.sha256),
                    hex::encode(a.blake3),
                    a.size
                ))
            }
        });
        if let Err(e) = outcome {
            for t in &pinned {
                let _ = api.store.unpin(t).await;
            }
            return Err(bad(e));
        }
    }
    if !body.at_end().await {
        for t in &pinned {
            let _ = api.store.unpin(t).await;
        }
        return Err(bad("bytes after the last artifact".into()));
    }
    match api
        .command(|reply| Command::Propose { proposal, reply })
        .await?
    {
        Ok(label) => Ok(Json(serde_json::json!({ "release": label }))),
        Err(e) => Err(bad(e)),
    }
}

/// A request body read as framed parts.
struct Framed {
    stream: axum::body::BodyDataStream,
    buf: bytes::Bytes,
}

impl Framed {
    async fn next(&mut self) -> Result<Option<bytes::Bytes>, String> {
        use futures::StreamExt;
        if !self.buf.is_empty() {
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        match self.stream.next().await {
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(format!("the request body broke off: {e}")),
            None => Ok(None),
        }
    }

    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(n.min(1 << 20));
        while out.len() < n {
            let mut chunk = self.next().await?.ok_or("the request body ended early")?;
            let take = (n - out.len()).min(chunk.len());
            out.extend_from_slice(&chunk.split_to(take));
            self.buf = chunk;
        }
        Ok(out)
    }

    /// Sends exactly `n` bytes of the body into `tx`.
    /// Sends the next `n` bytes of the body to `tx`; returns their SHA-256.
    async fn pump(
        &mut self,
        mut n: u64,
        tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    ) -> Result<[u8; 32], String> {
        use sha2::Digest as _;
        let mut sha256 = sha2::Sha256::new();
        while n > 0 {
            let mut chunk = self.next().await?.ok_or("the request body ended early")?;
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(chunk.len());
            let part = chunk.split_to(take);
            self.buf = chunk;
            n -= part.len() as u64;
            sha256.update(&part);
            if tx.send(Ok(part)).await.is_err() {
                return Err("the store stopped reading".into());
            }
        }
        Ok(sha256.finalize().into())
    }

    async fn at_end(&mut self) -> bool {
        matches!(self.next().await, Ok(None))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelQuery {
    #[serde(default)]
    channel: Option<String>,
}

/// `GET /v1/releases/{selector}/artifacts/{name}`: one artifact's bytes, from the staging
/// or the production channel (the blob this node pinned when it promoted), verified
/// against its BLAKE3 tree as it is read. The client checks both digests of what it got.
async fn artifact(
    State(api): State<Api>,
    Path((selector, name)): Path<(String, String)>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ChannelQuery>,
) -> Result<Response, ApiError> {
    authorize(&api, &headers)?;
    let production = match q.channel.as_deref() {
        None | Some("staging") => false,
        Some("production") => true,
        Some(other) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("unknown channel {other:?} (staging or production)"),
            ));
        }
    };
    let (hash, size) = api
        .ask(|reply| ApiRequest::Artifact {
            selector,
            name,
            production,
            reply,
        })
        .await?
        .map_err(|e| error(StatusCode::CONFLICT, e))?;
    Ok(blob_response(&api.store, hash, size))
}

async fn peers(State(api): State<Api>) -> Result<Json<Vec<PeerView>>, ApiError> {
    Ok(Json(api.view().await?.peers))
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let v = api.view().await?;
    let m = &v.metrics;
    let now = accord_protocol::Timestamp::now().unix();
    let age = if m.sync.last_change_unix == 0 {
        0
    } else {
        now - m.sync.last_change_unix
    };
    let mut gauges: BTreeMap<&str, (&str, String)> = BTreeMap::new();
    gauges.insert(
        "accord_peers_connected",
        (
            "gauge",
            v.peers.iter().filter(|p| p.connected).count().to_string(),
        ),
    );
    gauges.insert(
        "accord_sync_messages_received_total",
        ("counter", m.sync.sync_messages_in.to_string()),
    );
    gauges.insert(
        "accord_sync_messages_sent_total",
        ("counter", m.sync.sync_messages_out.to_string()),
    );
    gauges.insert(
        "accord_sync_bytes_received_total",
        ("counter", m.sync.sync_bytes_in.to_string()),
    );
    gauges.insert(
        "accord_sync_bytes_sent_total",
        ("counter", m.sync.sync_bytes_out.to_string()),
    );
    gauges.insert(
        "accord_sync_rejected_messages_total",
        ("counter", m.sync.rejected_messages.to_string()),
    );
    gauges.insert(
        "accord_catalogue_changes_applied_total",
        ("counter", m.sync.changes_applied.to_string()),
    );
    gauges.insert(
        "accord_catalogue_heads_age_seconds",
        ("gauge", age.to_string()),
    );
    gauges.insert(
        "accord_sync_unverifiable_messages_total",
        ("counter", m.sync.unverifiable_messages.to_string()),
    );
    gauges.insert(
        "accord_release_equivocations",
        ("gauge", m.promotion.equivocations.to_string()),
    );
    gauges.insert(
        "accord_peer_bans_total",
        ("counter", m.sync.bans.to_string()),
    );
    gauges.insert(
        "accord_sync_rate_limited_total",
        ("counter", m.sync.rate_limited.to_string()),
    );
    gauges.insert("accord_root_version", ("gauge", v.root_version.to_string()));
    gauges.insert(
        "accord_root_expires_in_seconds",
        ("gauge", (m.sync.root_expires_unix - now).to_string()),
    );
    gauges.insert(
        "accord_root_expiry_warning_seconds",
        ("gauge", m.sync.root_expiry_warning_secs.to_string()),
    );
    gauges.insert(
        "accord_blob_corrupt_total",
        ("counter", m.mirror.blob_corrupt.to_string()),
    );
    gauges.insert(
        "accord_blob_stalled_total",
        ("counter", m.mirror.blob_stalled.to_string()),
    );
    gauges.insert(
        "accord_blob_fetch_failures_total",
        ("counter", m.mirror.blob_fetch_failures.to_string()),
    );
    gauges.insert(
        "accord_mirror_queue_length",
        ("gauge", m.mirror.mirror_queue.to_string()),
    );
    gauges.insert(
        "accord_promotions_total",
        ("counter", m.promotion.promotions.to_string()),
    );
    gauges.insert(
        "accord_recalls_total",
        ("counter", m.promotion.recalls.to_string()),
    );
    gauges.insert(
        "accord_hook_failures_total",
        ("counter", m.promotion.hook_failures.to_string()),
    );
    gauges.insert(
        "accord_releases_live",
        ("gauge", m.promotion.releases_live.to_string()),
    );
    gauges.insert(
        "accord_mirror_held_back_releases",
        ("gauge", m.promotion.held_back.to_string()),
    );
    let mut out = String::new();
    out.push_str("# TYPE accord_view_age_seconds gauge\n");
    for (other, at) in &m.view_updated_unix {
        out.push_str(&format!(
            "accord_view_age_seconds{{jurisdiction=\"{}\",of=\"{other}\"}} {}\n",
            v.jurisdiction,
            (now - at).max(0)
        ));
    }
    out.push_str("# TYPE accord_mirror_staging_bytes gauge\n");
    for (proposer, bytes) in &m.promotion.staged_bytes {
        out.push_str(&format!(
            "accord_mirror_staging_bytes{{jurisdiction=\"{}\",proposer=\"{proposer}\"}} {bytes}\n",
            v.jurisdiction
        ));
    }
    out.push_str("# TYPE accord_blob_bytes_fetched_total counter\n");
    for (peer, bytes) in &m.mirror.blob_bytes_fetched {
        out.push_str(&format!(
            "accord_blob_bytes_fetched_total{{jurisdiction=\"{}\",peer=\"{peer}\"}} {bytes}\n",
            v.jurisdiction
        ));
    }
    for (name, (kind, value)) in gauges {
        out.push_str(&format!(
            "# TYPE {name} {kind}\n{name}{{jurisdiction=\"{}\"}} {value}\n",
            v.jurisdiction
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
