#!/usr/bin/env bash
# Dirty-page logging shown by a real live migration: QEMU itself migrates a running Linux guest (Debian's stock
# kernel, virtio_net, QEMU 7.2 TCG, vectors=0, memfd share=on) whose NIC is an eswitch vhost-user vport (server
# mode), to a second QEMU on the same host (-incoming unix:), while a kernel tenant in a namespace streams UDP
# into the guest. Both QEMUs are vhost-user clients of the same eswitchd socket: the destination connects at
# start, the source's device stops at the end of precopy and the destination's starts.
#
# What makes the test able to catch a guest page written without being logged: the guest's receiver
# (guest_udp_sink.c, static) binds its socket with a 64 MiB receive buffer and is then stopped (SIGSTOP) for the
# whole migration, so every datagram delivered meanwhile stays in the guest's socket queue, in the very pages
# rte_vhost_enqueue_burst wrote on the source, many of them while QEMU had already sent those pages once. QEMU
# resends a page only if it is dirty: in its own tracking (the guest's CPU) or in the vhost log (LOG_ALL +
# VHOST_USER_SET_LOG_BASE: rte_vhost marks what it writes). A page rte_vhost wrote without logging it reaches the
# destination stale: the datagram in it is then either an old one (a duplicate sequence number), garbage (its
# UDP checksum fails in the guest: InCsumErrors, or its CRC-32 fails here), or missing (a stale used ring; rte_vhost
# also logs "mismatches" when the destination starts its rings).
# Each datagram is a 1024-byte record: "ESWM", sequence, send time, bytes derived from the sequence, CRC-32.
# After the migration the destination guest answers pings, is let go (a TCP "go" it polls for), its receiver
# drains the queue into a file, and the guest sends that file back over TCP: every record is checked here.
#
# Checked: eswitchd saw LOG_ALL with a log area (peer counters log_starts, log_area_bytes) and delivered frames
# while it was on (log_enqueued); the migration completed; the destination's RAM, paused (-S) at the switchover,
# equals the source's page for page (pmemsave of both: a page the back-end wrote without logging it, or the guest's
# CPU wrote without QEMU noticing, differs - this catches a hole directly, whether or not the guest trips on it);
# the destination guest answers ping and carries the TCP transfer of its file (byte counts at both ends); not one
# record corrupted or duplicated, the guest counted no UDP checksum error, rte_vhost saw no used-index mismatch;
# records sent during the precopy arrived. Losses (the switchover, a full socket) are counted and reported, not
# required to be zero; the stream pauses while the RAM is compared.
#
# Modes: `held` (default) stops the guest's receiver as above; `running` lets it read all along (what is checked
# is then only what was in flight at the switchover, plus the guest's health). A 4th argument `tap` runs the same
# migration without vhost-user and without eswitchd (QEMU's own virtio-net on a tap per QEMU, on a bridge with the
# tenant): the baseline that tells QEMU's faults from the switch's.
#
# Guest RAM is 512 MiB less 8 KiB because of a QEMU 7.2 TCG bug (below, at ESW_GUEST_MEM; vdpa/README.md "Live
# migration with QEMU"): with 512M (ESW_QMIG_MEM=512M) the destination's RAM differs from the source's in a few
# pages and its kernel oopses or stops refilling its RX ring in about 2 runs of 3 - with the `tap` baseline too.
#
# usage: vhost_qemu_migrate.sh PATH/TO/eswitchd PATH/TO/eswitchctl [held|running] [vhost|tap]
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl}
MODE=${3:-held}  # held | running (see above)
NET=${4:-vhost}  # vhost | tap (see above)
[[ ($MODE == running || $MODE == held) && ($NET == vhost || $NET == tap) ]] ||
  { echo "usage: $0 eswitchd eswitchctl [running|held] [vhost|tap]"; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
# shellcheck source=../../scripts/lib/guest.sh
source "$HERE/../../scripts/lib/guest.sh"
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: qemu-system-x86_64 not installed (scripts/setup.sh)"; exit 77; }
[[ -x /bin/busybox ]] || { echo "SKIP: busybox-static not installed (scripts/setup.sh)"; exit 77; }
command -v gcc >/dev/null || { echo "SKIP: gcc not installed"; exit 77; }
esw_e2e_begin vqmig
RAMDUMP="/dev/shm/esw-vqmig-$$"  # the two QEMUs' RAM, compared at the switchover (tmpfs: 1 GiB for seconds)
(($(df --output=avail -k /dev/shm 2>/dev/null | tail -1 || echo 0) > 1200000)) || RAMDUMP="$WORK/ram"
trap 'rm -rf "$RAMDUMP"; esw_e2e_cleanup' EXIT
mkdir -p "$RAMDUMP"
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
esw_guest_kernel || fail "no guest kernel"
RATE=500  # records per second into the guest
# The guest holds every record of the stream in its stopped receiver's socket until after the migration (about
# 2.5 KiB of guest memory each): with 256M a TCG guest stopped refilling its RX ring at ~10k of them.
# 512 MiB less 8 KiB, on purpose: QEMU before 9.0 under TCG loses guest CPU writes during a migration when the RAM
# block's size is a multiple of 64 pages (256 KiB) - the bitmap sync's fast path clears dirty bits without
# re-arming the vCPU's TLB dirty tracking (fixed upstream by "physmem: Fix migration dirty bitmap coherency with
# TCG memory access", QEMU 9.0; Debian 12's 7.2.22 lacks it). Any other size takes the per-page path that does.
# See vdpa/README.md "Live migration with QEMU". ESW_QMIG_MEM=512M reproduces the corruption (with or without
# vhost-user: the `tap` baseline).
ESW_GUEST_MEM=${ESW_QMIG_MEM:-524280K}

MAC1=02:00:c6:12:00:01 MAC3=02:00:c6:12:00:03
esw_host_add "$P" t1 "$MAC1" 198.18.0.1/24
if [[ $NET == tap ]]; then
  # The baseline without vhost-user: no eswitchd; QEMU's own virtio-net on a tap (vhost=off) per QEMU, both taps
  # and the tenant's veth on a Linux bridge in a namespace of their own (QEMU runs in it); the destination's
  # self-announce (RARP) moves the guest's MAC to its tap.
  ip netns add "$P-br"
  ESW_CREATED_NS+=("$P-br")
  ip link set "${P}t1p" netns "$P-br"
  ip -n "$P-br" link add "${P}br" type bridge
  for t in "${P}t1p" "${P}ts" "${P}td"; do
    [[ $t == "${P}t1p" ]] || ip -n "$P-br" tuntap add "$t" mode tap
    ip -n "$P-br" link set "$t" master "${P}br" up
  done
  ip -n "$P-br" link set "${P}br" up
  ESW_GUEST_WRAP=(ip netns exec "$P-br")
else
cat >"$WORK/esw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { main_core: 0, worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 50, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: t1, hw_addr: "$MAC1", ipv4: [198.18.0.1], attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm, hw_addr: "$MAC3", ipv4: [198.18.0.3], attach: { vhost_user: { socket: "$WORK/vm.sock", mode: server, queues: 1 } } }
YAML
esw_start_eswitchd "$ESWITCHD" "$WORK/esw.yaml"
for _ in $(seq 50); do [[ -S "$WORK/vm.sock" ]] && break; sleep 0.1; done
[[ -S "$WORK/vm.sock" ]] || fail "eswitchd did not create the vhost-user socket"
fi

gcc -static -O2 -o "$WORK/guest_udp_sink" "$HERE/guest_udp_sink.c" || fail "cannot build guest_udp_sink"
{ [[ $MODE == held ]] && echo HOLD=1 || echo HOLD=0; } >"$WORK/test.sh"
cat >>"$WORK/test.sh" <<'GUEST'
ip link set lo up
ip link set eth0 up
ip addr add 198.18.0.3/24 dev eth0
# Room for the whole stream in the stopped receiver's socket: UDP's global limit (pages) is sized from the
# guest's small RAM by default.
echo "32768 32768 32768" >/proc/sys/net/ipv4/udp_mem
ok=0
for i in 1 2 3 4 5 6 7 8 9 10; do ping -c 1 -W 1 198.18.0.1 >/dev/null 2>&1 && { ok=1; break; }; done
[ $ok = 1 ] && echo "GUEST: ping4 ok"
guest_udp_sink 7000 /tmp/rx >/tmp/sink.out 2>&1 &
S=$!
for i in 1 2 3 4 5 6 7 8 9 10; do grep -q bound /tmp/sink.out && break; sleep 0.2; done
[ $HOLD = 1 ] && kill -STOP $S
echo "GUEST: ready $(cat /tmp/sink.out)"
# The host lets the guest go (after the migration) by answering "go" on the tenant's port 5004.
until [ "$(nc -w 2 198.18.0.1 5004 </dev/null 2>/dev/null)" = go ]; do sleep 1; done
echo "GUEST: go"
[ $HOLD = 1 ] && kill -CONT $S
wait $S; echo "GUEST: sink exit $? $(tail -1 /tmp/sink.out)"
echo "GUEST: udp $(grep '^Udp:' /proc/net/snmp | tr '\n' ' ')"
nc -w 10 198.18.0.1 5003 </tmp/rx && echo "GUEST: file sent $(wc -c </tmp/rx)"
GUEST
esw_guest_initramfs "$WORK/initrd.gz" "$WORK/test.sh" "$WORK/guest_udp_sink"

# qmp SOCKET JSON...: runs QMP commands, prints each reply's "return" as a JSON line (fails on an error reply).
qmp() {
  /usr/bin/python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1]); f = s.makefile("rw")
def rd():
    while True:
        m = json.loads(f.readline())
        if "event" not in m: return m
rd()  # greeting
for c in ['{"execute": "qmp_capabilities"}'] + sys.argv[2:]:
    f.write(c + "\n"); f.flush()
    r = rd()
    if "error" in r: sys.exit(f"qmp {c}: {r['error']}")
    if c != '{"execute": "qmp_capabilities"}': print(json.dumps(r.get("return")))
PY
}

# The destination's view of its RX/TX virtqueues (QEMU 7.2 x-query-virtio-*), for a failure's report.
qmp_queues() {
  local q
  for q in 0 1; do
    qmp "$WORK/dst.qmp" "{\"execute\": \"x-query-virtio-queue-status\", \"arguments\": {\"path\": \"/machine/peripheral/nic0/virtio-backend\", \"queue\": $q}}" \
      "{\"execute\": \"x-query-virtio-vhost-queue-status\", \"arguments\": {\"path\": \"/machine/peripheral/nic0/virtio-backend\", \"queue\": $q}}" || true
  done
  qmp "$WORK/dst.qmp" '{"execute": "human-monitor-command", "arguments": {"command-line": "info irq"}}' | head -c 600 || true
  qmp "$WORK/dst.qmp" '{"execute": "x-query-virtio-status", "arguments": {"path": "/machine/peripheral/nic0/virtio-backend"}}' |
    /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: d.get(k) for k in ("isr", "status", "broken", "started", "start-on-kick", "disable-legacy-check", "vhost-started", "device-endian", "bus-name")})' || true
  # RX ring (queue 0) in guest memory: avail flags/idx, used_event (avail->ring[256]), used flags/idx.
  local a=325079040 u=325079616
  a=$(qmp "$WORK/dst.qmp" '{"execute": "x-query-virtio-queue-status", "arguments": {"path": "/machine/peripheral/nic0/virtio-backend", "queue": 0}}' | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["vring-avail"], d["vring-used"])')
  u=${a#* } a=${a% *}
  for x in "xp /2hx $a" "xp /1hx $((a + 4 + 2 * 256))" "xp /2hx $u"; do
    qmp "$WORK/dst.qmp" "{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"$x\"}}" || true
  done
}

peer_counter() {
  ctl --json show ports | /usr/bin/python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["ports"] if p["name"] == "vm")
print(p["peer"]["counters"][sys.argv[1]])' "$1"
}

# The tenant: the UDP stream (until $WORK/stop exists; then writes $WORK/sent), the file receiver (5003) and,
# once $WORK/go exists, the "go" answer (5004).
ip netns exec "$P-t1" /usr/bin/python3 - "$WORK" "$RATE" <<'PY' &
import os, random, socket, struct, sys, threading, time, zlib
work, rate = sys.argv[1], int(sys.argv[2])
def receiver():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("198.18.0.1", 5003)); s.listen(1)
    c, _ = s.accept(); data = bytearray()
    while True:
        b = c.recv(1 << 20)
        if not b: break
        data += b
    open(work + "/rx.bin", "wb").write(data)
def go():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    while not os.path.exists(work + "/go"): time.sleep(0.1)
    s.bind(("198.18.0.1", 5004)); s.listen(4)
    while True:
        c, _ = s.accept(); c.sendall(b"go\n"); c.close()
threading.Thread(target=receiver, daemon=True).start()
threading.Thread(target=go, daemon=True).start()
while not os.path.exists(work + "/start"): time.sleep(0.05)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.18.0.1", 6999))
seq = errors = 0; t0 = time.monotonic()
while not os.path.exists(work + "/stop"):
    if os.path.exists(work + "/pause"):  # while the RAM of both QEMUs is compared (neither runs the guest)
        time.sleep(0.05); continue
    now = time.monotonic()
    due = t0 + seq / rate
    if now < due:
        time.sleep(due - now); continue
    if now - due > 0.05: t0 = now - seq / rate  # fell behind (loaded machine): no catch-up burst
    body = struct.pack("!4sIQ", b"ESWM", seq, time.time_ns()) + random.Random(seq).randbytes(1024 - 20)
    try: s.sendto(body + struct.pack("!I", zlib.crc32(body)), ("198.18.0.3", 7000))
    except OSError: errors += 1
    seq += 1
open(work + "/sent", "w").write(f"{seq} {errors}\n")
threading.Event().wait(600)
PY
ESW_EXTRA_PIDS+=("$!")

# The source guest.
ESW_GUEST_QEMU_EXTRA=(-qmp "unix:$WORK/src.qmp,server=on,wait=off")
[[ $NET == tap ]] && ESW_GUEST_NETDEV="tap,ifname=${P}ts,script=no,downscript=no"
esw_guest_boot "$WORK/src.console" "$WORK/initrd.gz" "$WORK/vm.sock" "$MAC3" 1 id=nic0
SRC_PID=$ESW_GUEST_PID
ESW_EXTRA_PIDS+=("$SRC_PID")
t_boot=$SECONDS
until grep -q '^GUEST: ready' "$WORK/src.console" 2>/dev/null; do
  kill -0 "$SRC_PID" 2>/dev/null || { cat "$WORK/src.console" "$WORK/src.console.qemu" >&2; fail "the source guest died"; }
  ((SECONDS - t_boot < 120)) || { cat "$WORK/src.console" >&2; fail "the source guest was not ready in 120 s"; }
  sleep 0.5
done
grep -q '^GUEST: ping4 ok' "$WORK/src.console" || fail "the source guest could not ping the tenant"
echo "  source guest ready after $((SECONDS - t_boot)) s"
touch "$WORK/start"
sleep 2  # the stream fills the stopped receiver's socket queue

# The destination: the same command line, waiting for the migration stream. Its vhost-user chardev connects to
# eswitchd's socket now; its device starts when the migrated guest runs.
# -S: the destination stays paused once the migration is in, so its RAM can be compared with the source's.
ESW_GUEST_QEMU_EXTRA=(-qmp "unix:$WORK/dst.qmp,server=on,wait=off" -incoming "unix:$WORK/mig.sock" -S)
[[ $NET == tap ]] && ESW_GUEST_NETDEV="tap,ifname=${P}td,script=no,downscript=no"
esw_guest_boot "$WORK/dst.console" "$WORK/initrd.gz" "$WORK/vm.sock" "$MAC3" 1 id=nic0
DST_PID=$ESW_GUEST_PID
ESW_EXTRA_PIDS+=("$DST_PID")
for _ in $(seq 100); do [[ -S "$WORK/mig.sock" && -S "$WORK/dst.qmp" ]] && break; sleep 0.1; done
[[ -S "$WORK/mig.sock" ]] || { cat "$WORK/dst.console.qemu" >&2; fail "the destination QEMU is not listening for the migration"; }

drops0=0
[[ $NET == vhost ]] && drops0=$(ctl --json show ports | /usr/bin/python3 -c 'import json,sys; print(next(p for p in json.load(sys.stdin)["ports"] if p["name"]=="vm")["tx_dropped"])')
t_mig0=$(date +%s.%N)
qmp "$WORK/src.qmp" "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"max-bandwidth\": ${ESW_QMIG_BW:-10737418240}}}" \
  "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:$WORK/mig.sock\"}}" >/dev/null || fail "QEMU refused to migrate"
logging_seen=0 status=""
for ((i = 0; i < 600; i++)); do
  status=$(qmp "$WORK/src.qmp" '{"execute": "query-migrate"}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("status", "?"))')
  [[ $status == completed || $status == failed || $status == cancelled ]] && break
  if [[ $NET == vhost ]] && ((logging_seen == 0)) && [[ $status == active ]] && (($(peer_counter dirty_logging) == 1)); then logging_seen=1; fi
  sleep 0.2
done
t_mig1=$(date +%s.%N)
touch "$WORK/pause"  # the stream waits while both QEMUs' RAM is compared (below)
qmp "$WORK/src.qmp" '{"execute": "query-migrate"}' >"$WORK/migrate.json"
[[ $status == completed ]] || { cat "$WORK/migrate.json" "$WORK/src.console.qemu" "$WORK/dst.console.qemu" >&2; fail "the migration ended '$status'"; }
/usr/bin/python3 - "$WORK/migrate.json" "$t_mig0" "$t_mig1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); r = m.get("ram", {})
print(f"  migration completed: total {m.get('total-time')} ms, downtime {m.get('downtime')} ms, setup {m.get('setup-time')} ms, "
      f"{r.get('transferred', 0) >> 20} MiB sent, {r.get('dirty-sync-count')} dirty syncs, {r.get('duplicate')} zero pages, "
      f"{r.get('normal')} normal pages, wall {float(sys.argv[3]) - float(sys.argv[2]):.2f} s")
PY

# The destination's RAM against the source's, both stopped at the switchover: every page must be equal. A page
# that differs was written on the source after QEMU last sent it without being marked dirty - by the vhost-user
# back-end without logging it (LOG_ALL), or by the guest's CPU without QEMU's own tracking seeing it.
dst_status=inmigrate
for _ in $(seq 300); do
  kill -0 "$DST_PID" 2>/dev/null || break
  dst_status=$(qmp "$WORK/dst.qmp" '{"execute": "query-status"}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [[ $dst_status == inmigrate ]] || break
  sleep 0.1
done
[[ $dst_status == paused ]] || { cat "$WORK/dst.console.qemu" >&2; fail "the destination QEMU is '$dst_status' after the migration, not paused (-S)"; }
ram_bytes=$(/usr/bin/python3 -c 'import sys; v = sys.argv[1]; print(int(v[:-1]) << {"K": 10, "M": 20, "G": 30}[v[-1]])' "$ESW_GUEST_MEM")
t_cmp=$SECONDS
for q in src dst; do
  qmp "$WORK/$q.qmp" "{\"execute\": \"pmemsave\", \"arguments\": {\"val\": 0, \"size\": $ram_bytes, \"filename\": \"$RAMDUMP/$q.ram\"}}" >/dev/null ||
    fail "cannot read the $q QEMU's RAM (pmemsave)"
done
/usr/bin/python3 - "$RAMDUMP/src.ram" "$RAMDUMP/dst.ram" <<'PY' >"$WORK/ramdiff" || true
import mmap, sys
fs = [open(p, "rb") for p in sys.argv[1:3]]
a, b = (mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) for f in fs)
P, C = 4096, 1 << 20
diff = []
for c in range(0, min(len(a), len(b)), C):
    if a[c:c + C] == b[c:c + C]: continue
    diff += [i // P for i in range(c, min(c + C, len(a)), P) if a[i:i + P] != b[i:i + P]]
# 0xa0000-0xfffff: VGA window and BIOS shadows, not RAM pages of the guest.
diff = [i for i in diff if not 0xa0 <= i < 0x100]
print(len(a) // P, len(diff), " ".join(hex(i * P) for i in diff[:12]))
PY
rm -f "$RAMDUMP/src.ram" "$RAMDUMP/dst.ram"
read -r ram_pages ram_differ ram_first <"$WORK/ramdiff" || true
echo "  RAM at the switchover: ${ram_differ:-?} of ${ram_pages:-?} pages differ between source and destination${ram_first:+ (first at ${ram_first// /, })} ($((SECONDS - t_cmp)) s to compare)"
((${ram_differ:-1} == 0)) || fail "the destination's RAM is not the source's: ${ram_differ:-?} pages differ (written on the source after they were sent, never marked dirty)"
qmp "$WORK/dst.qmp" '{"execute": "cont"}' >/dev/null || fail "the destination QEMU refused to run"
rm -f "$WORK/pause"

qmp "$WORK/src.qmp" '{"execute": "quit"}' >/dev/null 2>&1 || true
for _ in $(seq 100); do kill -0 "$SRC_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SRC_PID" 2>/dev/null && fail "the source QEMU did not quit"
kill -0 "$DST_PID" 2>/dev/null || { cat "$WORK/dst.console.qemu" "$WORK/dst.console" >&2; fail "the destination QEMU exited after the migration"; }
dst_status=$(qmp "$WORK/dst.qmp" '{"execute": "query-status"}' | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
echo "  destination QEMU: $dst_status"
[[ $dst_status == running ]] || fail "the destination guest is '$dst_status', not running"

# The destination guest answers pings (its receiver is still stopped).
pings=$(ip netns exec "$P-t1" ping -c 5 -i 0.3 -W 2 198.18.0.3 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p' || true)
echo "  tenant -> destination guest: ${pings:-0} of 5 pings answered"
((${pings:-0} >= 3)) || { [[ $NET == vhost ]] && ctl show ports | grep '^port vm' >&2; cat "$WORK/src.console" "$WORK/dst.console" >&2; qmp_queues >&2; fail "the destination guest answered ${pings:-0} of 5 pings"; }

# The guest's receiver continues and drains its socket while the stream goes on into the destination guest.
touch "$WORK/go"
sleep 3  # the stream goes on into the destination guest
touch "$WORK/stop"
for _ in $(seq 50); do [[ -s "$WORK/sent" ]] && break; sleep 0.1; done
[[ -s "$WORK/sent" ]] || fail "the tenant's UDP sender did not stop"
read -r sent send_errors <"$WORK/sent"
drops1=0
[[ $NET == vhost ]] && drops1=$(ctl --json show ports | /usr/bin/python3 -c 'import json,sys; print(next(p for p in json.load(sys.stdin)["ports"] if p["name"]=="vm")["tx_dropped"])')

t_go=$SECONDS
while kill -0 "$DST_PID" 2>/dev/null && ! grep -q '^GUEST: file sent\|^GUEST: test exit' "$WORK/dst.console" 2>/dev/null; do
  ((SECONDS - t_go < 120)) || { cat "$WORK/dst.console" >&2; fail "the destination guest did not send its file in 120 s"; }
  sleep 0.5
done
for _ in $(seq 100); do [[ -f "$WORK/rx.bin" ]] && break; sleep 0.1; done
sed -n 's/^GUEST: /  guest: /p' "$WORK/src.console" "$WORK/dst.console"
grep -q '^GUEST: go' "$WORK/dst.console" || fail "the guest's output after the migration is not on the destination's console"
[[ -f "$WORK/rx.bin" ]] || fail "the tenant did not receive the guest's file over TCP"
gsize=$(sed -n 's/^GUEST: file sent \([0-9]*\).*/\1/p' "$WORK/dst.console")
[[ $gsize == "$(stat -c %s "$WORK/rx.bin")" ]] || fail "TCP: the guest sent ${gsize:-nothing}, the tenant got $(stat -c %s "$WORK/rx.bin") bytes"
kill "$DST_PID" 2>/dev/null || true

# eswitchd: LOG_ALL with a log area, frames delivered while logging.
if [[ $NET == vhost ]]; then
ctl show ports | grep '^port vm peer' | sed 's/^/  /'
log_starts=$(peer_counter log_starts) log_area=$(peer_counter log_area_bytes) log_enq=$(peer_counter log_enqueued)
echo "  eswitchd: log_starts $log_starts, log_area_bytes $log_area, log_enqueued $log_enq, log_dequeued $(peer_counter log_dequeued)," \
  "dirty_logging seen on during precopy: $logging_seen; vm tx_dropped from the migrate command to the end of the stream $((drops1 - drops0))"
grep 'dirty-page logging\|vhost-user session\|guest connected' "$WORK/eswitchd.log" | sed 's/^/  /'
((log_starts >= 1)) || fail "eswitchd never saw LOG_ALL negotiated"
((log_area > 0)) || fail "eswitchd saw LOG_ALL without a log area (VHOST_USER_SET_LOG_BASE)"
((log_enq > 0)) || fail "no frame was delivered to the guest while dirty-page logging was on"
grep -q "vport vm: dirty-page logging on (LOG_ALL, a migration): log area $log_area bytes" "$WORK/eswitchd.log" ||
  fail "eswitchd did not log dirty-page logging on"
! grep -i 'mismatch' "$WORK/eswitchd.log" || fail "rte_vhost found the destination's used ring index not where the source left it"
fi

# The records the guest received across the migration.
/usr/bin/python3 - "$WORK/rx.bin" "$sent" "$send_errors" "$t_mig0" "$t_mig1" "$WORK/dst.console" "$RATE" <<'PY' || fail "the data the guest received is not intact"
import re, struct, sys, zlib
data = open(sys.argv[1], "rb").read()
sent, send_errors, t0, t1 = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
console = open(sys.argv[6]).read()
RL, errs = 1024, []
if len(data) % RL: errs.append(f"{len(data)} bytes is not a whole number of {RL}-byte records")
seqs, bad, when = [], 0, {}
for i in range(len(data) // RL):
    r = data[i * RL:(i + 1) * RL]
    magic, seq, t = struct.unpack("!4sIQ", r[:16])
    if magic != b"ESWM" or zlib.crc32(r[:-4]) != struct.unpack("!I", r[-4:])[0]:
        bad += 1; continue
    seqs.append(seq); when[seq] = t / 1e9
uniq = set(seqs)
dups = len(seqs) - len(uniq)
out_of_order = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
during = sum(1 for s, t in when.items() if t0 <= t <= t1)
missing = sorted(set(range(sent)) - uniq)
gaps, start = [], None
for j, s in enumerate(missing):
    if start is None: start = s
    if j + 1 == len(missing) or missing[j + 1] != s + 1:
        gaps.append((start, s)); start = None
snmp = re.search(r"GUEST: udp Udp: (.*?) Udp: (.*)", console)
udp = dict(zip(snmp.group(1).split(), map(int, snmp.group(2).split()))) if snmp else {}
print(f"  records: {sent} sent ({send_errors} send errors), {len(seqs)} intact received, {bad} corrupted, {dups} duplicates, "
      f"{out_of_order} out of order, {len(missing)} lost; {during} of those intact were sent during the migration (precopy + switchover)")
print(f"  guest Udp: InDatagrams {udp.get('InDatagrams')} RcvbufErrors {udp.get('RcvbufErrors')} InCsumErrors {udp.get('InCsumErrors')} InErrors {udp.get('InErrors')}")
for a, b in gaps[:8]:
    print(f"  lost seq {a}..{b} ({b - a + 1} records: {(b - a + 1) * 1000 // int(sys.argv[7])} ms of the stream)")
if len(gaps) > 8: print(f"  ... {len(gaps) - 8} more gaps")
if bad: errs.append(f"{bad} corrupted records")
if dups: errs.append(f"{dups} duplicated records (a stale page replayed an old datagram)")
if out_of_order: errs.append(f"{out_of_order} records out of order")
if not udp: errs.append("the guest's Udp counters are missing")
elif udp.get("InCsumErrors", 0): errs.append(f"the guest counted {udp['InCsumErrors']} UDP checksum errors")
if during == 0: errs.append("no record sent during the migration reached the destination guest")
if len(seqs) < sent // 2: errs.append(f"only {len(seqs)} of {sent} records arrived")
for e in errs: print("  data check:", e)
sys.exit(1 if errs else 0)
PY

[[ $NET == vhost ]] && esw_stop_eswitchd
logged=""
[[ $NET == vhost ]] && logged=", LOG_ALL and a log area seen, frames delivered while logging"
echo "PASS: QEMU live-migrated a Linux guest ($NET) with traffic into it: destination RAM equal to the source's at the switchover, every record intact on the destination$logged"
