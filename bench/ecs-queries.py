#!/usr/bin/env python3
"""Queries for dnsperf -B (TCP-stream binary: a 2-octet length, then the message), each with
an EDNS Client Subnet option of its own: COUNT distinct /24s spread over the public IPv4 space
(a fixed seed, so every run and every server gets the same ones).

    bench/ecs-queries.py NAME COUNT OUT
"""
import random
import struct
import sys

PRIVATE = [(0, 8), (10, 8), (100 << 24 | 64 << 16, 10), (127, 8), (169 << 24 | 254 << 16, 16),
           (172 << 24 | 16 << 16, 12), (192 << 24 | 168 << 16, 16)]


def public(a):
    for net, bits in PRIVATE:
        base = net << 24 if net < 256 else net
        if a >> (32 - bits) == base >> (32 - bits):
            return False
    return a < 224 << 24


def query(name, subnet, qid):
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    ecs = struct.pack("!HBB", 1, 24, 0) + subnet.to_bytes(4, "big")[:3]
    opt = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 4 + len(ecs)) + struct.pack("!HH", 8, len(ecs)) + ecs
    msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + qname + struct.pack("!HH", 1, 1) + opt
    return struct.pack("!H", len(msg)) + msg


def main():
    name, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(20181)
    seen = set()
    while len(seen) < count:
        a = rng.getrandbits(32) & 0xFFFFFF00
        if public(a):
            seen.add(a)
    with open(out, "wb") as f:
        for i, a in enumerate(sorted(seen, key=lambda _: rng.random())):
            f.write(query(name, a, i & 0xFFFF))


main()
