#!/usr/bin/python3
"""SMC peers for tests/e2e/smc_switch.sh: one process holds a packet socket inside each of two network namespaces
(a socket opened inside a namespace stays there), so it sends a crafted frame from one side and captures what
arrives on the other without racing a separately started sniffer, and scapy loads once.

usage: smc_peer.py NS1 IFACE1 NS2 IFACE2, then one command per stdin line:
  1to2|2to1 KIND [key=value ...]  ->  one JSON line {sent, received[]}: what arrived, whether its checksums hold
  KIND: syn | synack | fin | proposal | accept | confirm | decline | roce
  KIND data: a plain TCP payload segment (len=N bytes of 'x')
  keys: smac dmac src dst sport dport seq smc(0/1) qpn rkey opcode dqp wait(seconds)
        mac (the RoCE MAC a CLC message claims; default smac), gid (32 hex digits; default derived from src:
        ::ffff:a.b.c.d or the IPv6 source), subnet (a.b.c.d/len, the Proposal's IPv4 prefix; default src's /24),
        split=N (send the segment's payload as two segments: N bytes, then the rest)
CLC layouts (SMC-R, v1) follow /work/shared/design/SMC-NOTES.md; tshark decodes them.
"""
import ctypes
import json
import os
import select
import socket
import sys
import time

from scapy.all import Ether, IP, IPv6, TCP, UDP, Raw, conf, raw  # noqa: E402
from scapy.sendrecv import AsyncSniffer  # noqa: E402

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)
SMC_OPT = b"\xfe\x06\xe2\xd4\xc3\xd9"
EYE_R = b"\xe2\xd4\xc3\xd9"


HOME_NS = os.open("/proc/self/ns/net", os.O_RDONLY)  # where we started: "-"


def setns(name):
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY) if name != "-" else HOME_NS
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        if fd != HOME_NS:
            os.close(fd)


def socket_in(ns, iface):
    setns(ns)
    s = conf.L2socket(iface=iface)
    return s


def clc(msg_type, length, body, first_contact=False):
    hdr = EYE_R + bytes([msg_type]) + length.to_bytes(2, "big") + bytes([0x10 | (0x08 if first_contact else 0)])
    m = bytearray(hdr + body)
    m += bytes(length - 4 - len(m))
    m += EYE_R
    assert len(m) == length, (len(m), length)
    return bytes(m)


def gid_of(a):
    """The GID a CLC message claims: gid=, else derived from the source address (IPv4-mapped or the IPv6 one)."""
    if "gid" in a:
        return bytes.fromhex(a["gid"])
    if ":" in a["src"]:
        return socket.inet_pton(socket.AF_INET6, a["src"])
    return bytes(10) + b"\xff\xff" + socket.inet_aton(a["src"])


def roce_mac(a):
    return bytes.fromhex(a.get("mac", a["smac"]).replace(":", ""))


def proposal(a):
    body = bytearray(length_body := 92 - 8)
    body[0:8] = b"PEERID01"                      # @8 peer id
    body[8:24] = gid_of(a)                       # @16 GID
    body[24:30] = roce_mac(a)                    # @32 RoCE MAC
    body[30:32] = (40).to_bytes(2, "big")        # @38 iparea offset: after the 40-byte SMC-D area
    if "subnet" in a:
        net, plen = a["subnet"].split("/")
        body[72:76] = socket.inet_aton(net)      # @80 IPv4 subnet
        body[76] = int(plen)                     # prefix length
    else:
        ip = bytes(map(int, a["src"].split(".")))
        body[72:76] = ip[:3] + b"\x00"
        body[76] = 24
    del length_body
    return clc(1, 92, bytes(body[:80]))


def accept_confirm(a, msg_type):
    body = bytearray(64 - 8)
    body[0:8] = b"PEERID02"                      # @8
    body[8:24] = gid_of(a)                       # @16 GID
    body[24:30] = roce_mac(a)                    # @32 MAC
    body[30:33] = int(a["qpn"], 0).to_bytes(3, "big")        # @38 QPN
    body[33:37] = int(a["rkey"], 0).to_bytes(4, "big")       # @41 rkey
    body[37] = 1                                 # @45 RMBE idx
    body[38:42] = (0x1234).to_bytes(4, "big")    # @46 alert token
    body[42] = 0x13                              # @50 RMBE size / QP MTU
    body[44:52] = (0x7f0000001000).to_bytes(8, "big")  # @52 RMB VA
    body[53:56] = (0x000100).to_bytes(3, "big")  # @61 PSN
    return clc(msg_type, 68, bytes(body), first_contact=True)


def decline(a):
    body = bytearray(28 - 8 - 4)
    body[0:8] = b"PEERID01"
    body[8:12] = int(a.get("code", "0x03030000"), 0).to_bytes(4, "big")
    return clc(4, 28, bytes(body))


def frame(kind, a):
    v6 = ":" in a["src"]
    l3 = (IPv6(src=a["src"], dst=a["dst"]) if v6 else IP(src=a["src"], dst=a["dst"]))
    eth = Ether(src=a["smac"], dst=a["dmac"])
    sport, dport = int(a.get("sport", 40000)), int(a.get("dport", 5000))
    if kind == "roce":
        opcode = int(a.get("opcode", "0x04"), 0)
        bth = bytes([opcode, 0, 0xff, 0xff, 0]) + int(a["dqp"], 0).to_bytes(3, "big") + b"\x00" + (7).to_bytes(3, "big")
        reth = b""
        if opcode in (0x06, 0x0A, 0x0B, 0x0C):
            reth = (0x7f0000001000).to_bytes(8, "big") + int(a.get("rkey", "0"), 0).to_bytes(4, "big") + (64).to_bytes(4, "big")
        return eth / l3 / UDP(sport=49152, dport=4791) / Raw(bth + reth + bytes(64) + b"ICRC")
    opts = []
    if a.get("smc", "0") == "1":
        opts = [("NOP", None), ("NOP", None), (254, b"\xe2\xd4\xc3\xd9")]
    if kind in ("syn", "synack"):
        opts = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)] + opts
        flags = "S" if kind == "syn" else "SA"
        return eth / l3 / TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=(0 if kind == "syn" else 2001), options=opts)
    if kind == "fin":
        return eth / l3 / TCP(sport=sport, dport=dport, flags="FA", seq=5000, ack=6000)
    payload = {"proposal": lambda: proposal(a), "accept": lambda: accept_confirm(a, 2),
               "confirm": lambda: accept_confirm(a, 3), "decline": lambda: decline(a),
               "data": lambda: b"x" * int(a.get("len", "100"))}[kind]()
    return eth / l3 / TCP(sport=sport, dport=dport, flags="PA", seq=int(a.get("seq", 1001)), ack=2001) / Raw(payload)


def segments(f, a):
    """The frame as sent: one, or with split=N its payload in two segments (N bytes, then the rest)."""
    if "split" not in a:
        return [f]
    n = int(a["split"])
    payload = bytes(f[TCP].payload)
    first, second = f.copy(), f.copy()
    first[TCP].remove_payload()
    first = first / Raw(payload[:n])
    second[TCP].remove_payload()
    second[TCP].seq = f[TCP].seq + n
    second = second / Raw(payload[n:])
    for p in (first, second):
        if IP in p:
            del p[IP].len
            del p[IP].chksum
        else:
            del p[IPv6].plen
        del p[TCP].chksum
    return [first, second]


def describe(p):
    p = Ether(raw(p))  # built fields (data offset, checksums) filled in
    out = {"hex": raw(p).hex()}
    if TCP in p:
        opts = bytes(p[TCP])[20:p[TCP].dataofs * 4]
        out["smc_option"] = SMC_OPT in opts
        out["tcp_options_hex"] = opts.hex()
        c = Ether(raw(p))
        got = c[TCP].chksum
        del c[TCP].chksum
        if IP in c:
            del c[IP].chksum
        fixed = Ether(raw(c))
        out["tcp_checksum_ok"] = fixed[TCP].chksum == got
        out["ip_checksum_ok"] = (IP not in p) or fixed[IP].chksum == p[IP].chksum
        out["flags"] = str(p[TCP].flags)
        out["seq"] = p[TCP].seq
        out["payload_len"] = len(bytes(p[TCP].payload))
    if UDP in p and p[UDP].dport == 4791:
        out["roce_dqp"] = int.from_bytes(bytes(p[UDP].payload)[5:8], "big")
    return out


def main():
    ns1, if1, ns2, if2 = sys.argv[1:5]
    socks = {"1": socket_in(ns1, if1), "2": socket_in(ns2, if2)}
    setns("-")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        direction, kind = words[0], words[1]  # direction: 1to2 | 2to1
        a = dict(kv.split("=", 1) for kv in words[2:])
        wait = float(a.pop("wait", "0.5"))
        f = frame(kind, a)
        tx, rx = socks[direction[0]], socks[direction[-1]]
        want_udp = kind == "roce"

        def match(p):
            if want_udp:
                return UDP in p and p[UDP].dport == 4791
            return TCP in p and p[TCP].sport == f[TCP].sport and p[TCP].dport == f[TCP].dport

        while select.select([rx], [], [], 0)[0]:  # what arrived before this command is not its answer
            rx.recv()
        segs = segments(f, a)
        for seg in segs:
            tx.send(seg)
        got = []
        deadline = time.time() + wait
        while (left := deadline - time.time()) > 0:
            if not select.select([rx], [], [], left)[0]:
                break
            p = rx.recv()
            if p is not None and match(p):
                got.append(describe(p))
        print(json.dumps({"sent": describe(f), "segments": [describe(x) for x in segs], "received": got}), flush=True)


if __name__ == "__main__":
    main()
