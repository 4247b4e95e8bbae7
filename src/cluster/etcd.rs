//! The etcd task: one session at a time to one endpoint (the next one when it fails). A session
//! keeps this node's lease alive, writes its entry, its observations and the overrides taken
//! here, reads the whole view and then watches it. When it ends, the writer hears `Lost`, and
//! the task connects again; nothing waits for it meanwhile.

use std::collections::HashMap;
use std::time::Duration;

use etcdv3client::grpc::{CredentialInterceptor, TonicClient};
use etcdv3client::{Client, pb};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::{Change, Event, Keys, Link, NodeEntry, Observation, ProbeName, Publish, View};
use crate::health::overrides::{Override, OverrideTarget};
use crate::model;

type Etcd = Client<CredentialInterceptor<TonicClient>>;

/// A request to etcd that takes longer than this counts as a failure of the session.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Puts per transaction when this node's observations are written again (etcd's default
/// limit is 128 operations).
const TXN_OPS: usize = 100;

/// Start the etcd task for this node. `lease_ttl`: how long this node's observations outlive
/// it (a few probe intervals).
pub fn spawn(cluster: &model::Cluster, lease_ttl: Duration) -> Link {
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(256);
    let task = Task {
        keys: Keys {
            prefix: cluster.prefix.clone(),
        },
        c: cluster.clone(),
        ttl_secs: lease_ttl.as_secs().max(2) as i64,
        own: HashMap::new(),
        pending: Vec::new(),
        gone: Default::default(),
        contact: std::time::Instant::now(),
        lease: None,
        started_unix: unix_now(),
        events: event_tx,
        publish: publish_rx,
    };
    tokio::spawn(task.run());
    Link {
        publish: publish_tx,
        events: event_rx,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Pending {
    target: OverrideTarget,
    value: Option<Override>,
    /// When it was taken (a set's `set_unix`; for a clear, when the writer passed it on).
    taken_unix: u64,
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

struct Task {
    c: model::Cluster,
    keys: Keys,
    ttl_secs: i64,
    /// This node's observations, to write again under a new lease.
    own: HashMap<ProbeName, Observation>,
    /// Overrides taken while etcd was unreachable, written when it is back (the last one per
    /// target): an operator's drain is not lost to an outage. Whoever waits for one hears
    /// when it is written.
    pending: Vec<Pending>,
    /// This node's observations that ended (a probe gone at a reload) while etcd could not
    /// be told: deleted when it is back (a reused lease would otherwise keep them).
    gone: std::collections::HashSet<ProbeName>,
    /// When etcd last answered this node (a keep-alive or a request).
    contact: std::time::Instant,
    lease: Option<i64>,
    started_unix: u64,
    events: mpsc::Sender<Event>,
    publish: mpsc::UnboundedReceiver<Publish>,
}

/// Why a session ended.
enum End {
    /// The writer is gone: stop.
    Stopped,
    Failed(String),
}

impl From<etcdv3client::Error> for End {
    fn from(e: etcdv3client::Error) -> End {
        End::Failed(describe(&e))
    }
}

/// An etcd error as one line: the gRPC status message when there is one (the client's own
/// text carries the whole status with its headers).
fn describe(e: &etcdv3client::Error) -> String {
    let text = e.to_string();
    let message = text
        .split_once("message: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(m, _)| m)
        .filter(|m| !m.is_empty());
    message.map_or(text.clone(), str::to_string)
}

/// `fut`, or a failure after [`REQUEST_TIMEOUT`].
async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcdv3client::Error>>,
) -> Result<T, End> {
    match timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(End::Failed(format!("{what}: {}", describe(&e)))),
        Err(_) => Err(End::Failed(format!(
            "{what}: no answer within {}",
            humantime::format_duration(REQUEST_TIMEOUT)
        ))),
    }
}

/// The end of the key range that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Task {
    async fn run(mut self) {
        let mut attempt = 0usize;
        loop {
            let endpoint = self.c.etcd[attempt % self.c.etcd.len()].clone();
            match self.session(&endpoint).await {
                End::Stopped => return,
                End::Failed(why) => {
                    let why = format!("{endpoint}: {why}");
                    let lost = Event::Lost {
                        why,
                        last_contact: self.contact,
                    };
                    if self.events.send(lost).await.is_err() {
                        return;
                    }
                }
            }
            attempt += 1;
            // The next endpoint at once; a round over all of them once a second at most.
            let pause = if attempt.is_multiple_of(self.c.etcd.len()) {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(100)
            };
            if !self.wait_offline(pause).await {
                return;
            }
        }
    }

    /// Take the writer's publications for `pause` without etcd. False: the writer is gone.
    async fn wait_offline(&mut self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        loop {
            match tokio::time::timeout_at(until, self.publish.recv()).await {
                Err(_) => return true,
                Ok(None) => return false,
                Ok(Some(p)) => self.offline(p),
            }
        }
    }

    /// A publication while etcd is unreachable: remembered, written once it is back.
    fn offline(&mut self, p: Publish) {
        match p {
            Publish::Observation { probe, observation } => self.remember(probe, observation),
            Publish::Override {
                target,
                value,
                done,
            } => self.pend(target, value, Some(done)),
        }
    }

    fn remember(&mut self, probe: ProbeName, observation: Option<Observation>) {
        match observation {
            Some(o) => {
                self.gone.remove(&probe);
                self.own.insert(probe, o);
            }
            None => {
                self.own.remove(&probe);
                self.gone.insert(probe);
            }
        }
    }

    /// Take what the writer published meanwhile, without waiting: observations into `own`,
    /// overrides into `pending`. False: the writer is gone.
    fn drain_published(&mut self) -> bool {
        loop {
            match self.publish.try_recv() {
                Ok(p) => self.offline(p),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn pend(
        &mut self,
        target: OverrideTarget,
        value: Option<Override>,
        done: Option<oneshot::Sender<Result<(), String>>>,
    ) {
        let mut waiting: Vec<_> = done.into_iter().collect();
        if let Some(i) = self.pending.iter().position(|p| p.target == target) {
            waiting.extend(self.pending.remove(i).waiting);
        }
        let taken_unix = value.as_ref().map_or_else(unix_now, |o| o.set_unix);
        self.pending.push(Pending {
            target,
            value,
            taken_unix,
            waiting,
        });
    }

    async fn connect(&self, endpoint: &str) -> Result<Etcd, End> {
        let failed = |e: tonic::transport::Error| End::Failed(format!("cannot connect: {e}"));
        let mut ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(failed)?
            .connect_timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            // A peer that vanishes without a reset is noticed within seconds.
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(REQUEST_TIMEOUT)
            .keep_alive_while_idle(true);
        if endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.c.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| End::Failed(format!("{}: {e}", ca.display())))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&self.c.cert_file, &self.c.key_file) {
                let read = |p: &std::path::Path| {
                    std::fs::read(p).map_err(|e| End::Failed(format!("{}: {e}", p.display())))
                };
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            ep = ep.tls_config(tls).map_err(failed)?;
        }
        let channel = timeout(REQUEST_TIMEOUT * 2, ep.connect())
            .await
            .map_err(|_| End::Failed("cannot connect: timed out".into()))?
            .map_err(failed)?;
        let credential = match (&self.c.username, &self.c.password_file) {
            (Some(user), Some(file)) => {
                let password = std::fs::read_to_string(file)
                    .map_err(|e| End::Failed(format!("{}: {e}", file.display())))?;
                Some((
                    user.clone(),
                    password.trim_end_matches(['\r', '\n']).to_string(),
                ))
            }
            _ => None,
        };
        let service = CredentialInterceptor::new(
            credential,
            None::<tonic::metadata::AsciiMetadataValue>,
            TonicClient::new(channel),
        );
        Ok(Client::with_service(service))
    }

    async fn session(&mut self, endpoint: &str) -> End {
        match self.serve(endpoint).await {
            Ok(never) => match never {},
            Err(end) => end,
        }
    }

    async fn serve(&mut self, endpoint: &str) -> Result<std::convert::Infallible, End> {
        let mut etcd = self.connect(endpoint).await?;
        // This node's lease: the old one if it still has long enough to live through this
        // setup (its keys stay put), else a new one (the old keys move to it as they are
        // written again, and what is not written again ends with the old lease).
        let alive = match self.lease {
            Some(id) => {
                let req = pb::LeaseTimeToLiveRequest { id, keys: false };
                let ttl = bounded("lease", etcd.lease.lease_time_to_live(req))
                    .await?
                    .ttl;
                ttl > 2 * REQUEST_TIMEOUT.as_secs() as i64
            }
            None => false,
        };
        self.contact = std::time::Instant::now();
        if !alive {
            let req = pb::LeaseGrantRequest {
                ttl: self.ttl_secs,
                id: 0,
            };
            let granted = bounded("lease grant", etcd.lease.lease_grant(req)).await?;
            self.lease = Some(granted.id);
        }
        let lease = self.lease.unwrap_or_default();
        let entry = NodeEntry {
            started_unix: self.started_unix,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let entry = serde_json::to_vec(&entry).unwrap_or_default();
        self.put(&mut etcd, self.keys.node(&self.c.node), entry, lease)
            .await?;
        if !self.drain_published() {
            return Err(End::Stopped);
        }
        self.flush_pending(&mut etcd).await?;
        self.put_own(&mut etcd, lease).await?;
        for probe in self.gone.clone() {
            let key = self.keys.observation(&self.c.node, &probe);
            self.delete(&mut etcd, key).await?;
            self.gone.remove(&probe);
        }

        // The view, then every change after it.
        let prefix = self.keys.prefix.as_bytes().to_vec();
        let (mut view, revision) = self.read_view(&mut etcd, &prefix).await?;
        // Overrides the writer took while the view was read: written now (the watch brings
        // their echo), and in the view, so that it does not take them back meanwhile.
        if !self.drain_published() {
            return Err(End::Stopped);
        }
        for p in &self.pending {
            view.overrides.set(&p.target, p.value.clone());
        }
        self.flush_pending(&mut etcd).await?;
        let (watch_tx, watch_rx) = mpsc::channel(4);
        let create = pb::WatchCreateRequest {
            key: prefix.clone(),
            range_end: prefix_end(&prefix),
            start_revision: revision + 1,
            ..Default::default()
        };
        let _ = watch_tx.send(create.into()).await;
        let mut watch = bounded(
            "watch",
            etcd.watch
                .watch(tokio_stream::wrappers::ReceiverStream::new(watch_rx)),
        )
        .await?;
        let (keepalive_tx, keepalive_rx) = mpsc::channel(4);
        let ping = pb::LeaseKeepAliveRequest { id: lease };
        let _ = keepalive_tx.send(ping).await;
        let mut keepalive = bounded(
            "lease keep-alive",
            etcd.lease
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(keepalive_rx)),
        )
        .await?;
        if self.events.send(Event::View(view)).await.is_err() {
            return Err(End::Stopped);
        }

        let every = Duration::from_secs((self.ttl_secs as u64 / 3).max(1));
        let mut tick = tokio::time::interval(every);
        let mut answered = Instant::now();
        loop {
            tokio::select! {
                m = watch.message() => {
                    let resp = match m {
                        Ok(Some(r)) => r,
                        Ok(None) => return Err(End::Failed("the watch ended".into())),
                        Err(e) => return Err(End::Failed(format!("watch: {}", e.message()))),
                    };
                    if resp.canceled || resp.compact_revision > 0 {
                        return Err(End::Failed(format!("watch cancelled: {}", resp.cancel_reason)));
                    }
                    let changes: Vec<Change> = resp
                        .events
                        .iter()
                        .filter_map(|ev| {
                            let kv = ev.kv.as_ref()?;
                            let deleted = ev.r#type == pb::event::EventType::Delete as i32;
                            let value = (!deleted).then_some(kv.value.as_slice());
                            self.keys
                                .change(&kv.key, value)
                                .map_err(|e| tracing::debug!("cluster: skipped {e}"))
                                .ok()
                        })
                        .collect();
                    if !changes.is_empty() && self.events.send(Event::Changes(changes)).await.is_err() {
                        return Err(End::Stopped);
                    }
                }
                r = keepalive.message() => match r {
                    Ok(Some(r)) if r.ttl > 0 => {
                        answered = Instant::now();
                        self.contact = std::time::Instant::now();
                    }
                    Ok(Some(_)) => return Err(End::Failed("this node's lease expired".into())),
                    Ok(None) => return Err(End::Failed("lease keep-alive ended".into())),
                    Err(e) => return Err(End::Failed(format!("lease keep-alive: {}", e.message()))),
                },
                _ = tick.tick() => {
                    if answered.elapsed() > Duration::from_secs(self.ttl_secs as u64) {
                        return Err(End::Failed("lease keep-alive unanswered".into()));
                    }
                    if keepalive_tx.try_send(ping).is_err() {
                        return Err(End::Failed("lease keep-alive stalled".into()));
                    }
                }
                p = self.publish.recv() => match p {
                    None => return Err(End::Stopped),
                    Some(Publish::Observation { probe, observation }) => {
                        self.remember(probe, observation.clone());
                        let key = self.keys.observation(&self.c.node, &probe);
                        match observation {
                            Some(o) => {
                                let value = serde_json::to_vec(&o).unwrap_or_default();
                                self.put(&mut etcd, key, value, lease).await?;
                            }
                            None => {
                                self.delete(&mut etcd, key).await?;
                                self.gone.remove(&probe);
                            }
                        }
                    }
                    Some(Publish::Override { target, value, done }) => {
                        match self.write_override(&mut etcd, &target, value.clone()).await {
                            Ok(()) => {
                                let _ = done.send(Ok(()));
                            }
                            Err(e) => {
                                self.pend(target, value, Some(done));
                                return Err(e);
                            }
                        }
                    }
                },
            }
        }
    }

    /// Every key under the prefix, read in pages at one revision (a gRPC message has a size
    /// limit); the view they make, and the revision to watch from.
    async fn read_view(&self, etcd: &mut Etcd, prefix: &[u8]) -> Result<(View, i64), End> {
        const PAGE: i64 = 1000;
        let mut view = View::default();
        let mut from = prefix.to_vec();
        let mut revision = 0;
        loop {
            let range = pb::RangeRequest {
                key: from.clone(),
                range_end: prefix_end(prefix),
                limit: PAGE,
                revision,
                ..Default::default()
            };
            let page = bounded("read", etcd.kv.range(range)).await?;
            if revision == 0 {
                revision = page.header.as_ref().map_or(0, |h| h.revision);
            }
            for kv in &page.kvs {
                match self.keys.change(&kv.key, Some(&kv.value)) {
                    Ok(c) => view.apply(c),
                    Err(e) => tracing::debug!("cluster: skipped {e}"),
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => {
                    from = last.key.clone();
                    from.push(0);
                }
                _ => return Ok((view, revision)),
            }
        }
    }

    /// Write the overrides taken while etcd was away, unless they have expired meanwhile or
    /// etcd holds a newer one for the same target (set later, on another node).
    async fn flush_pending(&mut self, etcd: &mut Etcd) -> Result<(), End> {
        while let Some(p) = self.pending.pop() {
            let now = unix_now();
            let expired = p
                .value
                .as_ref()
                .and_then(|o| o.expires_unix)
                .is_some_and(|t| t <= now);
            let req = pb::RangeRequest {
                key: self.keys.override_of(&p.target).into_bytes(),
                ..Default::default()
            };
            let current = match bounded("read", etcd.kv.range(req)).await {
                Ok(r) => r
                    .kvs
                    .first()
                    .and_then(|kv| serde_json::from_slice::<Override>(&kv.value).ok()),
                Err(e) => {
                    self.pending.push(p);
                    return Err(e);
                }
            };
            let newer = current.as_ref().is_some_and(|c| c.set_unix > p.taken_unix);
            if expired || newer {
                tracing::info!(
                    "cluster: override of {} taken while etcd was unreachable is not written: {}",
                    p.target,
                    if expired {
                        "it has expired"
                    } else {
                        "etcd has a newer one"
                    }
                );
            } else {
                if let Err(e) = self.write_override(etcd, &p.target, p.value.clone()).await {
                    self.pending.push(p);
                    return Err(e);
                }
                tracing::info!(
                    "cluster: override of {} taken while etcd was unreachable is now written",
                    p.target
                );
            }
            for w in p.waiting {
                let _ = w.send(Ok(()));
            }
        }
        Ok(())
    }

    async fn put(
        &self,
        etcd: &mut Etcd,
        key: String,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<(), End> {
        let req = pb::PutRequest {
            key: key.into_bytes(),
            value,
            lease,
            ..Default::default()
        };
        bounded("write", etcd.kv.put(req)).await.map(drop)
    }

    async fn delete(&self, etcd: &mut Etcd, key: String) -> Result<(), End> {
        let req = pb::DeleteRangeRequest {
            key: key.into_bytes(),
            ..Default::default()
        };
        bounded("delete", etcd.kv.delete_range(req)).await.map(drop)
    }

    /// Every observation of this node, under `lease`, in transactions of [`TXN_OPS`] puts.
    async fn put_own(&self, etcd: &mut Etcd, lease: i64) -> Result<(), End> {
        let mut ops: Vec<pb::RequestOp> = self
            .own
            .iter()
            .map(|(probe, o)| pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: self.keys.observation(&self.c.node, probe).into_bytes(),
                    value: serde_json::to_vec(o).unwrap_or_default(),
                    lease,
                    ..Default::default()
                })),
            })
            .collect();
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(TXN_OPS));
            let txn = pb::TxnRequest {
                success: std::mem::replace(&mut ops, rest),
                ..Default::default()
            };
            bounded("write", etcd.kv.txn(txn)).await?;
        }
        Ok(())
    }

    /// An override with an expiry gets a lease of its own, so etcd deletes it on time even
    /// when no node is there to.
    async fn write_override(
        &self,
        etcd: &mut Etcd,
        target: &OverrideTarget,
        value: Option<Override>,
    ) -> Result<(), End> {
        let key = self.keys.override_of(target);
        let Some(o) = value else {
            return self.delete(etcd, key).await;
        };
        let lease = match o.expires_unix {
            Some(at) => {
                let ttl = at.saturating_sub(unix_now()).max(1) as i64;
                let req = pb::LeaseGrantRequest { ttl, id: 0 };
                bounded("lease grant", etcd.lease.lease_grant(req))
                    .await?
                    .id
            }
            None => 0,
        };
        let value = serde_json::to_vec(&o).unwrap_or_default();
        self.put(etcd, key, value, lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_are_the_next_key_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"/gslbd/"), b"/gslbd0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
    }

    #[test]
    fn etcd_errors_are_their_status_message() {
        let status = tonic::Status::invalid_argument(
            "etcdserver: authentication failed, invalid user id or password",
        );
        let e = etcdv3client::Error::from(status);
        assert_eq!(
            describe(&e),
            "etcdserver: authentication failed, invalid user id or password"
        );
        let plain = etcdv3client::Error::new(etcdv3client::ErrKind::ConnectFailed, "refused");
        assert!(describe(&plain).contains("refused"), "{}", describe(&plain));
    }
}
