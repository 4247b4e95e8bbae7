//! DNS over TCP (RFC 7766): length-prefixed messages, several per connection, answered in order
//! as they arrive (pipelining, §6.2.1.1). Connections are capped (in all and per client
//! address), a query must arrive whole within the idle timeout (so one byte a second does not
//! hold a connection), answers must be taken within the same time, and no connection lives
//! longer than its lifetime: a client that opens many, sends slowly or reads nothing cannot hold
//! the server's resources.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::answer::{MAX_RESPONSE, Transport, answer};
use crate::snapshot::Live;

pub use crate::model::TcpLimits as Limits;

/// A query over TCP longer than this closes the connection (real queries are a few hundred
/// octets; UDP takes at most 4096 too).
pub const MAX_QUERY: usize = 4096;

/// Open connections per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    fn take(&self, ip: IpAddr, max: usize) -> bool {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, ip: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

/// Bind a TCP listener (SO_REUSEADDR, so a restart does not wait for TIME_WAIT).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Accept and serve connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    live: Live,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "tcp connection limit reached; closing");
                    continue;
                };
                if !per_client.take(peer.ip(), limits.max_per_client) {
                    tracing::debug!(%peer, "tcp connections per client limit reached; closing");
                    continue;
                }
                let live = live.clone();
                let stop = stop.clone();
                let per_client = per_client.clone();
                tokio::spawn(async move {
                    let lifetime = limits.lifetime;
                    let _ = tokio::time::timeout(
                        lifetime,
                        connection(stream, peer.ip(), live, limits, stop),
                    )
                    .await;
                    per_client.give_back(peer.ip());
                    drop(permit);
                });
            }
            _ = stop.changed() => return,
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: std::net::IpAddr,
    live: Live,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut query = vec![0u8; MAX_QUERY];
    let mut out = vec![0u8; MAX_RESPONSE];
    loop {
        let read = async {
            let len = rd.read_u16().await? as usize;
            if len > MAX_QUERY {
                return Err(std::io::Error::other("query too long"));
            }
            rd.read_exact(&mut query[..len]).await?;
            Ok::<usize, std::io::Error>(len)
        };
        let len = tokio::select! {
            r = tokio::time::timeout(limits.idle_timeout, read) => match r {
                Ok(Ok(len)) => len,
                _ => break,
            },
            _ = stop.changed() => break,
        };
        let n = {
            let snap = live.load();
            answer(&snap, &query[..len], Transport::Tcp, peer, &mut out)
        };
        // Nothing to say to garbage over TCP: close.
        let Some(n) = n else { break };
        // A client that does not take its answers is dropped like one that does not ask.
        let write = async {
            wr.write_u16(n as u16).await?;
            wr.write_all(&out[..n]).await?;
            // Send pipelined answers together, but never hold one back waiting for more input.
            if rd.buffer().is_empty() {
                wr.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        if !matches!(
            tokio::time::timeout(limits.idle_timeout, write).await,
            Ok(Ok(()))
        ) {
            break;
        }
    }
    let _ = tokio::time::timeout(limits.idle_timeout, wr.flush()).await;
}
