//! Inputs more than one test file sends: the authority case file, and hostile packets.

use super::{Ask, root};

/// One question of tests/cases/authority.cases and the response it expects.
pub struct Case {
    pub line: usize,
    pub ask: Ask,
    pub udp: bool,
    pub tcp: bool,
    pub expect: Vec<String>,
}

/// Every case of tests/cases/authority.cases.
pub fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("tests/cases/authority.cases")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(q) = line.strip_prefix("> ") {
            let mut words = q.split_whitespace();
            let mut ask = Ask::new(words.next().unwrap(), words.next().unwrap());
            let (mut udp, mut tcp) = (true, true);
            for opt in words {
                match opt {
                    "udp" => tcp = false,
                    "tcp" => udp = false,
                    "noedns" => ask = ask.no_edns(),
                    o if o.starts_with("bufsize=") => ask = ask.bufsize(o[8..].parse().unwrap()),
                    o => panic!("authority.cases:{}: unknown option {o}", i + 1),
                }
            }
            out.push(Case {
                line: i + 1,
                ask,
                udp,
                tcp,
                expect: Vec::new(),
            });
        } else {
            out.last_mut()
                .expect("expectation before the first question")
                .expect
                .push(line.to_string());
        }
    }
    out
}

/// A small deterministic generator, so a failure can be replayed.
pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Garbage, truncated headers, compression loops, oversized labels and names, lying counts,
/// and 3000 random packets: (what it is, the bytes).
pub fn hostile_packets() -> Vec<(String, Vec<u8>)> {
    let good = Ask::new("www.auth.test.", "A").bytes();
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    for n in 0..good.len() {
        v.push((format!("first {n} octets of a query"), good[..n].to_vec()));
    }
    let header = |arcount: u8| vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, arcount];
    // the question name is a pointer to itself
    let mut p = header(0);
    p.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    v.push(("self-pointing question".into(), p));
    // a pointer loop in an additional record's name
    let mut p = header(1);
    p.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
    p.extend_from_slice(&[0xc0, 0x1d, 0xc0, 0x1b, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    v.push(("pointer loop in additional".into(), p));
    // labels longer than 63 octets, and a name longer than 255
    for len in [64u8, 100, 191, 255] {
        let mut p = header(0);
        p.push(len);
        p.extend(std::iter::repeat_n(b'a', len as usize));
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        v.push((format!("label of {len} octets"), p));
    }
    let mut p = header(0);
    for _ in 0..5 {
        p.push(63);
        p.extend_from_slice(&[b'x'; 63]);
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("name of 321 octets".into(), p));
    // counts that promise far more than the packet holds
    let mut p = good.clone();
    p[10] = 0xff;
    p[11] = 0xff;
    v.push(("65535 additional records promised".into(), p));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for i in 0..3000 {
        let n = (rng.next() % 600) as usize;
        let mut p = rng.bytes(n);
        if i % 2 == 0 && p.len() > 3 {
            p[2] &= 0x7f; // keep QR clear half the time so the parser goes deeper
        }
        v.push((format!("random packet {i}"), p));
    }
    v
}
