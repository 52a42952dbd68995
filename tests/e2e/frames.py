#!/usr/bin/python3
# Frame corpus for the attachment tests (attachments.sh): IPv4 and IPv6 fragments plus whole datagrams, written
# to a pcap and/or sent on an interface, and a frame-exact comparison of what was sent with what arrived.
#
#   frames.py make OUT.pcap SRC_MAC DST_MAC SRC4 DST4 SRC6 DST6 [TAG]
#       writes the corpus: IPv4 UDP 3000 B in 3 fragments (first, middle, last; DF clear, MF set), the same with
#       the fragments in reverse order, an IPv6 UDP 3000 B datagram in 3 fragments (fragment header), one whole
#       IPv4 and one whole IPv6 UDP datagram. TAG (an integer) goes into the IP ids and ports, so corpora of
#       different runs differ.
#   frames.py send IFACE IN.pcap        sends every frame of the pcap on IFACE (layer 2, as is)
#   frames.py compare SENT.pcap GOT.pcap
#       every frame of SENT must be in GOT byte for byte (as many times as sent); prints one line with the
#       counts and exits 1 when something is missing.
#   frames.py count IN.pcap             prints how many frames the pcap holds
import sys
from collections import Counter

import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import (Ether, IP, IPv6, UDP, Raw, IPv6ExtHdrFragment, fragment, fragment6, rdpcap, wrpcap,
                       sendp)


def make(out, smac, dmac, s4, d4, s6, d6, tag=0):
    tag = int(tag)
    frames = []
    payload = bytes((i * 7 + tag) & 0xff for i in range(3000))
    ip4 = IP(src=s4, dst=d4, id=0x4000 + tag, flags=0) / UDP(sport=40000 + tag, dport=9) / Raw(payload)
    frags4 = fragment(ip4, fragsize=1024)
    assert len(frags4) == 3, len(frags4)
    frames += [Ether(src=smac, dst=dmac) / f for f in frags4]
    ip4b = IP(src=s4, dst=d4, id=0x5000 + tag, flags=0) / UDP(sport=41000 + tag, dport=9) / Raw(payload)
    frames += [Ether(src=smac, dst=dmac) / f for f in reversed(fragment(ip4b, fragsize=1024))]
    ip6 = (IPv6(src=s6, dst=d6) / IPv6ExtHdrFragment(id=0x6000 + tag) / UDP(sport=42000 + tag, dport=9) /
           Raw(payload))
    frags6 = fragment6(ip6, 1280)
    assert len(frags6) == 3, len(frags6)
    frames += [Ether(src=smac, dst=dmac) / f for f in frags6]
    frames.append(Ether(src=smac, dst=dmac) / IP(src=s4, dst=d4, id=0x7000 + tag) /
                  UDP(sport=43000 + tag, dport=9) / Raw(b"whole-ipv4"))
    frames.append(Ether(src=smac, dst=dmac) / IPv6(src=s6, dst=d6) / UDP(sport=44000 + tag, dport=9) /
                  Raw(b"whole-ipv6"))
    # Build every frame to bytes once so lengths and checksums are fixed before writing.
    wrpcap(out, [Ether(bytes(f)) for f in frames])


def raw_frames(path):
    try:
        return [bytes(p) for p in rdpcap(path)]
    except FileNotFoundError:
        return []


def compare(sent_path, got_path):
    sent = Counter(raw_frames(sent_path))
    got = Counter(raw_frames(got_path))
    missing = sent - got
    n_sent = sum(sent.values())
    n_ok = n_sent - sum(missing.values())
    print(f"{n_ok}/{n_sent} frames arrived byte for byte ({sum(got.values())} captured)")
    for frame, n in missing.items():
        print(f"  missing x{n}: {Ether(frame).summary()} ({len(frame)} bytes)")
    return 0 if n_sent and not missing else 1


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(*sys.argv[2:])
    elif cmd == "send":
        sendp([Ether(f) for f in raw_frames(sys.argv[3])], iface=sys.argv[2], verbose=False)
    elif cmd == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    elif cmd == "count":
        print(len(raw_frames(sys.argv[2])))
    else:
        sys.exit(f"frames.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
