/* esw_smc.h: the eswitch SMC-D tenant library (C API; C++ callers use it as is).
 *
 * A tenant process connects to its vport's ISM endpoint (a unix socket eswitchd creates per vport), learns the
 * vport's GID, registers a DMB (shared buffer) that one peer vport may write, attaches the peer's DMB, and moves
 * a byte stream over the two DMBs with the SMC-D CDC layout: each DMB starts with a 32-byte CDC header written
 * only by the peer (type 0xFE; producer cursor at 8 = how far the peer has written into this DMB's ring;
 * consumer cursor at 16 = how far the peer has consumed of the ring it owns; cursors are {u16 wrap, u32 count,
 * u8 prod flags, u8 conn state flags}, flags taken from the consumer cursor as Linux does), then the ring.
 * The peer is signalled through its DMB's eventfd.
 *
 * Everything the peer writes is untrusted: a cursor outside the ring or claiming more than the ring holds ends
 * the stream with -EPROTO; the library never reads or writes outside the mapped buffers.
 *
 * The CLC handshake (SMC-Dv2 with the real CLC messages, dataplane/smc/clc.h) runs over a connected TCP socket:
 * esw_smcd_connect_fd (client: Proposal, then Accept -> Confirm) and esw_smcd_accept_fd (server: Proposal ->
 * Accept, then Confirm), or a Decline with its reason, after which both sides use the TCP connection as is.
 * Lower level: the caller exchanges GIDs and tokens itself (esw_smc_gid, esw_smc_dmb_token).
 *
 * Errors: functions return 0 / a byte count, or -errno; esw_smc_last_error() names the reason (thread-local).
 * A handle is used by one thread at a time.
 */
#ifndef ESW_SMC_H
#define ESW_SMC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct esw_smc esw_smc;           /* a connection to the vport's ISM endpoint */
typedef struct esw_smc_dmb esw_smc_dmb;   /* a DMB this process owns or writes */
typedef struct esw_smcd_stream esw_smcd_stream;

#define ESW_SMC_EXPORT __attribute__((visibility("default")))

ESW_SMC_EXPORT const char* esw_smc_last_error(void);

ESW_SMC_EXPORT int esw_smc_open(const char* endpoint_path, esw_smc** out);
ESW_SMC_EXPORT void esw_smc_close(esw_smc* s);
ESW_SMC_EXPORT int esw_smc_gid(esw_smc* s, uint64_t* gid, uint64_t* gid_ext, uint16_t* chid);
/* 0 when a local vport has this GID. */
ESW_SMC_EXPORT int esw_smc_query_gid(esw_smc* s, uint64_t gid, uint64_t gid_ext);

/* A new DMB owned by this vport that only the vport with GID (peer_gid, peer_gid_ext) may write.
 * size: 16 KiB << n, n <= 6 (incl. the 32-byte CDC header). Mapped read-only here. */
ESW_SMC_EXPORT int esw_smc_register_dmb(esw_smc* s, uint64_t size, uint64_t peer_gid, uint64_t peer_gid_ext,
                                        esw_smc_dmb** out);
/* Names the TCP connection (IPv4, host byte order) an own DMB serves: eswitchd tears the DMB down (zeroed,
 * abort flag: both ends -ECONNRESET) when a rule or vport change makes the switch drop that flow. */
ESW_SMC_EXPORT int esw_smc_bind_flow(esw_smc* s, esw_smc_dmb* own, uint32_t local_ip, uint32_t remote_ip,
                                     uint16_t local_port, uint16_t remote_port);
/* The peer's DMB, granted to this vport as writer (mapped read-write). */
ESW_SMC_EXPORT int esw_smc_attach_dmb(esw_smc* s, uint64_t token, esw_smc_dmb** out);
/* Unregisters (own DMB: the service zeroes it) or detaches (peer's DMB), unmaps, frees. */
ESW_SMC_EXPORT int esw_smc_release_dmb(esw_smc* s, esw_smc_dmb* d);
ESW_SMC_EXPORT uint64_t esw_smc_dmb_token(const esw_smc_dmb* d);
ESW_SMC_EXPORT uint64_t esw_smc_dmb_size(const esw_smc_dmb* d);
/* The mapping (raw access: tests, tools). */
ESW_SMC_EXPORT void* esw_smc_dmb_data(esw_smc_dmb* d);
/* Raise the DMB's eventfd directly. */
ESW_SMC_EXPORT int esw_smc_dmb_signal(esw_smc_dmb* d);

/* A byte stream: this process reads `own` (which it registered for the peer) and writes the peer's DMB
 * (attached by token). Takes ownership of `own`. */
ESW_SMC_EXPORT int esw_smcd_stream_open(esw_smc* s, esw_smc_dmb* own, uint64_t peer_token, esw_smcd_stream** out);
/* Blocking: sends all of len (or fails: -EPIPE peer closed, -ECONNRESET peer aborted or gone, -EPROTO bad
 * cursors from the peer, -ETIMEDOUT). */
ESW_SMC_EXPORT ssize_t esw_smcd_send(esw_smcd_stream* st, const void* buf, size_t len);
/* Blocking: at least 1 byte, 0 at end of stream (peer shut down writing or closed), or -errno. */
ESW_SMC_EXPORT ssize_t esw_smcd_recv(esw_smcd_stream* st, void* buf, size_t len);
/* A wait longer than this gives -ETIMEDOUT (0: wait forever; the default). */
ESW_SMC_EXPORT void esw_smcd_set_timeout_ms(esw_smcd_stream* st, int timeout_ms);
/* The most polls of the cursors before sleeping on the eventfd (default 200). A receiver adapts below it: polls
 * that end in sleep anyway halve its budget, polls that find data double it (polling only helps when the peer
 * runs on another CPU at the same time). */
ESW_SMC_EXPORT void esw_smcd_set_spin(esw_smcd_stream* st, int spins);
/* Done writing: the peer's recv returns 0 once it has read everything. */
ESW_SMC_EXPORT int esw_smcd_shutdown(esw_smcd_stream* st);
/* Orderly close (peer: end of stream, then -EPIPE on send), or abort (peer: -ECONNRESET). Both free the stream
 * and release both DMBs. */
ESW_SMC_EXPORT int esw_smcd_close(esw_smcd_stream* st);
ESW_SMC_EXPORT int esw_smcd_abort(esw_smcd_stream* st);

/* ---- CLC over a connected TCP socket --------------------------------------------------------------------------
 * Both block on tcp_fd (the caller makes it blocking for the call) and bind the own DMB to the socket's IPv4 flow
 * (esw_smc_bind_flow). Return 0: *out is an SMC-D stream (the TCP connection stays open, idle, for the caller
 * to close with the stream); ESW_SMCD_FALLBACK: use the TCP connection as is, *decline = the Decline code sent
 * or received (0: the peer sent no Proposal); < 0: the TCP connection broke or the peer violated the protocol
 * (close it). s may be NULL on the server side: a Proposal then gets a Decline NOSMCDEV. */
#define ESW_SMCD_FALLBACK 1
ESW_SMC_EXPORT int esw_smcd_connect_fd(esw_smc* s, int tcp_fd, esw_smcd_stream** out, uint32_t* decline);
/* Server side: peeks the first 8 bytes; no CLC eyecatcher -> ESW_SMCD_FALLBACK with *decline 0, nothing read
 * (so only call it when the client is known to speak first: see esw_smc_take_intent). */
ESW_SMC_EXPORT int esw_smcd_accept_fd(esw_smc* s, int tcp_fd, esw_smcd_stream** out, uint32_t* decline);
/* DMB size for the CLC functions (16 KiB << n, n <= 6; default 1 MiB). */
ESW_SMC_EXPORT int esw_smc_set_dmb_size(esw_smc* s, uint64_t size);
/* Tests: claim this local IPv4 (host order) instead of the socket's when binding the flow (eswitchd refuses an
 * address not the vport's; the side then Declines with CNFERR). 0: the socket's own. */
ESW_SMC_EXPORT void esw_smc_set_claimed_local(esw_smc* s, uint32_t ipv4);

/* ---- capability announcements (transparent use: esw-smc-run) ----------------------------------------------------
 * The service answers "is the peer a local SMC endpoint" for local peers (no TCP option needed). IPv4 host order.
 * listen: an SMC-enabled server listens on ip (0: any):port. connect_intent: before connect(), 0 when an
 * SMC-enabled listener is announced for dst (the client then sends a Proposal right after the handshake),
 * -ENOENT when not (stay plain TCP). take_intent: after accept(), 0 when that client announced a Proposal. */
ESW_SMC_EXPORT int esw_smc_listen(esw_smc* s, uint32_t ip, uint16_t port, int on);
ESW_SMC_EXPORT int esw_smc_connect_intent(esw_smc* s, uint32_t dst_ip, uint16_t dst_port, uint16_t src_port);
ESW_SMC_EXPORT int esw_smc_take_intent(esw_smc* s, uint32_t local_ip, uint16_t local_port, uint16_t peer_port);

/* ---- non-blocking use and readiness --------------------------------------------------------------------------- */
#define ESW_SMCD_DONTWAIT 1 /* -EAGAIN instead of waiting */
#define ESW_SMCD_PEEK 2     /* recv: leave the bytes in the ring */
/* send: with DONTWAIT, what fits (>= 1 byte) or -EAGAIN; recv: as esw_smcd_recv, -EAGAIN when nothing is there. */
ESW_SMC_EXPORT ssize_t esw_smcd_send_flags(esw_smcd_stream* st, const void* buf, size_t len, int flags);
ESW_SMC_EXPORT ssize_t esw_smcd_recv_flags(esw_smcd_stream* st, void* buf, size_t len, int flags);
/* The eventfd the peer raises (data, space, close): poll it for readiness. */
ESW_SMC_EXPORT int esw_smcd_event_fd(const esw_smcd_stream* st);
/* Bytes readable now (0 also at end of stream), or -errno when the stream failed. */
ESW_SMC_EXPORT ssize_t esw_smcd_readable(esw_smcd_stream* st);
/* Totals of this stream (bytes sent into the peer's DMB, received from ours). */
ESW_SMC_EXPORT void esw_smcd_counts(const esw_smcd_stream* st, uint64_t* sent, uint64_t* received);

#ifdef __cplusplus
}
#endif
#endif
