#!/usr/bin/python3
"""Writes the seed corpus of tests/fuzz/corpus/. Run with Debian's python3 (python3-scapy).

fuzz_decode inputs: byte 0 = link type selector (index into kLinkTypes of fuzz_targets.cpp),
byte 1 = bytes cut by the snaplen (0 = none), then the frame. Crashers found by fuzzing are added
next to these by hand (crash-*), never regenerated.
"""
import os
from scapy.all import IP, IPv6, TCP, UDP, ICMP, ICMPv6EchoRequest, ICMPv6DestUnreach, \
    IPv6ExtHdrHopByHop, IPv6ExtHdrFragment, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, raw

RAW, EN10MB, SLL, SLL2, NULL, IPV4, IPV6, RAW12, LOOP, UNSUPPORTED = range(10)
here = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]
syn4 = raw(IP(src="10.77.1.2", dst="10.77.2.2", id=0x1234, flags="DF", tos=0xb8) /
           TCP(sport=40000, dport=21, seq=0x11223344, flags="S", options=opts))
syn6 = raw(IPv6(src="fd77:1::2", dst="fd77:2::2", fl=0x12345) /
           TCP(sport=40000, dport=21, seq=0x11223344, flags="S", options=opts))
udp4 = raw(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=53) / b"hello")
udp6 = raw(IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5353, dport=53) / b"hello")
echo4 = raw(IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=1, seq=2) / b"abcd")
echo6 = raw(IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest(id=1, seq=2))
te4 = raw(IP(src="10.77.1.1", dst="10.77.1.2") / ICMP(type=11, code=0) / syn4[:28])
unr6 = raw(IPv6(src="fd77:1::1", dst="fd77:1::2") / ICMPv6DestUnreach(code=4) / udp6)
ext6 = raw(IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() /
           IPv6ExtHdrRouting() / IPv6ExtHdrFragment(m=1) / TCP(sport=1, dport=2))
frag6 = raw(IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(offset=5) / (b"x" * 16))

eth4 = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
eth6 = bytes.fromhex("020000000002020000000001") + b"\x86\xdd"
vlan4 = bytes.fromhex("020000000002020000000001 8100004d 0800")
sll_out = bytes.fromhex("0004 0001 0006 020000000001 0000 0800")
sll2_in = bytes.fromhex("86dd 0000 00000003 0001 00 06 0200000000010000")

def d(name, sel, frame, cut=0):
    write("fuzz_decode", name, bytes([sel, cut]) + frame)

d("raw_syn4", RAW, syn4)
d("raw_syn6", RAW, syn6)
d("raw12_udp4", RAW12, udp4)
d("ipv4_echo4", IPV4, echo4)
d("ipv6_echo6", IPV6, echo6)
d("eth_syn4", EN10MB, eth4 + syn4)
d("eth_udp6", EN10MB, eth6 + udp6)
d("eth_vlan_syn4", EN10MB, vlan4 + syn4)
d("eth_padded_udp4", EN10MB, (eth4 + udp4).ljust(60, b"\0"))
d("eth_arp", EN10MB, bytes.fromhex("ffffffffffff020000000001 0806 0001080006040001"))
d("sll_out_syn4", SLL, sll_out + syn4)
d("sll2_in_syn6", SLL2, sll2_in + syn6)
d("null_le_syn4", NULL, b"\x02\0\0\0" + syn4)
d("null_bsd_syn6", NULL, b"\x1e\0\0\0" + syn6)
d("loop_syn4", LOOP, b"\0\0\0\x02" + syn4)
d("unsupported", UNSUPPORTED, syn4)
d("icmp4_time_exceeded", RAW, te4)
d("icmp6_unreach", RAW, unr6)
d("ipv6_ext_chain", RAW, ext6)
d("ipv6_later_fragment", RAW, frag6)
d("snap_cut_syn4", RAW, syn4[:34], cut=26)
# Nasty ones: every length field lying.
d("ihl_small", RAW, b"\x44" + syn4[1:])
d("ihl_long", RAW, b"\x4f" + syn4[1:28])
d("total_short", RAW, syn4[:2] + b"\x00\x13" + syn4[4:])
d("total_long", RAW, syn4[:2] + b"\xff\xff" + syn4[4:])
d("v6_plen_long", RAW, syn6[:4] + b"\xff\xff" + syn6[6:])
d("tcp_doff_small", RAW, syn4[:32] + b"\x30" + syn4[33:])
d("tcp_doff_long", RAW, syn4[:32] + b"\xf0" + syn4[33:])
d("tcp_opt_len0", RAW, syn4[:41] + b"\x00" + syn4[42:])
d("tcp_opt_len_past", RAW, syn4[:58] + b"\x09" + syn4[59:])
d("udp_len_short", RAW, udp4[:24] + b"\x00\x04" + udp4[26:])
d("udp_len_long", RAW, udp4[:24] + b"\xff\xff" + udp4[26:])
d("quoted_cut", RAW, raw(IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=3, code=13) / syn4[:22]))
d("quoted_v6_in_v4", RAW, raw(IP(src="1.1.1.1", dst="2.2.2.2") / ICMP(type=3) / syn6[:48]))
d("ext_loop", RAW, syn6[:6] + b"\x3c" + syn6[7:40] + b"\x3c\x00\0\0\0\0\0\0" * 12)
d("empty", RAW, b"")

def t(name, text):
    write("fuzz_tcp_options_syntax", name, text.encode())

for i, text in enumerate([
        "mss=1460,sack,ts,nop,ws=7", "linux", "none", "", "none,mss=1", "foo",
        "mss=65536", "ws=15", "ws=256", "ts=1:2", "timestamp=4294967295:4294967295", "ts=1",
        "sack=1-2;3-4;5-6;7-8", "sack=1-2;", "kind=30:0a0b", "kind=30:abc", "kind=1:00",
        "kind=255", "kind=0", "linux,linux", "nop," * 40, " sackok , wscale=3 ", "eol,mss=1",
        "MSS=0x5b4", "mss=1460,,ts", "kind=2:05", "ts=:", "sack=-", "kind=30:" + "ab" * 38]):
    t("seed%02d" % i, text)
