"""Validate a signed zone's answers as a resolver would, with dnspython's dns.dnssec.

Reads JSON on stdin: {"server", "port", "zone", "ds" (the parent's DS, presentation format),
"cases": [{"name", "type", "proto" (udp|tcp), "expect", "ecs" (optional "10.1.0.0/24")}]}.
`expect` is one of: answer, nodata, nxname, referral-insecure, referral-secure.

Every RRset of the answer and authority sections must validate against the zone's DNSKEY set,
which must itself be signed by a key matching the DS; the NS of a referral is the only
unsigned set allowed. Denials are checked for what they prove (RFC 9824 compact answers: an
NSEC owned by the query name, next name \\000.<name>, a bitmap without the asked type; with
NXNAME for a name that does not exist). Prints a JSON object: {"fails": [...], "seen": {...}}.
"""

import json
import sys

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

NXNAME = 128

cfg = json.load(sys.stdin)
zone = dns.name.from_text(cfg["zone"])
ip, port = cfg["server"], int(cfg["port"])
fails = []
seen = {}


def ask(name, rtype, proto, ecs=None, payload=1232):
    options = []
    if ecs:
        addr, prefix = ecs.split("/")
        options.append(dns.edns.ECSOption(addr, int(prefix)))
    q = dns.message.make_query(
        name, rtype, want_dnssec=True, payload=payload, options=options
    )
    if proto == "udp":
        return dns.query.udp(q, ip, port=port, timeout=5)
    return dns.query.tcp(q, ip, port=port, timeout=5)


def types_of(nsec):
    out = set()
    for window, bitmap in nsec.windows:
        for i, octet in enumerate(bitmap):
            for bit in range(8):
                if octet & (0x80 >> bit):
                    out.add(window * 256 + i * 8 + bit)
    return out


r = ask(zone, "DNSKEY", "tcp")
dnskey = r.get_rrset(r.answer, zone, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
keys = {zone: dnskey}
ds = dns.rdata.from_text("IN", "DS", cfg["ds"])
if dnskey is None or not any(
    dns.dnssec.make_ds(zone, k, "SHA256") == ds for k in dnskey
):
    fails.append("no DNSKEY matches the parent's DS")


def check(case):
    name = dns.name.from_text(case["name"])
    rtype = dns.rdatatype.from_text(case["type"])
    expect = case["expect"]
    what = f'{case["name"]} {case["type"]} {case["proto"]}'
    if case.get("ecs"):
        what += f' ecs {case["ecs"]}'
    r = ask(name, rtype, case["proto"], case.get("ecs"))

    def fail(why):
        fails.append(f"{what}: {why}")

    if r.flags & dns.flags.TC:
        return fail("truncated")
    # Every set of the answer and authority sections validates.
    for section_name, section in (("answer", r.answer), ("authority", r.authority)):
        sigs = {
            (s.name, s.covers): s for s in section if s.rdtype == dns.rdatatype.RRSIG
        }
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            label = f"{section_name} {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
            sig = sigs.get((rrset.name, rrset.rdtype))
            if sig is None:
                if not (expect.startswith("referral") and rrset.rdtype == dns.rdatatype.NS):
                    fail(f"{label} is not signed")
                continue
            try:
                dns.dnssec.validate(rrset, sig, keys)
            except dns.dnssec.ValidationFailure as e:
                fail(f"{label}: {e}")
    rcode = r.rcode()
    aa = bool(r.flags & dns.flags.AA)
    nsecs = [s for s in r.authority if s.rdtype == dns.rdatatype.NSEC]
    answers = [
        s for s in r.answer if s.rdtype not in (dns.rdatatype.RRSIG, dns.rdatatype.CNAME)
    ]
    if expect == "answer":
        if rcode != dns.rcode.NOERROR or not aa:
            return fail(f"rcode {dns.rcode.to_text(rcode)}, aa {aa}")
        if not any(s.rdtype == rtype for s in answers):
            return fail(f"no {case['type']} in the answer: {r.answer}")
        seen[what] = sorted(str(rd) for s in answers for rd in s)
    elif expect in ("nodata", "nxname"):
        if rcode != dns.rcode.NOERROR or not aa or answers:
            return fail(f"not a NODATA: rcode {dns.rcode.to_text(rcode)}, aa {aa}, {r.answer}")
        if not any(s.rdtype == dns.rdatatype.SOA for s in r.authority):
            fail("no SOA")
        proof = [s for s in nsecs if s.name == name]
        if not proof:
            return fail(f"no NSEC for the name: {r.authority}")
        nsec = proof[0][0]
        types = types_of(nsec)
        if rtype in types or dns.rdatatype.CNAME in types:
            fail(f"the NSEC says the name has the type: {nsec}")
        if nsec.next != dns.name.Name((b"\x00",) + name.labels):
            fail(f"the NSEC's next name is not the successor: {nsec}")
        if (NXNAME in types) != (expect == "nxname"):
            fail(f"NXNAME {'missing' if expect == 'nxname' else 'set'}: {nsec}")
        seen[what] = sorted(dns.rdatatype.to_text(t) for t in types)
    elif expect.startswith("referral"):
        if aa or rcode != dns.rcode.NOERROR or r.answer:
            return fail(f"not a referral: aa {aa}, {r.answer}")
        cut = [s for s in r.authority if s.rdtype == dns.rdatatype.NS]
        if not cut:
            return fail("no NS")
        cut = cut[0].name
        ds_sets = [s for s in r.authority if s.rdtype == dns.rdatatype.DS]
        if expect == "referral-secure":
            if not ds_sets:
                fail("no DS for a secure delegation")
        else:
            proof = [s for s in nsecs if s.name == cut]
            if ds_sets or not proof:
                return fail(f"no proof of an insecure delegation: {r.authority}")
            types = types_of(proof[0][0])
            if dns.rdatatype.NS not in types or dns.rdatatype.DS in types or dns.rdatatype.SOA in types:
                fail(f"the NSEC does not prove a delegation without DS: {proof[0]}")
        seen[what] = str(cut)
    else:
        fail(f"unknown expectation {expect}")


for case in cfg["cases"]:
    try:
        check(case)
    except Exception as e:  # a timeout or a packet dnspython cannot read
        fails.append(f'{case["name"]} {case["type"]} {case["proto"]}: {type(e).__name__}: {e}')
print(json.dumps({"fails": fails, "seen": seen}))
