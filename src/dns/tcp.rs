//! DNS over TCP (RFC 7766): length-prefixed messages, several per connection, answered in order
//! as they arrive (pipelining, §6.2.1.1). Connections are capped and idle ones closed, so a
//! client that opens many or sends nothing cannot hold the server's resources.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::answer::{MAX_RESPONSE, Transport, answer};
use crate::table::Live;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further ones are closed at once.
    pub max_connections: usize,
    /// A connection with no complete query for this long is closed (RFC 7766 §6.2.3).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            idle_timeout: Duration::from_secs(10),
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
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "tcp connection limit reached; closing");
                    continue;
                };
                let live = live.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    connection(stream, peer.ip(), live, limits, stop).await;
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
    let mut query = vec![0u8; u16::MAX as usize];
    let mut out = vec![0u8; MAX_RESPONSE];
    loop {
        let read = async {
            let len = rd.read_u16().await? as usize;
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
        if wr.write_u16(n as u16).await.is_err() || wr.write_all(&out[..n]).await.is_err() {
            break;
        }
        // Send pipelined answers together, but never hold one back waiting for more input.
        if rd.buffer().is_empty() && wr.flush().await.is_err() {
            break;
        }
    }
    let _ = wr.flush().await;
}
