//! Ethernet frames of DNS over UDP, as AF_XDP hands them over and takes them back: the query's
//! headers read, the reply's headers written around the answer, checksums computed.
//!
//! The XDP program sends only UDP to port 53 of our addresses here; a frame is still read as
//! hostile, and anything that is not plainly a query (IPv4 options or fragments, IPv6
//! extension headers, lengths that disagree) is dropped. Incoming checksums are not verified:
//! a packet from a local socket on a veth or an offloading NIC carries only a partial one.

use std::net::IpAddr;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const PROTO_UDP: u8 = 17;
/// The TTL and hop limit of replies, as Linux's default.
const HOP_LIMIT: u8 = 64;

/// A query frame, read: where its DNS message is and whom to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// The client's address (the IP source).
    pub peer: IpAddr,
    /// The DNS message: `frame[payload.0..payload.1]`. `payload.0` is also the length of the
    /// Ethernet, IP and UDP headers, where the reply's payload starts too.
    pub payload: (usize, usize),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Read a query frame. `None`: not a plain UDP datagram to port 53 (dropped).
pub fn parse(frame: &[u8]) -> Option<Query> {
    // To a group address (broadcast, multicast): not a query to us, whoever else it is for.
    if frame.len() < ETH_LEN || frame[0] & 1 != 0 {
        return None;
    }
    let (peer, udp, ip_end) = match be16(frame, 12) {
        ETH_P_IP => {
            let ip = frame.get(ETH_LEN..ETH_LEN + IPV4_LEN)?;
            // Version 4, no options; not a fragment (MF clear, offset 0); UDP.
            if ip[0] != 0x45 || be16(ip, 6) & 0x3fff != 0 || ip[9] != PROTO_UDP {
                return None;
            }
            let total = usize::from(be16(ip, 2));
            let peer = IpAddr::from([ip[12], ip[13], ip[14], ip[15]]);
            (peer, ETH_LEN + IPV4_LEN, ETH_LEN + total)
        }
        ETH_P_IPV6 => {
            let ip = frame.get(ETH_LEN..ETH_LEN + IPV6_LEN)?;
            if ip[0] >> 4 != 6 || ip[6] != PROTO_UDP {
                return None;
            }
            let payload = usize::from(be16(ip, 4));
            let mut src = [0u8; 16];
            src.copy_from_slice(&ip[8..24]);
            (
                IpAddr::from(src),
                ETH_LEN + IPV6_LEN,
                ETH_LEN + IPV6_LEN + payload,
            )
        }
        _ => return None,
    };
    // The IP length covers the UDP datagram; the frame may be longer (Ethernet padding).
    if ip_end > frame.len() || ip_end < udp + UDP_LEN {
        return None;
    }
    let u = &frame[udp..udp + UDP_LEN];
    let udp_len = usize::from(be16(u, 4));
    if be16(u, 2) != 53 || be16(u, 0) == 0 || udp_len < UDP_LEN || udp + udp_len > ip_end {
        return None;
    }
    // Sources the kernel would drop as martians, and that no reply can reach.
    if !routable(peer) {
        return None;
    }
    Some(Query {
        peer,
        payload: (udp + UDP_LEN, udp + udp_len),
    })
}

/// Whether `a` can be a client: not unspecified, loopback, multicast, broadcast, or (IPv6) an
/// IPv4-mapped address.
fn routable(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// Write the reply's headers into `reply`, whose `reply[q.payload.0..q.payload.0 + len]` already
/// holds the DNS answer: addresses, ports and MACs of `query` swapped, lengths and checksums
/// set. Returns the frame's length.
pub fn reply(query: &[u8], q: &Query, reply: &mut [u8], len: usize) -> usize {
    let udp = q.payload.0 - UDP_LEN;
    let udp_len = UDP_LEN + len;
    // Ethernet: back to where it came from.
    reply[0..6].copy_from_slice(&query[6..12]);
    reply[6..12].copy_from_slice(&query[0..6]);
    reply[12..14].copy_from_slice(&query[12..14]);
    let pseudo = if udp == ETH_LEN + IPV4_LEN {
        let (qi, ri) = (&query[ETH_LEN..], &mut reply[ETH_LEN..ETH_LEN + IPV4_LEN]);
        ri[0] = 0x45;
        ri[1] = 0;
        ri[2..4].copy_from_slice(&((IPV4_LEN + udp_len) as u16).to_be_bytes());
        // No identification needed: don't fragment (RFC 6864).
        ri[4..6].fill(0);
        ri[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
        ri[8] = HOP_LIMIT;
        ri[9] = PROTO_UDP;
        ri[10..12].fill(0);
        ri[12..16].copy_from_slice(&qi[16..20]);
        ri[16..20].copy_from_slice(&qi[12..16]);
        let c = !fold(sum(&ri[..IPV4_LEN], 0));
        ri[10..12].copy_from_slice(&c.to_be_bytes());
        sum(&ri[12..20], 0)
    } else {
        let (qi, ri) = (&query[ETH_LEN..], &mut reply[ETH_LEN..ETH_LEN + IPV6_LEN]);
        // Version 6, the query's traffic class, no flow label.
        let tc = (be16(qi, 0) >> 4) & 0xff;
        ri[0..4].copy_from_slice(&((6u32 << 28) | (u32::from(tc) << 20)).to_be_bytes());
        ri[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        ri[6] = PROTO_UDP;
        ri[7] = HOP_LIMIT;
        ri[8..24].copy_from_slice(&qi[24..40]);
        ri[24..40].copy_from_slice(&qi[8..24]);
        sum(&ri[8..40], 0)
    };
    let (qu, ru) = (&query[udp..], &mut reply[udp..udp + UDP_LEN]);
    ru[0..2].copy_from_slice(&qu[2..4]);
    ru[2..4].copy_from_slice(&qu[0..2]);
    ru[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    ru[6..8].fill(0);
    // The pseudo-header: addresses (summed above), protocol and UDP length.
    let pseudo = pseudo + u64::from(PROTO_UDP) + udp_len as u64;
    let c = !fold(sum(&reply[udp..udp + udp_len], pseudo));
    // RFC 768: a computed 0 is sent as all ones (0 means "no checksum" in IPv4).
    let c = if c == 0 { 0xffff } else { c };
    reply[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
    udp + udp_len
}

/// The one's-complement sum of `b` as 16-bit big-endian words (a last odd byte padded with
/// zero), added to `acc`, not yet folded.
fn sum(b: &[u8], mut acc: u64) -> u64 {
    let mut words = b.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// A query frame as a client's stack would build it (checksums right).
    fn frame(src: IpAddr, dst: IpAddr, sport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&SERVER_MAC);
        f.extend_from_slice(&CLIENT_MAC);
        let udp_len = (UDP_LEN + payload.len()) as u16;
        let mut udp = Vec::new();
        udp.extend_from_slice(&sport.to_be_bytes());
        udp.extend_from_slice(&53u16.to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        let addrs = |a: IpAddr| match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let (s, d) = (addrs(src), addrs(dst));
        let pseudo = sum(&s, sum(&d, u64::from(PROTO_UDP) + u64::from(udp_len)));
        let c = !fold(sum(&udp, pseudo));
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        match src {
            IpAddr::V4(_) => {
                f.extend_from_slice(&ETH_P_IP.to_be_bytes());
                let mut ip = vec![0x45, 0];
                ip.extend_from_slice(&(IPV4_LEN as u16 + udp_len).to_be_bytes());
                ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, PROTO_UDP, 0, 0]);
                ip.extend_from_slice(&s);
                ip.extend_from_slice(&d);
                let c = !fold(sum(&ip, 0));
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&ip);
            }
            IpAddr::V6(_) => {
                f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&udp_len.to_be_bytes());
                f.extend_from_slice(&[PROTO_UDP, 64]);
                f.extend_from_slice(&s);
                f.extend_from_slice(&d);
            }
        }
        f.extend_from_slice(&udp);
        f
    }

    /// Whether a frame's checksums verify (the sum over each, checksum included, is all ones).
    fn checksums_verify(f: &[u8]) -> bool {
        let q = parse(f).unwrap();
        let udp = &f[q.payload.0 - UDP_LEN..q.payload.1];
        let pseudo = if q.payload.0 == ETH_LEN + IPV4_LEN + UDP_LEN {
            if fold(sum(&f[ETH_LEN..ETH_LEN + IPV4_LEN], 0)) != 0xffff {
                return false;
            }
            sum(&f[ETH_LEN + 12..ETH_LEN + 20], 0)
        } else {
            sum(&f[ETH_LEN + 8..ETH_LEN + 40], 0)
        };
        let pseudo = pseudo + u64::from(PROTO_UDP) + udp.len() as u64;
        fold(sum(udp, pseudo)) == 0xffff
    }

    fn round_trip(client: &str, server: &str, answer: &[u8]) -> Vec<u8> {
        let (c, s): (IpAddr, IpAddr) = (client.parse().unwrap(), server.parse().unwrap());
        let query = frame(c, s, 40000, b"question");
        assert!(checksums_verify(&query), "the test's own frame");
        let q = parse(&query).unwrap();
        assert_eq!(q.peer, c);
        assert_eq!(&query[q.payload.0..q.payload.1], b"question");
        let mut out = vec![0u8; 2048];
        out[q.payload.0..q.payload.0 + answer.len()].copy_from_slice(answer);
        let n = reply(&query, &q, &mut out, answer.len());
        out.truncate(n);
        // What the client gets: a frame to its MAC, from the server's.
        assert_eq!(&out[0..6], &CLIENT_MAC);
        assert_eq!(&out[6..12], &SERVER_MAC);
        let r = parse_reply_ports(&out);
        assert_eq!(r, (53, 40000));
        assert!(checksums_verify_reply(&out), "{out:?}");
        assert_eq!(out.len(), q.payload.0 + answer.len());
        out
    }

    /// Where the UDP header of a reply frame starts.
    fn udp_offset(f: &[u8]) -> usize {
        if be16(f, 12) == ETH_P_IP {
            ETH_LEN + IPV4_LEN
        } else {
            ETH_LEN + IPV6_LEN
        }
    }

    fn parse_reply_ports(f: &[u8]) -> (u16, u16) {
        let udp = udp_offset(f);
        (be16(f, udp), be16(f, udp + 2))
    }

    /// As `checksums_verify`, for a frame whose destination port is not 53.
    fn checksums_verify_reply(f: &[u8]) -> bool {
        let mut g = f.to_vec();
        let udp = udp_offset(f);
        // Swap the ports (the sum does not change) so that parse takes it.
        g[udp..udp + 2].copy_from_slice(&f[udp + 2..udp + 4]);
        g[udp + 2..udp + 4].copy_from_slice(&f[udp..udp + 2]);
        checksums_verify(&g)
    }

    #[test]
    fn a_reply_goes_back_with_checksums_right() {
        for (client, server) in [
            ("192.0.2.10", "192.0.2.53"),
            ("2001:db8::10", "2001:db8::53"),
            ("10.255.255.254", "10.0.0.1"),
        ] {
            // Odd and even lengths: the odd byte is padded in the sum.
            for answer in [&b"an answer"[..], b"an answer!", &[0xff; 1232]] {
                let out = round_trip(client, server, answer);
                let q = parse_reply(&out);
                assert_eq!(q.0, server.parse::<IpAddr>().unwrap());
                assert_eq!(q.1, answer);
            }
        }
    }

    /// The reply's source address and payload.
    fn parse_reply(f: &[u8]) -> (IpAddr, Vec<u8>) {
        let mut g = f.to_vec();
        let udp = udp_offset(f);
        g[udp + 2..udp + 4].copy_from_slice(&53u16.to_be_bytes());
        let q = parse(&g).unwrap();
        (q.peer, g[q.payload.0..q.payload.1].to_vec())
    }

    #[test]
    fn what_is_not_a_plain_query_is_refused() {
        let c: IpAddr = "192.0.2.10".parse().unwrap();
        let s: IpAddr = "192.0.2.53".parse().unwrap();
        let good = frame(c, s, 1234, b"q");
        assert!(parse(&good).is_some());
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut g = good.clone();
            f(&mut g);
            parse(&g)
        };
        assert_eq!(bad(&|g| g[ETH_LEN] = 0x46), None, "IPv4 options");
        assert_eq!(bad(&|g| g[ETH_LEN + 6] = 0x20), None, "more fragments");
        assert_eq!(bad(&|g| g[ETH_LEN + 7] = 1), None, "a fragment offset");
        assert_eq!(bad(&|g| g[ETH_LEN + 9] = 6), None, "TCP");
        assert_eq!(bad(&|g| g[12] = 0x81), None, "a VLAN tag");
        let udp = ETH_LEN + IPV4_LEN;
        assert_eq!(bad(&|g| g[udp + 3] = 54), None, "another port");
        assert_eq!(bad(&|g| g[udp + 5] = 200), None, "UDP longer than IP");
        assert_eq!(
            bad(&|g| g[udp + 5] = 4),
            None,
            "UDP shorter than its header"
        );
        assert_eq!(
            bad(&|g| g[ETH_LEN + 3] = 255),
            None,
            "IP longer than the frame"
        );
        assert_eq!(bad(&|g| g.truncate(g.len() - 1)), None, "cut short");
        // Ethernet padding after the datagram is fine.
        let padded = bad(&|g| g.extend_from_slice(&[0; 10])).unwrap();
        assert_eq!(padded.payload.1 - padded.payload.0, 1);
        // Every prefix of a frame is refused or read within it, never a panic.
        for n in 0..good.len() {
            if let Some(q) = parse(&good[..n]) {
                assert!(q.payload.1 <= n);
            }
        }
        let v6 = frame(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
            1,
            b"q",
        );
        for n in 0..v6.len() {
            assert_eq!(parse(&v6[..n]), None, "{n} bytes of {}", v6.len());
        }
        // Group destination MACs, martian sources, source port 0.
        assert_eq!(bad(&|g| g[0] = 0xff), None, "broadcast MAC");
        assert_eq!(bad(&|g| g[0] = 0x01), None, "multicast MAC");
        assert_eq!(bad(&|g| g[udp..udp + 2].fill(0)), None, "source port 0");
        for src in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255"] {
            let f = frame(src.parse().unwrap(), s, 1234, b"q");
            assert_eq!(parse(&f), None, "from {src}");
        }
        for src in ["::", "::1", "ff02::1", "::ffff:192.0.2.1"] {
            let f = frame(
                src.parse().unwrap(),
                "2001:db8::53".parse().unwrap(),
                1234,
                b"q",
            );
            assert_eq!(parse(&f), None, "from {src}");
        }
        let mut ext = v6.clone();
        ext[ETH_LEN + 6] = 0; // a hop-by-hop options header first
        assert_eq!(parse(&ext), None);
    }
}
