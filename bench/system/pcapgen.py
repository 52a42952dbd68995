#!/usr/bin/python3
"""Writes pcap files of synthetic IPv4/UDP frames for the system benchmarks.

Frame sizes: a "size" here is the Ethernet frame on the wire *including* its 4-byte FCS, as in RFC 2544 (64, 512,
1518). pcap files, and every DPDK port, carry frames without the FCS, so a 64-byte frame is 60 bytes in the file
(512 -> 508, 1518 -> 1514). Every system in the benchmark reads the same files, so they all see the same bytes.

Each frame: Ethernet II + IPv4 (20 bytes, valid header checksum, TTL 64, DF) + UDP (checksum 0) + zero padding.

Fast enough for 100,000 frames per second of Python (header templates are packed once, per-frame fields patched
with struct.pack_into). Usable as a module (Frame, write_pcap) or from the command line:

  pcapgen.py OUT.pcap --flows 10000 --size 64 [--src-mac M] [--dst-mac M] [--src-ip A] [--dst-ip A]

which writes one frame per flow, flows differing in UDP source port and destination address.
"""

import argparse
import ipaddress
import struct
from dataclasses import dataclass
from typing import Iterable

PCAP_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET
FCS_LEN = 4
ETH_LEN = 14
IPV4_LEN = 20
UDP_LEN = 8
MIN_WIRE_SIZE = 64
MAX_WIRE_SIZE = 1518


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


def ip_int(addr: str) -> int:
    return int(ipaddress.IPv4Address(addr))


def ip_str(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def pcap_len(wire_size: int) -> int:
    """Bytes in the pcap (and in the mbuf) for a frame of `wire_size` bytes on the wire (FCS included)."""
    if not MIN_WIRE_SIZE <= wire_size <= MAX_WIRE_SIZE:
        raise ValueError(f"frame size {wire_size} is outside {MIN_WIRE_SIZE}..{MAX_WIRE_SIZE} (FCS included)")
    return wire_size - FCS_LEN


@dataclass(frozen=True)
class Frame:
    """One IPv4/UDP frame. Addresses as text or int; size is the wire size with FCS."""

    src_mac: str
    dst_mac: str
    src_ip: int
    dst_ip: int
    sport: int
    dport: int
    size: int = 64
    dscp: int = 0


def _ip_checksum(header: bytes) -> int:
    s = sum(struct.unpack("!10H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class FrameWriter:
    """Caches one template per (MACs, size, dscp) and patches addresses and ports per frame."""

    def __init__(self):
        self._templates = {}

    def _template(self, f: Frame) -> bytearray:
        key = (f.src_mac, f.dst_mac, f.size, f.dscp)
        t = self._templates.get(key)
        if t is None:
            n = pcap_len(f.size)
            t = bytearray(n)
            t[0:6] = mac_bytes(f.dst_mac)
            t[6:12] = mac_bytes(f.src_mac)
            t[12:14] = b"\x08\x00"
            ip_total = n - ETH_LEN
            struct.pack_into("!BBHHHBBH", t, ETH_LEN, 0x45, f.dscp << 2, ip_total, 0, 0x4000, 64, 17, 0)
            struct.pack_into("!HHHH", t, ETH_LEN + IPV4_LEN, 0, 0, ip_total - IPV4_LEN, 0)
            self._templates[key] = t
        return t

    def bytes_of(self, f: Frame) -> bytes:
        t = self._template(f)
        struct.pack_into("!II", t, ETH_LEN + 12, f.src_ip, f.dst_ip)
        struct.pack_into("!H", t, ETH_LEN + 10, 0)
        struct.pack_into("!H", t, ETH_LEN + 10, _ip_checksum(bytes(t[ETH_LEN:ETH_LEN + IPV4_LEN])))
        struct.pack_into("!HH", t, ETH_LEN + IPV4_LEN, f.sport, f.dport)
        return bytes(t)


def write_pcap(path: str, frames: Iterable[Frame]) -> int:
    """Writes the frames in order; returns how many. Timestamps are 1 us apart (replay ignores them)."""
    w = FrameWriter()
    count = 0
    chunks = [PCAP_GLOBAL_HEADER]
    for i, f in enumerate(frames):
        data = w.bytes_of(f)
        chunks.append(struct.pack("<IIII", i // 1000000, i % 1000000, len(data), len(data)))
        chunks.append(data)
        count += 1
    if count == 0:
        raise ValueError(f"{path}: no frames to write (net_pcap cannot replay an empty file)")
    with open(path, "wb") as out:
        out.write(b"".join(chunks))
    return count


def read_pcap(path: str):
    """Yields the frames of a pcap written by write_pcap (for tests and checks)."""
    with open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack_from("<I", data, 0)
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{path}: not a little-endian microsecond pcap")
    off = len(PCAP_GLOBAL_HEADER)
    while off < len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, off)
        off += 16
        yield data[off:off + incl]
        off += incl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=1)
    ap.add_argument("--size", type=int, default=64, help="wire size with FCS: 64..1518")
    ap.add_argument("--src-mac", default="02:00:c6:12:00:01")
    ap.add_argument("--dst-mac", default="02:00:c6:12:ff:01")
    ap.add_argument("--src-ip", default="198.18.0.1")
    ap.add_argument("--dst-ip", default="198.19.0.1")
    a = ap.parse_args()
    src, dst = ip_int(a.src_ip), ip_int(a.dst_ip)
    frames = (Frame(a.src_mac, a.dst_mac, src, dst + (k // 60000), 1024 + k % 60000, 5001, a.size)
              for k in range(a.flows))
    n = write_pcap(a.out, frames)
    print(f"{a.out}: {n} frames of {a.size} bytes on the wire ({pcap_len(a.size)} in the file)")


if __name__ == "__main__":
    main()
