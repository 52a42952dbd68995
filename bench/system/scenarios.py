"""Scenario definitions: traffic (pcap files), rule sets in a neutral form, and the plan of measurement points.

Every system gets the same pcap files and the same rules; systems.py translates the neutral rules to an eswitch
YAML config or to OpenFlow for ovs-ofctl. testpmd runs no rules: it is the ceiling (io and macswap forwarding).

Addressing (never leaves the machine: pcap in, net_null out):
  single source port vm1: MAC 02:00:c6:12:00:01, IPv4 198.18.0.1; frames go to MAC 02:00:c6:12:ff:01 (a gateway,
  not a vport, so the l2 rules of eswitch do not claim them).
  scenario b vport v (0..63): MAC 02:00:c6:12:01:vv, IPv4 198.18.1.(v+1).
  rule destinations: 198.18.16.0 + rule number (up to 100,000 rules fit below 198.19.255.255).
"""

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import pcapgen

GATEWAY_MAC = "02:00:c6:12:ff:01"
SRC_MAC = "02:00:c6:12:00:01"
SRC_IP = "198.18.0.1"
RULE_DST_BASE = pcapgen.ip_int("198.18.16.0")
SINK = "uplink0"


@dataclass
class Rule:
    """One rule, spelled with eswitch field names (systems.py maps them to OpenFlow)."""

    table: int
    priority: int
    match: list  # [(field, value)]
    actions: list  # [(name, arg)]: ("output", port), ("drop", "")


@dataclass
class SourcePort:
    name: str
    pcap: str
    frames: int
    mac: Optional[str] = None   # vport binding (anti-spoofing) when the setup has spoofchk
    ipv4: Optional[str] = None


@dataclass
class Setup:
    """What one measurement point needs: ports, traffic files and rules. Identical for every system."""

    key: str                     # identity: points with the same key measure the same thing
    sources: list                # [SourcePort]
    frame_size: int              # wire size with FCS
    flows: int
    rules: list = field(default_factory=list)  # [Rule]: user tables (ACL); empty = port to port
    spoofchk: bool = False       # vports bound to MAC + IPv4; OVS gets the equivalent table-0 rules
    vhost: bool = False          # the source reaches the system over vhost-user, fed by a testpmd guest
    # Which vhost-user shape (with vhost): "rx" = a guest replays a pcap into the system's one vhost-user port
    # (d-rx); "pvp" = a physical-like pcap source -> system -> vhost-user -> guest (macswap) -> the same vhost-user
    # port -> system -> sink (d); "vports" = every source is a vhost-user vport fed by a guest (bv).
    vhost_kind: str = ""
    guest_server: bool = False   # the guests listen on the vhost-user sockets, the systems connect (client mode)
    pvp_vport: Optional[str] = None  # pvp: the vhost-user vport between the source and the sink
    count_at_sink: bool = False  # the point's Mpps is what reached the sink (pvp: what came back through the guest)
    expected_fwd: float = 1.0    # fraction of received packets that must reach the sink
    masks: int = 0               # distinct rule masks (informational)

    @property
    def frames_total(self) -> int:
        return sum(s.frames for s in self.sources)


@dataclass
class Point:
    """One row of the report: a scenario at one parameter setting, run for every system that can express it."""

    id: str                      # "a/64", "c/r10000-m4", ...
    scenario: str                # "a".."f", "flows"
    title: str
    params: dict
    setup: Setup
    systems: list                # system names to run
    churn: bool = False          # scenario e: measure before and during rule churn


# ---------------------------------------------------------------------------------------------------------------
# Traffic and rules


def _write(path: str, frames) -> int:
    if os.path.exists(path):  # deterministic content: a file of this name is already right
        return sum(1 for _ in pcapgen.read_pcap(path))
    tmp = path + ".tmp"
    n = pcapgen.write_pcap(tmp, frames)
    os.replace(tmp, path)
    return n


def port_to_port(traffic_dir: str, size: int, vhost: bool = False) -> Setup:
    """Scenario a (and d-rx): one flow, one rule (everything from the source to the sink)."""
    path = os.path.join(traffic_dir, f"p2p-1flow-{size}.pcap")
    n = _write(path, [pcapgen.Frame(SRC_MAC, GATEWAY_MAC, pcapgen.ip_int(SRC_IP), RULE_DST_BASE, 1024, 5001, size)])
    src = SourcePort("vm1", path, n)
    return Setup(key=f"p2p-s{size}" + ("-vhost" if vhost else ""), sources=[src], frame_size=size, flows=1,
                 vhost=vhost, vhost_kind="rx" if vhost else "")


PVP_SOURCE = "wire0"


def pvp(traffic_dir: str, size: int) -> Setup:
    """Scenario d (PVP): one flow from a physical-like port (pcap) to the VM's MAC and IPv4; the system sends it to
    the vhost-user vport vm1, the guest swaps the MACs and sends it back on the same port, the system sends what
    comes back from vm1 to the sink. Counted at the sink."""
    path = os.path.join(traffic_dir, f"pvp-1flow-{size}.pcap")
    n = _write(path, [pcapgen.Frame(GATEWAY_MAC, SRC_MAC, RULE_DST_BASE, pcapgen.ip_int(SRC_IP), 5001, 1024, size)])
    return Setup(key=f"pvp-s{size}", sources=[SourcePort(PVP_SOURCE, path, n)], frame_size=size, flows=1,
                 vhost=True, vhost_kind="pvp", guest_server=True, pvp_vport="vm1", count_at_sink=True)


# Fields a rule may match besides ip_proto=17 and its own ipv4_dst; mask m matches the subset given by m's bits.
_OPTIONAL_FIELDS = ("udp_dst", "ipv4_src", "eth_src", "dscp")


def _udp_dst_of(r: int) -> int:
    return 1024 + r % 60000


def acl_rules(n_rules: int, n_masks: int) -> list:
    """Rule scaling (c): n_rules non-overlapping rules (each its own ipv4_dst) over n_masks masks. Rule r uses mask
    r % n_masks; mask m adds the fields of m's bits from _OPTIONAL_FIELDS, with the values the traffic carries."""
    if n_masks not in (1, 2, 4, 8, 16):
        raise ValueError("masks must be 1, 2, 4, 8 or 16")
    rules = []
    for r in range(n_rules):
        m = r % n_masks
        match = [("ipv4_dst", pcapgen.ip_str(RULE_DST_BASE + r)), ("ip_proto", "17")]
        if m & 1:
            match.append(("udp_dst", str(_udp_dst_of(r))))
        if m & 2:
            match.append(("ipv4_src", SRC_IP))
        if m & 4:
            match.append(("eth_src", SRC_MAC))
        if m & 8:
            match.append(("dscp", "0"))
        rules.append(Rule(0, 1000, match, [("output", SINK)]))
    return rules


def _flow_rule(k: int, n_rules: int, n_flows: int) -> int:
    """The rule flow k hits: every rule when there are more flows than rules, else spread over all rule ids."""
    if n_rules <= n_flows:
        return k % n_rules
    stride = n_rules // n_flows
    return k * stride + (k % stride)


def rule_scaling(traffic_dir: str, n_rules: int, n_masks: int, n_flows: int, size: int = 64) -> Setup:
    """Scenario c and the flow sweep: one source port, n_flows distinct flows, each matching one of the rules."""
    path = os.path.join(traffic_dir, f"acl-r{n_rules}-m{n_masks}-f{n_flows}-s{size}.pcap")
    src_ip = pcapgen.ip_int(SRC_IP)

    def frames():
        for k in range(n_flows):
            r = _flow_rule(k, n_rules, n_flows)
            # Flows that share a rule differ in the UDP source port, which no rule matches.
            sport = 1024 + (k // n_rules) % 60000 if n_rules <= n_flows else 1024
            yield pcapgen.Frame(SRC_MAC, GATEWAY_MAC, src_ip, RULE_DST_BASE + r, sport, _udp_dst_of(r), size)

    n = _write(path, frames())
    return Setup(key=f"acl-r{n_rules}-m{n_masks}-f{n_flows}-s{size}", sources=[SourcePort("vm1", path, n)],
                 frame_size=size, flows=n_flows, rules=acl_rules(n_rules, n_masks), masks=n_masks)


def vport_mac(v: int) -> str:
    return f"02:00:c6:12:01:{v:02x}"


def vport_ip(v: int) -> str:
    return f"198.18.1.{v + 1}"


def antispoof(traffic_dir: str, n_vports: int, n_rules: int, n_flows: int, spoof_pct: float, size: int) -> Setup:
    """Scenario b: n_vports vports bound to one MAC + IPv4 each (spoofchk), n_rules ACL rules (rule i belongs to
    vport i % n_vports and allows one UDP destination), n_flows distinct flows over the vports, spoof_pct % of them
    spoofed (half with a foreign source IPv4, half with a foreign source MAC), each aimed at an allowed destination
    so that only anti-spoofing stops it.

    net_pcap loads a whole file into mbufs and each vport must be its own port (the binding is per ingress port), so
    the flows are split over one pcap per vport: flow k comes from vport k % n_vports."""
    if n_rules < n_vports:
        raise ValueError("need at least one ACL rule per vport")
    spoof_every = round(100 / spoof_pct) if spoof_pct > 0 else 0
    rules = []
    for i in range(n_rules):
        v = i % n_vports
        rules.append(Rule(0, 1000, [("in_port", f"vm{v}"), ("ipv4_dst", pcapgen.ip_str(RULE_DST_BASE + i)),
                                    ("ip_proto", "17"), ("udp_dst", str(_udp_dst_of(i)))], [("output", SINK)]))
    sources = []
    tag = f"as-v{n_vports}-r{n_rules}-f{n_flows}-p{spoof_pct:g}-s{size}"
    spoofed = 0
    for v in range(n_vports):
        mine = list(range(v, n_flows, n_vports))
        rules_of_v = len(range(v, n_rules, n_vports))
        path = os.path.join(traffic_dir, f"{tag}-vm{v}.pcap")

        def frames(v=v, mine=mine, rules_of_v=rules_of_v):
            mac, ip = vport_mac(v), pcapgen.ip_int(vport_ip(v))
            for k in mine:
                j = (k // n_vports) % rules_of_v
                i = v + n_vports * j
                sport = 1024 + ((k // n_vports) // rules_of_v) % 60000
                src_mac, src_ip = mac, ip
                if spoof_every and k % spoof_every == spoof_every - 1:
                    if (k // spoof_every) % 2 == 0:
                        src_ip = pcapgen.ip_int(f"198.18.2.{v + 1}")      # address bound to nobody
                    else:
                        src_mac = f"02:00:c6:13:01:{v:02x}"             # MAC of nobody
                yield pcapgen.Frame(src_mac, GATEWAY_MAC, src_ip, RULE_DST_BASE + i, sport, _udp_dst_of(i), size)

        n = _write(path, frames())
        spoofed += sum(1 for k in mine if spoof_every and k % spoof_every == spoof_every - 1)
        sources.append(SourcePort(f"vm{v}", path, n, vport_mac(v), vport_ip(v)))
    return Setup(key=tag, sources=sources, frame_size=size, flows=n_flows, rules=rules, spoofchk=True,
                 expected_fwd=1 - spoofed / n_flows, masks=1)


def antispoof_vhost(traffic_dir: str, n_vports: int, n_rules: int, n_flows: int, spoof_pct: float,
                    size: int) -> Setup:
    """Scenario bv: b with every vport a vhost-user vport; guests (testpmd net_virtio_user, several processes)
    replay each vport's pcap into its vhost-user port. Rules, flows and the spoofed share as b."""
    s = antispoof(traffic_dir, n_vports, n_rules, n_flows, spoof_pct, size)
    s.key += "-vhost"
    s.vhost, s.vhost_kind, s.guest_server = True, "vports", True
    return s


# ---------------------------------------------------------------------------------------------------------------
# The plan


@dataclass
class PlanOptions:
    short: bool = False
    scenarios: tuple = ("a", "b", "bv", "c", "d", "d-rx", "e", "f", "flows")


PEERS_ALL = ["eswitch", "testpmd-io", "testpmd-macswap", "ovs"]
PEERS_RULES = ["eswitch", "ovs"]


def max_ethports() -> int:
    """RTE_MAX_ETHPORTS of the installed DPDK (every system here links Debian's build): ports per process."""
    for path in ("/usr/include/x86_64-linux-gnu/dpdk/rte_build_config.h", "/usr/include/dpdk/rte_build_config.h"):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("#define RTE_MAX_ETHPORTS"):
                        return int(line.split()[2])
        except (OSError, ValueError, IndexError):
            continue
    return 32


def plan(traffic_dir: str, opts: PlanOptions) -> list:
    """The measurement points, in run order. Short mode keeps every scenario but shrinks it."""
    os.makedirs(traffic_dir, exist_ok=True)
    want = set(opts.scenarios)
    short = opts.short
    points = []

    def a_point(s, scenario):
        return Point(f"a/{s}", scenario, f"port to port, 1 flow, {s} B", {"size": s, "flows": 1, "rules": 1},
                     port_to_port(traffic_dir, s), PEERS_ALL)

    # 64 vports need 65 DPDK ports in one process; Debian's DPDK allows RTE_MAX_ETHPORTS (32) in each of the three
    # systems. So b runs as many vports as fit (31 + the uplink), the same for everyone; rules and flows unchanged.
    b_vports = min(64, max_ethports() - 1)
    b_rules, b_flows = (1000, 6200) if short else (10000, 100000)

    def b_setup(s):
        return antispoof(traffic_dir, b_vports, b_rules, b_flows, 5.0, s)

    def b_point(s, scenario):
        return Point(f"b/{s}", scenario, f"{b_vports} vports anti-spoofing + {b_rules} ACL rules, {b_flows} flows "
                     f"(5% spoofed), {s} B", {"size": s, "vports": b_vports, "rules": b_rules, "flows": b_flows,
                                              "spoofed_pct": 5}, b_setup(s), PEERS_ALL)

    f_sizes = [1518] if short else [512, 1518]
    if "a" in want:
        points.append(a_point(64, "a"))
    if "f" in want:
        points += [a_point(s, "f") for s in f_sizes]
    if "b" in want:
        points.append(b_point(64, "b"))
    if "f" in want and not short:
        points += [b_point(s, "f") for s in f_sizes]

    c_flows = 1000 if short else 10000
    if "c" in want:
        rule_counts = [10, 1000] if short else [10, 1000, 10000, 100000]
        mask_counts = [1, 4] if short else [1, 4, 16]
        for m in mask_counts:
            for r in rule_counts:
                points.append(Point(f"c/r{r}-m{m}", "c", f"rule scaling: {r} rules over {m} mask(s), "
                                    f"{c_flows} flows, 64 B", {"size": 64, "rules": r, "masks": m, "flows": c_flows},
                                    rule_scaling(traffic_dir, r, m, c_flows), PEERS_RULES))
        # The ceiling does not depend on the rules: testpmd forwards the same traffic once.
        points.append(Point("c/ceiling", "c", f"rule scaling ceiling: testpmd io on the same {c_flows} flows, 64 B",
                            {"size": 64, "rules": 0, "masks": 0, "flows": c_flows},
                            rule_scaling(traffic_dir, 1000, 4, c_flows), ["testpmd-io"]))

    if "flows" in want:
        for f in ([1, 1000] if short else [1, 1000, 10000, 100000]):
            points.append(Point(f"flows/f{f}", "flows", f"flow scaling: {f} flows over 1000 rules (4 masks), 64 B",
                                {"size": 64, "rules": 1000, "masks": 4, "flows": f},
                                rule_scaling(traffic_dir, 1000, 4, f), ["eswitch", "ovs", "testpmd-io"]))

    if "bv" in want:
        bv_vports = 64
        points.append(Point("bv/64", "bv", f"{bv_vports} vhost-user vports (testpmd virtio_user guests) "
                            f"anti-spoofing + {b_rules} ACL rules, {b_flows} flows (5% spoofed), 64 B",
                            {"size": 64, "vports": bv_vports, "rules": b_rules, "flows": b_flows, "spoofed_pct": 5},
                            antispoof_vhost(traffic_dir, bv_vports, b_rules, b_flows, 5.0, 64),
                            ["eswitch", "testpmd-io", "ovs"]))

    if "d" in want:
        for size in ([64] if short else [64, 1518]):
            points.append(Point(f"d/{size}", "d", f"PVP: 1 flow of {size} B from a pcap port into the system, over "
                                "vhost-user to a testpmd virtio_user guest (macswap), back over the same vhost-user "
                                "port, out to net_null; counted at the sink", {"size": size, "flows": 1, "rules": 2},
                                pvp(traffic_dir, size), ["eswitch", "testpmd-io", "ovs"]))

    if "d-rx" in want and not short:   # the old d: short mode runs d (PVP) and bv for vhost-user
        for size in [64, 1518]:
            points.append(Point(f"d-rx/{size}", "d-rx", "vhost-user rx: a testpmd virtio_user guest replays 1 "
                                f"flow of {size} B into the system over vhost-user; the system forwards it to net_null",
                                {"size": size, "flows": 1, "rules": 1}, port_to_port(traffic_dir, size, vhost=True),
                                ["eswitch", "testpmd-io", "ovs"]))

    if "e" in want:
        points.append(Point("e/64", "e", f"rule churn: 1000 rule changes/s during b ({b_vports} vports, {b_rules} "
                            f"rules, {b_flows} flows), 64 B", {"size": 64, "rules": b_rules, "flows": b_flows,
                                                               "changes_per_s": 1000}, b_setup(64), PEERS_RULES,
                            churn=True))
    return points


def mbufs_for(setup: Setup, floor: int = 16384) -> int:
    """Pool size: net_pcap keeps every frame of its file in an mbuf, plus room for bursts in flight. vhost-user
    sources hold no frames in the system (the guests replay them; rte_vhost copies each into a fresh mbuf)."""
    held = 0 if setup.vhost_kind in ("rx", "vports") else setup.frames_total
    need = held + 8192 + 512 * len(setup.sources)
    return max(floor, 1 << math.ceil(math.log2(need)))
