//! `tcp`: connect; with `expect_banner`, read the server's greeting and match it. SMTP, IMAP
//! and POP servers speak first (`220 `, `* OK`, `+OK`), so a banner proves more than a connect.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{Failure, Outcome, down, excerpt, up};
use crate::model::Pattern;

/// How much of a greeting we read before giving up on a match.
const MAX_BANNER: usize = 1024;

pub async fn probe(addr: IpAddr, port: u16, expect_banner: Option<&Pattern>) -> Outcome {
    let mut stream = match connect(SocketAddr::new(addr, port)).await {
        Ok(s) => s,
        Err(e) => {
            let (failure, reason) = connect_error(&e);
            return down(failure, reason);
        }
    };
    let Some(pattern) = expect_banner else {
        return up("connected");
    };
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => {
                return down(
                    Failure::Banner,
                    format!("closed after banner {:?}", excerpt(&buf)),
                );
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return down(Failure::Refused, "connection reset");
            }
            Err(e) => return down(Failure::Other, format!("read failed: {e}")),
        }
        let text = String::from_utf8_lossy(&buf);
        if pattern.is_match(&text) {
            return up(format!("banner {:?}", excerpt(&buf)));
        }
        // A complete first line that does not match is a verdict; keep reading otherwise.
        if buf.contains(&b'\n') || buf.len() >= MAX_BANNER {
            return down(
                Failure::Banner,
                format!("banner {:?} does not match {pattern:?}", excerpt(&buf)),
            );
        }
    }
}

/// Connect to `to`, from the probe source address if one is set.
pub(super) async fn connect(to: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(source) = super::source_for(to.ip()) else {
        return TcpStream::connect(to).await;
    };
    let socket = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

pub(super) fn connect_error(e: &std::io::Error) -> (Failure, String) {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => (Failure::Refused, "connect refused".into()),
        std::io::ErrorKind::ConnectionReset => (Failure::Refused, "connection reset".into()),
        _ => (Failure::Other, format!("connect failed: {e}")),
    }
}
