//! DNS wire format for the query path: parse a query, write a response.
//!
//! hickory-proto's `Message` allocates for every section and name; on the query path we only need
//! the header, one question and the OPT record, so this module reads them in place and writes the
//! response into a caller's buffer. Nothing here allocates, and nothing trusts a length field:
//! every read is bounds-checked and a malformed query becomes [`Parsed::FormErr`] or
//! [`Parsed::Drop`], never a panic.
//!
//! ```text
//!  packet ──parse──▶ Query { id, flags, qname (as sent + lowercased), qtype, qclass, edns }
//!  Query + answer data ──Writer──▶ header · question (echoed) · answer · authority · additional · OPT
//! ```

pub const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4: a name is at most 255 octets in wire form.
pub const MAX_NAME_LEN: usize = 255;
/// Most labels a 255-octet name can have (each label is at least two octets, plus the root).
pub const MAX_LABELS: usize = 128;
/// The UDP payload we advertise and never exceed (DNS Flag Day 2020; RFC 9715).
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// RFC 1035 §4.2.1: the UDP limit for a client without EDNS.
pub const MIN_UDP_PAYLOAD: u16 = 512;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_HINFO: u16 = 13;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_DS: u16 = 43;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_RRSIG: u16 = 46;
pub const TYPE_NSEC: u16 = 47;
pub const TYPE_DNSKEY: u16 = 48;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const TYPE_MAILB: u16 = 253;
pub const TYPE_MAILA: u16 = 254;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;
/// RFC 6891 §9: extended RCODE 16, carried as 1 in the OPT TTL's upper byte.
pub const EXT_RCODE_BADVERS: u8 = 1;
/// BADVERS as a whole (extended) RCODE, RFC 6891 §9: what the counters call it.
pub const RCODE_BADVERS: u8 = 16;

/// How a query arrived: it decides the size limit of the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
pub const FLAG_CD: u16 = 0x0010;
pub const OPCODE_QUERY: u8 = 0;

/// EDNS(0) as the client sent it (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The Client Subnet option (RFC 7871), if the query carried a valid one.
    pub ecs: Option<Ecs>,
    /// The client asks who answers (RFC 5001 NSID).
    pub nsid: bool,
}

/// RFC 5001 §2.3: option code 3.
pub const OPTION_NSID: u16 = 3;

/// RFC 7871 §6: option code 8.
pub const OPTION_ECS: u16 = 8;

/// An EDNS Client Subnet option as received: echoed in the response with our scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecs {
    /// 1 = IPv4, 2 = IPv6 (IANA address family numbers).
    pub family: u16,
    /// SOURCE PREFIX-LENGTH as sent.
    pub source: u8,
    /// The address octets as sent (⌈source/8⌉ of them), zero-padded.
    pub addr: [u8; 16],
}

impl Ecs {
    /// Octets of address the option carries.
    pub fn addr_len(&self) -> usize {
        self.source.div_ceil(8) as usize
    }

    /// The client's network, truncated to /24 (IPv4) or /56 (IPv6) as DESIGN §4 requires:
    /// the address and the prefix length that may be used.
    pub fn client(&self) -> (std::net::IpAddr, u8) {
        let addr = if self.family == 1 {
            let mut a = [0u8; 4];
            a.copy_from_slice(&self.addr[..4]);
            std::net::IpAddr::from(a)
        } else {
            std::net::IpAddr::from(self.addr)
        };
        crate::select::sites::ecs_cut(addr, self.source)
    }

    /// Wire length of the option in a response (code, length, family, prefixes, address).
    pub fn wire_len(&self) -> usize {
        4 + 4 + self.addr_len()
    }
}

fn mask4(a: [u8; 4], len: u8) -> [u8; 4] {
    let m = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    };
    (u32::from_be_bytes(a) & m).to_be_bytes()
}

fn mask16(a: [u8; 16], len: u8) -> [u8; 16] {
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    (u128::from_be_bytes(a) & m).to_be_bytes()
}

/// A query that parsed. The question is kept as sent (to echo the client's case, RFC 4343 and
/// the 0x20 trick) and lowercased (for lookups).
pub struct Query<'a> {
    pub id: u16,
    pub flags: u16,
    /// The question section as received: qname, qtype, qclass.
    pub question: &'a [u8],
    lower: [u8; MAX_NAME_LEN],
    name_len: u8,
    /// Offsets of each label in the name; `labels[i]..name_len` is the i-th suffix.
    label_offsets: [u8; MAX_LABELS],
    label_count: u8,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// The query name in wire form, lowercased.
    pub fn name(&self) -> &[u8] {
        &self.lower[..self.name_len as usize]
    }

    /// Labels in the name, not counting the root.
    pub fn label_count(&self) -> usize {
        self.label_count as usize
    }

    /// Offset in the name (and in the question) of the suffix that drops the first `i` labels.
    pub fn suffix_offset(&self, i: usize) -> usize {
        if i >= self.label_count as usize {
            self.name_len as usize - 1
        } else {
            self.label_offsets[i] as usize
        }
    }

    /// The name without its first `i` labels, lowercased, in wire form.
    pub fn suffix(&self, i: usize) -> &[u8] {
        &self.name()[self.suffix_offset(i)..]
    }

    pub fn opcode(&self) -> u8 {
        opcode(self.flags)
    }
}

/// What the parser made of a packet.
#[allow(
    clippy::large_enum_variant,
    reason = "lives on the stack for one query; boxing it would allocate per query"
)]
pub enum Parsed<'a> {
    Query(Query<'a>),
    /// Readable header, broken rest: answer FORMERR (RFC 1035 §4.1.1).
    FormErr {
        id: u16,
        flags: u16,
    },
    /// An opcode other than QUERY: answer NOTIMP, echoing the question if it parses.
    NotImp {
        id: u16,
        flags: u16,
    },
    /// Not a query we should answer at all: too short to hold a header, or a response (QR=1;
    /// answering responses invites loops between servers).
    Drop,
}

fn opcode(flags: u16) -> u8 {
    ((flags >> 11) & 0x0f) as u8
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

fn be32(p: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *p.get(at)?,
        *p.get(at + 1)?,
        *p.get(at + 2)?,
        *p.get(at + 3)?,
    ]))
}

/// Parse a query. Never panics, never allocates.
pub fn parse(packet: &[u8]) -> Parsed<'_> {
    if packet.len() < HEADER_LEN {
        return Parsed::Drop;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    if flags & FLAG_QR != 0 {
        return Parsed::Drop;
    }
    if opcode(flags) != OPCODE_QUERY {
        return Parsed::NotImp { id, flags };
    }
    match parse_query(packet, id, flags) {
        Some(q) => Parsed::Query(q),
        None => Parsed::FormErr { id, flags },
    }
}

/// Parse just the question of a packet whose header is known to be readable, for echoing it in
/// NOTIMP answers. `None` when there is not exactly one well-formed question.
pub fn parse_question(packet: &[u8]) -> Option<&[u8]> {
    if be16(packet, 4)? != 1 {
        return None;
    }
    let mut lower = [0u8; MAX_NAME_LEN];
    let mut offsets = [0u8; MAX_LABELS];
    let (name_len, _) = read_qname(packet, HEADER_LEN, &mut lower, &mut offsets)?;
    let end = HEADER_LEN + name_len + 4;
    packet.get(HEADER_LEN..end)
}

fn parse_query(packet: &[u8], id: u16, flags: u16) -> Option<Query<'_>> {
    let qdcount = be16(packet, 4)?;
    let ancount = be16(packet, 6)?;
    let nscount = be16(packet, 8)?;
    let arcount = be16(packet, 10)?;
    // A query carries one question and nothing in the answer or authority sections.
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return None;
    }
    let mut lower = [0u8; MAX_NAME_LEN];
    let mut label_offsets = [0u8; MAX_LABELS];
    let (name_len, label_count) = read_qname(packet, HEADER_LEN, &mut lower, &mut label_offsets)?;
    let mut at = HEADER_LEN + name_len;
    let qtype = be16(packet, at)?;
    let qclass = be16(packet, at + 2)?;
    at += 4;
    let question = &packet[HEADER_LEN..at];
    if qtype == TYPE_OPT {
        // RFC 6891 §6.1.1: OPT is a pseudo-RR that only lives in the additional section.
        return None;
    }

    let mut edns = None;
    for _ in 0..arcount {
        let owner_at = at;
        at = skip_name(packet, at)?;
        let rtype = be16(packet, at)?;
        let rclass = be16(packet, at + 2)?;
        let ttl = be32(packet, at + 4)?;
        let rdlen = be16(packet, at + 8)? as usize;
        let rdata_at = at + 10;
        let end = rdata_at.checked_add(rdlen)?;
        if end > packet.len() {
            return None;
        }
        if rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT at most, owned by the root.
            if edns.is_some() || at - owner_at != 1 || packet[owner_at] != 0 {
                return None;
            }
            let (ecs, nsid) = read_options(&packet[rdata_at..end])?;
            edns = Some(Edns {
                payload: rclass,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
                ecs,
                nsid,
            });
        }
        at = end;
    }
    // Bytes after the last section are ignored, as NSD and Knot do.
    Some(Query {
        id,
        flags,
        question,
        lower,
        name_len: name_len as u8,
        label_offsets,
        label_count: label_count as u8,
        qtype,
        qclass,
        edns,
    })
}

/// Read the question name at `at`: plain labels only (a pointer in the first name of a packet can
/// only point into the header), each ≤ 63 octets, ≤ 255 in all. Returns its wire length and its
/// label count; fills `lower` with the lowercased name and `offsets` with label starts.
fn read_qname(
    packet: &[u8],
    start: usize,
    lower: &mut [u8; MAX_NAME_LEN],
    offsets: &mut [u8; MAX_LABELS],
) -> Option<(usize, usize)> {
    let mut len = 0usize;
    let mut labels = 0usize;
    loop {
        let l = *packet.get(start + len)? as usize;
        if l == 0 {
            if len >= MAX_NAME_LEN {
                return None;
            }
            lower[len] = 0;
            return Some((len + 1, labels));
        }
        // RFC 1035 §4.1.4 pointers (0xC0) and RFC 6891 §5 extended label types (0x40, 0x80).
        if l > 63 {
            return None;
        }
        // This label, its length octet and the root must fit in 255.
        if len + 1 + l + 1 > MAX_NAME_LEN || labels >= MAX_LABELS {
            return None;
        }
        let label = packet.get(start + len + 1..start + len + 1 + l)?;
        offsets[labels] = len as u8;
        lower[len] = l as u8;
        for (dst, src) in lower[len + 1..len + 1 + l].iter_mut().zip(label) {
            *dst = src.to_ascii_lowercase();
        }
        len += 1 + l;
        labels += 1;
    }
}

/// Step over a possibly compressed name without following pointers (a pointer ends a name).
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let l = *packet.get(at)? as usize;
        match l {
            0 => return Some(at + 1),
            1..=63 => {
                total += l + 1;
                if total >= MAX_NAME_LEN {
                    return None;
                }
                at += 1 + l;
            }
            0xc0..=0xff => {
                packet.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

/// RFC 6891 §6.1.2: options are {code, length, data}; a length that overruns the RDATA is a
/// malformed OPT. Returns the Client Subnet option if there is one, and whether NSID is asked
/// for; `None` if malformed.
fn read_options(mut rdata: &[u8]) -> Option<(Option<Ecs>, bool)> {
    let mut ecs = None;
    let mut nsid = false;
    while !rdata.is_empty() {
        let code = be16(rdata, 0)?;
        let len = be16(rdata, 2)? as usize;
        let data = rdata.get(4..4 + len)?;
        if code == OPTION_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(read_ecs(data)?);
        } else if code == OPTION_NSID {
            nsid = true;
        }
        rdata = &rdata[4 + len..];
    }
    Some((ecs, nsid))
}

/// RFC 7871 §6 and §7.1.2: a known family, a source prefix within it, SCOPE 0 in a query,
/// exactly ⌈source/8⌉ address octets, and no bits set beyond the source prefix — anything else
/// is FORMERR.
fn read_ecs(data: &[u8]) -> Option<Ecs> {
    let family = be16(data, 0)?;
    let source = *data.get(2)?;
    let scope = *data.get(3)?;
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max || scope != 0 {
        return None;
    }
    let octets = &data[4..];
    if octets.len() != source.div_ceil(8) as usize {
        return None;
    }
    let mut addr = [0u8; 16];
    addr[..octets.len()].copy_from_slice(octets);
    let ecs = Ecs {
        family,
        source,
        addr,
    };
    // stray bits after the prefix
    let masked = if family == 1 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&addr[..4]);
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&mask4(a, source));
        out
    } else {
        mask16(addr, source)
    };
    (masked == addr).then_some(ecs)
}

/// The response under construction: a bounded cursor over the caller's buffer.
///
/// `limit` is what the client can take (512, its EDNS size capped at 1232, or 65535 on TCP) less
/// the room kept for our OPT record, so the OPT always fits.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    limit: usize,
}

/// The record did not fit in the space the client can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The OPT record we append: root name, type, payload, extended RCODE/version/flags, RDLENGTH.
pub const OPT_LEN: usize = 11;

/// Room our OPT record needs in a response to a query with this EDNS, when this server's NSID
/// is `nsid`.
pub fn opt_len(edns: &Edns, nsid: Option<&[u8]>) -> usize {
    let nsid = nsid.filter(|_| edns.nsid).map_or(0, |n| 4 + n.len());
    OPT_LEN + edns.ecs.map_or(0, |e| e.wire_len()) + nsid
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut [u8], limit: usize) -> Self {
        let limit = limit.min(buf.len());
        Writer { buf, pos: 0, limit }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Forget everything written after `pos` (used to drop what does not fit).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = pos.min(self.pos);
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    pub fn put_u16(&mut self, v: u16) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Write the header with zero counts; counts are patched with [`Writer::set_count`].
    pub fn header(&mut self, id: u16, flags: u16) -> Result<(), Full> {
        self.put_u16(id)?;
        self.put_u16(flags)?;
        self.put(&[0; 8])
    }

    /// Overwrite the header's flags (e.g. to set TC or the RCODE late).
    pub fn set_flags(&mut self, flags: u16) {
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
    }

    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// Set one of the four section counts (0 = question … 3 = additional).
    pub fn set_count(&mut self, section: usize, count: u16) {
        let at = 4 + 2 * section;
        self.buf[at..at + 2].copy_from_slice(&count.to_be_bytes());
    }

    /// Patch two bytes already written (owner-name pointers in pre-encoded records).
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Append the OPT record, with the client's ECS option echoed with `scope` if it sent one
    /// (RFC 7871 §7.2.1: family, source prefix and address as received), and this server's
    /// NSID if given (RFC 5001: only when asked). Its room was kept out of `limit` (see
    /// [`opt_len`]), so it always fits.
    pub fn opt(
        &mut self,
        ext_rcode: u8,
        dnssec_ok: bool,
        ecs: Option<(&Ecs, u8)>,
        nsid: Option<&[u8]>,
    ) {
        let mut rr = [0u8; OPT_LEN];
        rr[1..3].copy_from_slice(&TYPE_OPT.to_be_bytes());
        rr[3..5].copy_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
        rr[5] = ext_rcode;
        // rr[6] is the version we speak: 0.
        if dnssec_ok {
            // RFC 3225 §3: the DO bit is copied into the response.
            rr[7] = 0x80;
        }
        let rdlen = ecs.map_or(0, |(e, _)| e.wire_len()) + nsid.map_or(0, |n| 4 + n.len());
        rr[9..11].copy_from_slice(&(rdlen as u16).to_be_bytes());
        let end = self.pos + OPT_LEN;
        self.buf[self.pos..end].copy_from_slice(&rr);
        self.pos = end;
        if let Some((e, scope)) = ecs {
            let n = e.addr_len();
            let mut opt = [0u8; 24];
            opt[0..2].copy_from_slice(&OPTION_ECS.to_be_bytes());
            opt[2..4].copy_from_slice(&((4 + n) as u16).to_be_bytes());
            opt[4..6].copy_from_slice(&e.family.to_be_bytes());
            opt[6] = e.source;
            opt[7] = scope;
            opt[8..8 + n].copy_from_slice(&e.addr[..n]);
            let end = self.pos + 8 + n;
            self.buf[self.pos..end].copy_from_slice(&opt[..8 + n]);
            self.pos = end;
        }
        if let Some(id) = nsid {
            let end = self.pos + 4 + id.len();
            let out = &mut self.buf[self.pos..end];
            out[0..2].copy_from_slice(&OPTION_NSID.to_be_bytes());
            out[2..4].copy_from_slice(&(id.len() as u16).to_be_bytes());
            out[4..].copy_from_slice(id);
            self.pos = end;
        }
    }

    /// The finished message.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Read back bytes written earlier (to compare names for compression).
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.pos]
    }
}

/// A compression pointer to `offset` (RFC 1035 §4.1.4), if the offset can be expressed.
pub fn pointer(offset: usize) -> Option<u16> {
    (offset < 0x4000).then_some(0xc000 | offset as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&arcount.to_be_bytes());
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn parses_name_case_and_suffixes() {
        let p = query(b"\x03WwW\x04gslb\x00", TYPE_A, &[], 0);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name(), b"\x03www\x04gslb\x00");
        assert_eq!(&q.question[..10], b"\x03WwW\x04gslb\x00");
        assert_eq!(q.label_count(), 2);
        assert_eq!(q.suffix(1), b"\x04gslb\x00");
        assert_eq!(q.suffix(2), b"\x00");
        assert_eq!(q.edns, None);
    }

    #[test]
    fn parses_edns() {
        let opt = [0, 0, 41, 0x04, 0xd0, 0, 1, 0x80, 0, 0, 4, 0, 10, 0, 0];
        let p = query(b"\x01a\x00", TYPE_A, &opt, 1);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(
            q.edns,
            Some(Edns {
                payload: 1232,
                version: 1,
                dnssec_ok: true,
                ecs: None,
                nsid: false,
            })
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(parse(&[0; 11]), Parsed::Drop));
        let mut response = query(b"\x01a\x00", TYPE_A, &[], 0);
        response[2] |= 0x80;
        assert!(matches!(parse(&response), Parsed::Drop));
        for bad in [
            query(b"\xc0\x0c", TYPE_A, &[], 0),     // pointer in the question
            query(b"\x40aaaa\x00", TYPE_A, &[], 0), // extended label type
            query(b"\x05ab\x00", TYPE_A, &[], 0)[..15].to_vec(), // label past the end
            query(b"\x01a\x00", TYPE_A, &[0, 0, 41], 1), // truncated OPT
            query(b"\x01a\x00", TYPE_OPT, &[], 0),  // OPT as the question
            query(
                b"\x01a\x00",
                TYPE_A,
                &[0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 4, 0, 8, 0, 9],
                1,
            ), // option overruns
        ] {
            assert!(matches!(parse(&bad), Parsed::FormErr { .. }), "{bad:?}");
        }
        let two_opts = [[0u8, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0]; 2].concat();
        assert!(matches!(
            parse(&query(b"\x01a\x00", TYPE_A, &two_opts, 2)),
            Parsed::FormErr { .. }
        ));
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert!(matches!(
            parse(&query(&long, TYPE_A, &[], 0)),
            Parsed::FormErr { .. }
        ));
    }

    fn ecs_query(option: &[u8]) -> Vec<u8> {
        let mut opt = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        opt.extend_from_slice(&(option.len() as u16).to_be_bytes());
        opt.extend_from_slice(option);
        query(b"\x01a\x00", TYPE_A, &opt, 1)
    }

    #[test]
    fn parses_client_subnet_and_truncates_to_24_and_56() {
        // 10.1.2.0/24
        let p = ecs_query(&[0, 8, 0, 7, 0, 1, 24, 0, 10, 1, 2]);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        let ecs = q.edns.unwrap().ecs.unwrap();
        assert_eq!(ecs.client(), ("10.1.2.0".parse().unwrap(), 24));
        // 10.1.2.3/32 is used as 10.1.2.0/24
        let p = ecs_query(&[0, 8, 0, 8, 0, 1, 32, 0, 10, 1, 2, 3]);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(
            q.edns.unwrap().ecs.unwrap().client(),
            ("10.1.2.0".parse().unwrap(), 24)
        );
        // 2001:db8:1:2:3::/80 is used as 2001:db8:1:200::/56
        let mut o = vec![0, 8, 0, 14, 0, 2, 80, 0];
        o.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3]);
        let p = ecs_query(&o);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(
            q.edns.unwrap().ecs.unwrap().client(),
            ("2001:db8:1::".parse().unwrap(), 56)
        );
        // /0: no client information
        let p = ecs_query(&[0, 8, 0, 4, 0, 1, 0, 0]);
        let Parsed::Query(q) = parse(&p) else {
            panic!("not a query")
        };
        assert_eq!(q.edns.unwrap().ecs.unwrap().client().1, 0);
    }

    #[test]
    fn malformed_client_subnet_is_formerr() {
        let cases: [(&str, &[u8]); 6] = [
            ("scope in a query", &[0, 8, 0, 7, 0, 1, 24, 8, 10, 1, 2]),
            ("stray bits", &[0, 8, 0, 7, 0, 1, 23, 0, 10, 1, 3]),
            ("too many octets", &[0, 8, 0, 8, 0, 1, 24, 0, 10, 1, 2, 0]),
            ("too few octets", &[0, 8, 0, 6, 0, 1, 24, 0, 10, 1]),
            ("unknown family", &[0, 8, 0, 7, 0, 3, 24, 0, 10, 1, 2]),
            (
                "prefix too long",
                &[0, 8, 0, 9, 0, 1, 33, 0, 10, 1, 2, 3, 4],
            ),
        ];
        for (what, o) in cases {
            assert!(
                matches!(parse(&ecs_query(o)), Parsed::FormErr { .. }),
                "{what}"
            );
        }
    }

    #[test]
    fn longest_legal_name_parses() {
        // 3 × 63-octet labels + one 61-octet label: 255 octets with the root.
        let mut name = Vec::new();
        for _ in 0..3 {
            name.push(63);
            name.extend_from_slice(&[b'a'; 63]);
        }
        name.push(61);
        name.extend_from_slice(&[b'b'; 61]);
        name.push(0);
        assert_eq!(name.len(), 255);
        let packet = query(&name, TYPE_A, &[], 0);
        let Parsed::Query(q) = parse(&packet) else {
            panic!("not a query")
        };
        assert_eq!(q.name().len(), 255);
        assert_eq!(q.label_count(), 4);
    }
}
