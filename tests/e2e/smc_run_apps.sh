#!/usr/bin/env bash
# esw-smc-run with unmodified Debian programs (issue 12 item 4): sockperf, iperf3, redis-server/redis-benchmark/
# redis-cli in two tenant namespaces on two eswitch vports (af_packet) with ISM endpoints.
#  - sockperf server + ping-pong (latency) and throughput, both under esw-smc-run: over SMC-D.
#  - iperf3 -s / -c -F FILE (the file is sent and written by the server, compared byte for byte) under esw-smc-run.
#  - redis-server + redis-benchmark -t set,get and a redis-cli SET/GET round trip (value checked), all under
#    esw-smc-run.
#  Each asserts the connection went over SMC-D: the ISM service's counters (show smc: intents taken, DMBs
#  registered) moved, the library's per-stream byte counts (ESW_SMC_DEBUG) add up to the workload, and the client's
#  vport saw far fewer bytes than the workload moved (the data did not cross the switch as TCP).
#  - socket semantics with Python's socket module (a forking server: the child serves, the parent closes its copy).
#  - fallback: plain clients (sockperf, iperf3, redis-cli without esw-smc-run) against esw-smc-run servers work over
#    TCP with no SMC-D set up; an esw-smc-run client against a plain server (no listener announced) is plain TCP.
# usage: smc_run_apps.sh ESWITCHD ESWITCHCTL ESW_SMC_RUN
set -euo pipefail
ESWITCHD=${1:?usage: $0 eswitchd eswitchctl esw-smc-run}
ESWITCHCTL=${2:?usage: $0 eswitchd eswitchctl esw-smc-run}
RUN=${3:?usage: $0 eswitchd eswitchctl esw-smc-run}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../scripts/lib/netns.sh
source "$HERE/../../scripts/lib/netns.sh"
for t in sockperf iperf3 redis-server redis-benchmark redis-cli; do
  command -v $t >/dev/null || { echo "SKIP: $t not installed (scripts/setup.sh)"; exit 77; }
done
esw_e2e_begin smcrun
chmod 755 "$WORK"
P="esw$(($$ % 10000))"
SOCK="$WORK/api.sock"
ctl() { "$ESWITCHCTL" --socket "$SOCK" --no-progress "$@"; }
M1=02:00:c6:14:00:01
M2=02:00:c6:14:00:02
A1=198.18.42.1
A2=198.18.42.2
esw_host_add "$P" t1 $M1 $A1/24
esw_host_add "$P" t2 $M2 $A2/24
EP1="$WORK/vm1.ism"
EP2="$WORK/vm2.ism"
cat >"$WORK/sw.yaml" <<YAML
apiVersion: eswitch/v1
dataplane: { worker_cores: [1], memory_mb: 256, mbufs: 8192, idle_sleep_us: 20, file_prefix: $PREFIX, api_socket: "$SOCK" }
representors: { kind: none }
vports:
  - { name: vm1, hw_addr: "$M1", ipv4: [$A1],
      smc: { policy: allow, ism: { socket: "$EP1", mode: "0600", max_dmbs: 64, max_bytes: 67108864 } },
      attach: { devargs: "net_af_packet0,iface=${P}t1p" } }
  - { name: vm2, hw_addr: "$M2", ipv4: [$A2],
      smc: { policy: allow, ism: { socket: "$EP2", mode: "0600", max_dmbs: 64, max_bytes: 67108864 } },
      attach: { devargs: "net_af_packet1,iface=${P}t2p" } }
YAML
esw_start_eswitchd "$ESWITCHD" "$WORK/sw.yaml"
for _ in $(seq 50); do [[ -S $EP1 && -S $EP2 ]] && break; sleep 0.1; done
[[ -S $EP1 && -S $EP2 ]] || fail "ISM endpoints missing"

in1() { ip netns exec "$P-t1" "$@"; }
in2() { ip netns exec "$P-t2" "$@"; }
smc1() { ip netns exec "$P-t1" "$RUN" -d -e "$EP1" "$@"; }
smc2() { ip netns exec "$P-t2" "$RUN" -d -e "$EP2" "$@"; }
# counter NAME: the ISM service's counter from show smc
counter() {
  ctl --json show smc | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ism"]["counters"][sys.argv[1]])' "$1"
}
# rx bytes the switch received from vm1's tenant (root side of its veth)
vm1_bytes() { cat "/sys/class/net/${P}t1p/statistics/rx_bytes"; }
# stream_bytes FILE: bytes the esw-smc-run streams logged in FILE moved (sent + received, summed)
stream_bytes() { awk '/smcd stream closed/ { for (i = 1; i <= NF; i++) if ($i ~ /^(sent|received)=/) { split($i, kv, "="); s += kv[2] } } END { printf "%.0f\n", s }' "$1"; }
wait_port() {  # NS PORT PID: until something listens there
  for _ in $(seq 100); do
    ip netns exec "$P-$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    kill -0 "$3" 2>/dev/null || fail "server on port $2 died: $(cat "$WORK"/*.srv 2>/dev/null)"
    sleep 0.1
  done
  fail "nothing listens on port $2"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

PARTS=${ESW_SMCRUN_PARTS:-semantics sockperf iperf3 redis}  # debugging: run some parts only
part() { [[ " $PARTS " == *" $1 "* ]]; }
SECONDS=0
if part hold; then  # debugging: keep the setup for ESW_SMCRUN_HOLD seconds
  echo "holding: P=$P EP1=$EP1 EP2=$EP2 SOCK=$SOCK"
  sleep "${ESW_SMCRUN_HOLD:-300}"
fi
# ---------------------------------------------------------------- socket semantics (Python's socket module)
# A forking server (accept, fork, the child serves, the parent closes its copy) and a client, both under
# esw-smc-run: blocking recv, dup + write on the dup, close of the dup (stream stays), non-blocking recv -> EAGAIN,
# select not readable / readable, FIONREAD, 300 kB through a select loop, shutdown(SHUT_WR) -> EOF at the peer
# while the other direction still works, getpeername/getsockname, setsockopt/getsockopt passthrough, close -> EOF.
if part semantics; then
# One script, two roles (sem.py server|client ADDR PORT), sharing rx() and the payload.
cat >"$WORK/sem.py" <<'PY'
import os, socket, sys, select, fcntl, termios, struct
role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
PAYLOAD = bytes(range(256)) * 1171 + bytes(range(224))  # 300,000 bytes

def rx(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k: raise SystemExit("%s: early EOF after %d" % (role, len(b)))
        b += k
    return b

def server():
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port)); ls.listen(4)
    print("listening", flush=True)
    c, peer = ls.accept()
    pid = os.fork()
    if pid:
        c.close(); ls.close()
        _, st = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(st))
    assert c.getpeername() == peer, (c.getpeername(), peer)
    assert c.getsockname()[1] == port
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert c.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM
    assert rx(c, 5) == b"hello"
    d = os.dup(c.fileno()); os.write(d, b"viadup"); os.close(d)
    c.setblocking(False)
    try:
        c.recv(10); raise SystemExit("server: recv on an empty stream did not fail")
    except BlockingIOError:
        pass
    r, w, _ = select.select([c], [c], [], 0)
    assert r == [] and w == [c], (r, w)
    c.send(b"go")
    r, _, _ = select.select([c], [], [], 10)
    assert r == [c], "not readable after the client sent"
    n = struct.unpack("i", fcntl.ioctl(c.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    assert n > 0, n
    got = b""
    while len(got) < len(PAYLOAD):
        select.select([c], [], [], 10)
        try: got += c.recv(65536)
        except BlockingIOError: pass
    assert got == PAYLOAD, "payload differs"
    c.setblocking(True)
    c.shutdown(socket.SHUT_WR)
    assert rx(c, 3) == b"bye"
    assert c.recv(10) == b"", "no EOF after the client closed"
    c.close()

def client():
    s = socket.create_connection((addr, port))
    s.sendall(b"hello")
    assert rx(s, 6) == b"viadup"
    assert rx(s, 2) == b"go"
    s.sendall(PAYLOAD)
    assert s.recv(10) == b"", "no EOF after the server's shutdown(SHUT_WR)"
    s.sendall(b"bye")
    s.close()

{"server": server, "client": client}[role]()
print(role, "ok", flush=True)
PY
t0=$(counter intents_taken)
smc2 /usr/bin/python3 "$WORK/sem.py" server $A2 6005 >"$WORK/sem.srv" 2>&1 &
SEM=$!
ESW_EXTRA_PIDS+=("$SEM")
wait_port t2 6005 $SEM
timeout 60 ip netns exec "$P-t1" "$RUN" -d -e "$EP1" /usr/bin/python3 "$WORK/sem.py" client $A2 6005 >"$WORK/sem.cli" 2>&1 ||
  fail "semantics client: $(cat "$WORK/sem.cli") / server: $(cat "$WORK/sem.srv")"
timeout 30 tail --pid=$SEM -f /dev/null || true
wait $SEM || fail "semantics server: $(cat "$WORK/sem.srv")"
grep -q "server ok" "$WORK/sem.srv" && grep -q "client ok" "$WORK/sem.cli" || fail "semantics: $(cat "$WORK/sem.srv" "$WORK/sem.cli")"
grep -q "connected over SMC-D" "$WORK/sem.cli" || fail "semantics: not over SMC-D: $(cat "$WORK/sem.cli")"
(( $(counter intents_taken) - t0 == 1 )) || fail "semantics: no intent taken"
echo "ok: socket semantics over SMC-D (forking server, dup, non-blocking, select, FIONREAD, shutdown, sockopts, EOF) ($SECONDS s)"
fi
# ---------------------------------------------------------------- sockperf
if part sockperf; then
smc2 sockperf server --tcp -i $A2 -p 6001 >"$WORK/sp.srv" 2>&1 &
SP=$!
ESW_EXTRA_PIDS+=("$SP")
wait_port t2 6001 $SP
t0=$(counter intents_taken) d0=$(counter dmbs_registered) b0=$(vm1_bytes)
smc1 sockperf ping-pong --tcp -i $A2 -p 6001 -t 2 -m 64 >"$WORK/sp.pp" 2>&1 || fail "sockperf ping-pong: $(cat "$WORK/sp.pp")"
grep -q "connected over SMC-D" "$WORK/sp.pp" || fail "sockperf ping-pong did not connect over SMC-D: $(cat "$WORK/sp.pp")"
lat=$(grep -oE "Summary: Latency is [0-9.]+ usec" "$WORK/sp.pp" | grep -oE "[0-9.]+") || fail "no latency: $(cat "$WORK/sp.pp")"
grep -qE "ReceivedMessages=[1-9]" "$WORK/sp.pp" || fail "sockperf ping-pong received nothing: $(cat "$WORK/sp.pp")"
smc1 sockperf throughput --tcp -i $A2 -p 6001 -t 2 -m 1400 >"$WORK/sp.tp" 2>&1 || fail "sockperf throughput: $(cat "$WORK/sp.tp")"
grep -q "connected over SMC-D" "$WORK/sp.tp" || fail "sockperf throughput not over SMC-D: $(cat "$WORK/sp.tp")"
bw=$(grep -oE "BandWidth is [0-9.]+ MBps" "$WORK/sp.tp" | grep -oE "[0-9.]+") || fail "no bandwidth: $(cat "$WORK/sp.tp")"
sent=$(stream_bytes "$WORK/sp.tp")
wire=$(( $(vm1_bytes) - b0 ))
t1=$(counter intents_taken) d1=$(counter dmbs_registered)
(( t1 - t0 == 2 && d1 - d0 == 4 )) || fail "sockperf: intents taken $((t1 - t0)) (want 2), DMBs registered $((d1 - d0)) (want 4)"
(( sent > 10 * 1000 * 1000 && wire * 20 < sent )) || fail "sockperf: streams moved $sent bytes, vm1's vport saw $wire (want far less)"
echo "ok: sockperf ping-pong (avg latency $lat us) and throughput ($bw MBps, $sent bytes over DMBs, $wire bytes on vm1's vport) over SMC-D"
# plain sockperf client against the esw-smc-run server: TCP
t0=$(counter intents_taken) d0=$(counter dmbs_registered) b0=$(vm1_bytes)
in1 sockperf ping-pong --tcp -i $A2 -p 6001 -t 1 -m 64 >"$WORK/sp.plain" 2>&1 || fail "plain sockperf: $(cat "$WORK/sp.plain")"
grep -qE "ReceivedMessages=[1-9]" "$WORK/sp.plain" || fail "plain sockperf received nothing: $(cat "$WORK/sp.plain")"
(( $(counter intents_taken) == t0 && $(counter dmbs_registered) == d0 )) || fail "a plain sockperf client set up SMC-D"
(( $(vm1_bytes) - b0 > 10000 )) || fail "plain sockperf: no TCP bytes on vm1's vport"
stop $SP
echo "ok: plain sockperf client against an esw-smc-run server: TCP ($SECONDS s)"
fi

# ---------------------------------------------------------------- iperf3 (file sent and received, compared)
if part iperf3; then
# iperf3 does not check data (and its -F file mode loses bytes on partial reads even over plain TCP): the byte
# counts of sender and receiver are compared; data integrity is checked with redis values below.
smc2 iperf3 -s -1 -B $A2 -p 6002 >"$WORK/ip.srv" 2>&1 &
IP=$!
ESW_EXTRA_PIDS+=("$IP")
wait_port t2 6002 $IP
t0=$(counter intents_taken) b0=$(vm1_bytes)
smc1 iperf3 -c $A2 -p 6002 -n 512M -J >"$WORK/ip.json" 2>"$WORK/ip.cli" || fail "iperf3 client: $(cat "$WORK/ip.cli" "$WORK/ip.json") / server: $(cat "$WORK/ip.srv")"
wait $IP || fail "iperf3 server: $(cat "$WORK/ip.srv")"
read -r isent irecv ibps < <(/usr/bin/python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; print(e["sum_sent"]["bytes"], e["sum_received"]["bytes"], e["sum_received"]["bits_per_second"])' "$WORK/ip.json")
# the server stops counting when the client's TEST_END arrives on the control connection: what is still in the
# data connection's buffer (over SMC-D: the 1 MiB DMB ring) is not counted, as over TCP (socket buffers)
# iperf3 -n may send one more block (128 KiB) than asked when its timer and its last write race (seen: 512 MiB +
# 131072 bytes, received in full).
(( isent >= 512 << 20 && isent <= (512 << 20) + (1 << 20) && irecv <= isent && irecv >= isent - (1 << 20) )) ||
  fail "iperf3: sent $isent, received $irecv (want 512 MiB, at most 1 MiB over; the receiver at most one DMB ring less)"
wire=$(( $(vm1_bytes) - b0 ))
(( $(counter intents_taken) - t0 == 2 )) || fail "iperf3: control and data connections not both over SMC-D"
(( wire < (512 << 20) / 100 )) || fail "iperf3: vm1's vport saw $wire bytes for a 512 MiB transfer"
grep -c "connected over SMC-D" "$WORK/ip.cli" | grep -qx 2 || fail "iperf3 client: $(cat "$WORK/ip.cli")"
echo "ok: iperf3 512 MiB over SMC-D ($(awk -v b="$ibps" 'BEGIN { printf "%.2f", b / 1e9 }') Gbit/s), receiver counted $irecv of $isent bytes, $wire bytes on vm1's vport"
# plain iperf3 client against an esw-smc-run server
smc2 iperf3 -s -1 -B $A2 -p 6002 >"$WORK/ip.srv" 2>&1 &
IP=$!
ESW_EXTRA_PIDS+=("$IP")
wait_port t2 6002 $IP
t0=$(counter intents_taken) b0=$(vm1_bytes)
in1 iperf3 -c $A2 -p 6002 -n 8M >"$WORK/ip.plain" 2>&1 || fail "plain iperf3: $(cat "$WORK/ip.plain")"
wait $IP || fail "iperf3 server (plain client): $(cat "$WORK/ip.srv")"
(( $(counter intents_taken) == t0 )) || fail "a plain iperf3 client set up SMC-D"
wire=$(( $(vm1_bytes) - b0 ))
(( wire > 4000000 )) || fail "plain iperf3: its 8 MB did not cross vm1's vport as TCP ($wire bytes): $(cat "$WORK/ip.plain")"
echo "ok: plain iperf3 client against an esw-smc-run server: TCP ($SECONDS s)"
fi

# ---------------------------------------------------------------- redis
if part redis; then
smc2 redis-server --bind $A2 --port 6003 --save "" --appendonly no --protected-mode no --daemonize no \
  >"$WORK/rd.srv" 2>&1 &
RD=$!
ESW_EXTRA_PIDS+=("$RD")
wait_port t2 6003 $RD
t0=$(counter intents_taken)
val="esw-$$-$RANDOM"
smc1 redis-cli -h $A2 -p 6003 SET eswkey "$val" >"$WORK/rc.set" 2>&1
grep -qx OK "$WORK/rc.set" || fail "redis-cli SET: $(cat "$WORK/rc.set")"
[[ $(smc1 redis-cli -h $A2 -p 6003 GET eswkey 2>"$WORK/rc.err") == "$val" ]] || fail "redis-cli GET: not '$val' ($(cat "$WORK/rc.err"))"
grep -q "connected over SMC-D" "$WORK/rc.set" "$WORK/rc.err" || fail "redis-cli not over SMC-D: $(cat "$WORK/rc.set" "$WORK/rc.err")"
# a 4 MiB random value (wraps the 1 MiB DMB rings several times) written and read back, compared
head -c $((3 << 20)) /dev/urandom | base64 -w0 >"$WORK/big.val"
smc1 redis-cli -h $A2 -p 6003 -x SET eswbig <"$WORK/big.val" >"$WORK/big.set" 2>/dev/null || true
grep -qx OK "$WORK/big.set" || fail "redis-cli SET of 4 MiB: $(head -c 300 "$WORK/big.set")"
smc1 redis-cli -h $A2 -p 6003 --raw GET eswbig >"$WORK/big.raw" 2>/dev/null || fail "redis-cli GET of 4 MiB"
head -c "$(stat -c %s "$WORK/big.val")" "$WORK/big.raw" >"$WORK/big.back"
cmp -s "$WORK/big.val" "$WORK/big.back" || fail "redis: the 4 MiB value read back differs"
b0=$(vm1_bytes)
smc1 redis-benchmark -h $A2 -p 6003 -t set,get -n 20000 -c 8 -q >"$WORK/rb.out" 2>"$WORK/rb.err" || fail "redis-benchmark: $(cat "$WORK/rb.out" "$WORK/rb.err")"
set_rps=$(tr '\r' '\n' <"$WORK/rb.out" | grep -oE "^SET: [0-9.]+" | grep -oE "[0-9.]+$") || fail "no SET result: $(cat "$WORK/rb.out")"
get_rps=$(tr '\r' '\n' <"$WORK/rb.out" | grep -oE "^GET: [0-9.]+" | grep -oE "[0-9.]+$") || fail "no GET result: $(cat "$WORK/rb.out")"
wire=$(( $(vm1_bytes) - b0 ))
smcconns=$(grep -c "connected over SMC-D" "$WORK/rb.err" || true)
(( smcconns >= 8 )) || fail "redis-benchmark: $smcconns connections over SMC-D (want >= 8): $(head -c 2000 "$WORK/rb.err")"
! grep -q "declined\|failed" "$WORK/rb.err" || fail "redis-benchmark: $(grep "declined\|failed" "$WORK/rb.err" | head -3)"
# 40000 requests of ~30-40 bytes each way over TCP would be > 2.5 MB on the wire; over SMC-D only the handshakes
(( wire < 1000000 )) || fail "redis-benchmark: vm1's vport saw $wire bytes"
(( $(counter intents_taken) - t0 >= 10 )) || fail "redis: intents taken $(( $(counter intents_taken) - t0 ))"
echo "ok: redis-cli SET/GET round trips (short value, 4 MiB value compared) and redis-benchmark over SMC-D (SET $set_rps/s, GET $get_rps/s, $smcconns connections, $wire bytes on vm1's vport)"
# plain redis-cli against the esw-smc-run redis-server
t0=$(counter intents_taken) d0=$(counter dmbs_registered)
[[ $(in1 redis-cli -h $A2 -p 6003 GET eswkey) == "$val" ]] || fail "plain redis-cli GET"
(( $(counter intents_taken) == t0 && $(counter dmbs_registered) == d0 )) || fail "a plain redis-cli set up SMC-D"
echo "ok: plain redis-cli against an esw-smc-run redis-server: TCP, value read back"
stop $RD
# esw-smc-run client against a plain server: no listener announced, plain TCP, nothing stray
in2 redis-server --bind $A2 --port 6004 --save "" --appendonly no --protected-mode no --daemonize no >"$WORK/rd2.srv" 2>&1 &
RD2=$!
ESW_EXTRA_PIDS+=("$RD2")
wait_port t2 6004 $RD2
r0=$(counter intents_refused)
smc1 redis-cli -h $A2 -p 6004 SET eswkey2 "$val" >"$WORK/rc2.out" 2>&1
grep -qx OK "$WORK/rc2.out" || fail "esw-smc-run redis-cli against a plain server: $(cat "$WORK/rc2.out")"
[[ $(smc1 redis-cli -h $A2 -p 6004 GET eswkey2 2>/dev/null) == "$val" ]] || fail "esw-smc-run redis-cli GET from a plain server"
(( $(counter intents_refused) - r0 >= 2 )) || fail "intents refused: $(( $(counter intents_refused) - r0 )) (want >= 2: each connect asked)"
stop $RD2
grep -qiE "protocol error|unknown command" "$WORK/rd2.srv" && fail "the plain server saw stray bytes: $(cat "$WORK/rd2.srv")"
echo "ok: esw-smc-run redis-cli against a plain redis-server: plain TCP, no stray bytes ($SECONDS s)"
fi
[[ $(ctl --json show smc | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["ism"]["dmbs"]))') == 0 ]] ||
  fail "DMBs left after every program exited: $(ctl show smc)"
echo "ok: no DMB left"
esw_stop_eswitchd
echo "PASS"
