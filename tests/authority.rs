//! Authority correctness (DESIGN §5) against the real server over real UDP and TCP.

mod common;

use std::time::Duration;

use common::cases::cases;
use common::{Ask, Server, render, root, tcp_recv, tcp_send};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

fn server() -> Server {
    let zones = root().join("tests/zones/authority");
    Server::start_in_tempdir(&["--zones", zones.to_str().unwrap()])
}

#[test]
fn case_file_over_udp_and_tcp() {
    let s = server();
    let cases = cases();
    assert!(cases.len() > 30, "the case file was not read");
    let mut failures = Vec::new();
    for c in &cases {
        for (transport, on) in [("udp", c.udp), ("tcp", c.tcp)] {
            if !on {
                continue;
            }
            let m = if transport == "udp" {
                s.udp(&c.ask)
            } else {
                s.tcp(&c.ask)
            };
            assert_eq!(m.metadata.id, c.ask.id);
            let got = render(&m);
            if got != c.expect {
                failures.push(format!(
                    "authority.cases:{} ({transport}) {} {}\n  expected:\n    {}\n  got:\n    {}",
                    c.line,
                    c.ask.name,
                    c.ask.rtype,
                    c.expect.join("\n    "),
                    got.join("\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn question_case_is_echoed_exactly() {
    let s = server();
    for m in [
        s.udp(&Ask::new("wWw.AuTh.TeSt.", "A")),
        s.tcp(&Ask::new("wWw.AuTh.TeSt.", "A")),
    ] {
        assert_eq!(m.queries[0].name().to_ascii(), "wWw.AuTh.TeSt.");
        assert_eq!(m.answers.len(), 2);
        // owner names point at the question, so they carry the client's case too
        assert_eq!(m.answers[0].name.to_ascii(), "wWw.AuTh.TeSt.");
    }
    let m = s.udp(&Ask::new("NoPe.AUTH.test.", "A"));
    assert_eq!(m.authorities[0].name.to_ascii(), "AUTH.test.");
}

#[test]
fn edns_is_echoed_and_udp_size_capped() {
    let s = server();
    let m = s.udp(&Ask::new("www.auth.test.", "A").bufsize(4096));
    let edns = m.edns.expect("OPT in the reply to an EDNS query");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    assert!(
        s.udp(&Ask::new("www.auth.test.", "A").no_edns())
            .edns
            .is_none()
    );

    // A client offering 4096 still gets at most 1232 octets over UDP, truncated.
    let raw = s
        .udp_raw(&Ask::new("big.auth.test.", "TXT").bufsize(4096).bytes())
        .unwrap();
    assert!(raw.len() <= 1232, "{} octets", raw.len());
    let m = Message::from_vec(&raw).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.edns.is_some());

    // Over TCP the whole RRset arrives.
    let m = s.tcp(&Ask::new("big.auth.test.", "TXT"));
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 8);

    // Without EDNS the limit is 512 octets.
    let raw = s
        .udp_raw(&Ask::new("big.auth.test.", "TXT").no_edns().bytes())
        .unwrap();
    assert!(raw.len() <= 512);
}

#[test]
fn dnssec_ok_bit_is_copied() {
    let s = server();
    let mut ask = Ask::new("www.auth.test.", "A");
    ask.dnssec_ok = true;
    assert!(s.udp(&ask).edns.unwrap().flags().dnssec_ok);
    assert!(
        !s.udp(&Ask::new("www.auth.test.", "A"))
            .edns
            .unwrap()
            .flags()
            .dnssec_ok
    );
}

#[test]
fn unknown_edns_version_gets_badvers() {
    let s = server();
    let mut ask = Ask::new("www.auth.test.", "A");
    ask.edns_version = 1;
    for m in [s.udp(&ask), s.tcp(&ask)] {
        // BADVERS = 16: the high bits travel in the OPT record (RFC 6891 §6.1.3). hickory
        // names 16 BADSIG (TSIG shares the number), so compare the number.
        assert_eq!(u16::from(m.metadata.response_code), 16, "{m:?}");
        assert_eq!(m.edns.as_ref().unwrap().version(), 0);
        assert!(m.answers.is_empty());
    }
}

#[test]
fn tcp_pipelining_answers_every_query_in_order() {
    let s = server();
    let mut conn = s.tcp_connect();
    let names = [
        "www.auth.test.",
        "nope.auth.test.",
        "alias.auth.test.",
        "auth.test.",
        "big.auth.test.",
    ];
    // all queries in one write, before reading any answer
    let mut batch = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let mut ask = Ask::new(n, if *n == "big.auth.test." { "TXT" } else { "A" });
        ask.id = 1000 + i as u16;
        let q = ask.bytes();
        batch.extend_from_slice(&(q.len() as u16).to_be_bytes());
        batch.extend_from_slice(&q);
    }
    std::io::Write::write_all(&mut conn, &batch).unwrap();
    for (i, n) in names.iter().enumerate() {
        let m = Message::from_vec(&tcp_recv(&mut conn).expect("answer")).unwrap();
        assert_eq!(m.metadata.id, 1000 + i as u16, "{n}");
        assert_eq!(m.queries[0].name().to_ascii(), *n);
    }
    // the connection stays open for more
    tcp_send(&mut conn, &Ask::new("www.auth.test.", "AAAA").bytes());
    let m = Message::from_vec(&tcp_recv(&mut conn).unwrap()).unwrap();
    assert_eq!(m.answers[0].record_type(), RecordType::AAAA);
}

#[test]
fn other_opcodes_get_notimp_with_the_question() {
    let s = server();
    let mut q = Ask::new("auth.test.", "SOA").bytes();
    q[2] |= 4 << 3; // opcode NOTIFY
    for raw in [s.udp_raw(&q).unwrap(), s.tcp_raw(&q)] {
        assert_eq!(raw[3] & 0x0f, 4, "NOTIMP");
        assert_eq!((raw[2] >> 3) & 0x0f, 4, "opcode echoed");
        assert_eq!(&raw[4..6], &[0, 1], "question echoed");
        assert_eq!(raw[0..2], q[0..2]);
    }
}

#[test]
fn malformed_but_parseable_queries_get_formerr() {
    let s = server();
    let good = Ask::new("www.auth.test.", "A").no_edns().bytes();
    let mut two_questions = good.clone();
    two_questions[5] = 2;
    let mut answer_in_query = good.clone();
    answer_in_query[7] = 1;
    let mut cut_question = good.clone();
    cut_question.truncate(good.len() - 2);
    let mut two_opts = Ask::new("www.auth.test.", "A").bytes();
    let opt = two_opts[two_opts.len() - 11..].to_vec();
    two_opts.extend_from_slice(&opt);
    two_opts[11] = 2;
    for (what, q) in [
        ("two questions", two_questions),
        ("an answer record in a query", answer_in_query),
        ("a cut-off question", cut_question),
        ("two OPT records", two_opts),
    ] {
        let raw = s
            .udp_raw(&q)
            .unwrap_or_else(|| panic!("no reply to {what}"));
        assert_eq!(raw[3] & 0x0f, 1, "{what}: FORMERR");
        assert_eq!(raw[0..2], q[0..2], "{what}: id echoed");
        assert!(raw[2] & 0x80 != 0, "{what}: QR");
    }
}

#[test]
fn responses_are_never_answered() {
    let s = server();
    let mut q = Ask::new("www.auth.test.", "A").bytes();
    q[2] |= 0x80;
    assert!(common::udp_exchange(s.addr, &q, Duration::from_millis(500)).is_none());
    // and the server is still there
    assert_eq!(s.udp(&Ask::new("www.auth.test.", "A")).answers.len(), 2);
}

#[test]
fn client_subnet_is_echoed_with_scope_zero_for_answers_that_do_not_depend_on_it() {
    let s = server();
    for (addr, prefix) in [("10.1.2.0", 24u8), ("2001:db8:1:200::", 56)] {
        let ask = Ask::new("www.auth.test.", "A").ecs(addr, prefix);
        for m in [s.udp(&ask), s.tcp(&ask)] {
            assert_eq!(m.answers.len(), 2);
            let (a, source, scope) = common::ecs_of(&m).expect("ECS echoed");
            assert_eq!((a.to_string().as_str(), source, scope), (addr, prefix, 0));
        }
    }
    // no ECS in the query, none in the response
    assert!(common::ecs_of(&s.udp(&Ask::new("www.auth.test.", "A"))).is_none());
    // NXDOMAIN echoes it too
    let m = s.udp(&Ask::new("nope.auth.test.", "A").ecs("10.1.2.0", 24));
    assert_eq!(common::ecs_of(&m).map(|e| e.2), Some(0));
}

#[test]
fn malformed_client_subnet_gets_formerr() {
    let s = server();
    // 10.1.2.0/23 with the last bit of the third octet set: stray bits (RFC 7871 §7.1.2)
    let mut q = Ask::new("www.auth.test.", "A").bytes();
    let opt = [0u8, 8, 0, 7, 0, 1, 23, 0, 10, 1, 3];
    let n = q.len();
    q[n - 2..].copy_from_slice(&(opt.len() as u16).to_be_bytes());
    q.extend_from_slice(&opt);
    let raw = s.udp_raw(&q).expect("reply");
    assert_eq!(raw[3] & 0x0f, 1, "FORMERR");
    // the same with the bit clear is fine
    q[n + opt.len() - 1] = 2;
    let raw = s.udp_raw(&q).expect("reply");
    assert_eq!(raw[3] & 0x0f, 0, "NOERROR");
}
