#pragma once
// Wakes rte_vhost's event thread after a server-mode socket starts listening (issue 10 item 3: a VM reconnects to
// a restarted eswitchd in under 100 ms).
//
// rte_vhost 22.11 (lib/vhost/socket.c vhost_user_start_server) adds a server socket's listen fd to its event
// thread's fd set with fdset_add alone; the thread (lib/vhost/fd_man.c fdset_event_dispatch) reads the set's size
// before poll() with a 1000 ms timeout, so it sees the new fd only when that poll returns: the first connection to
// a freshly started eswitchd waited up to 1 s (865-955 ms measured) before rte_vhost accepted it. The only public
// path to the thread's wake-up pipe (fdset_pipe_notify) is vhost_user_add_connection: a server accept or a client
// connect. So wake_vhost_event_thread() makes one throwaway client connection:
//  - a listening unix socket of eswitchd's own, in a fresh mkdtemp directory (0700; the socket 0600);
//  - rte_vhost_driver_register(path, CLIENT | NO_RECONNECT) with device callbacks that are all null, then
//    rte_vhost_driver_start: rte_vhost connects at once (the listener's backlog takes it; nothing is accepted),
//    adds the connection (a device with no features, never negotiated: no new_device) and writes to the pipe;
//    the event thread wakes and polls the whole set, the new listen fds included;
//  - rte_vhost_driver_unregister: closes the connection and frees its device; then the listener, the socket file
//    and the directory go.
// Main lcore, once per batch of server-mode ports opened together: a port's open counts its socket and the next
// VhostUserPort::service() (any vhost-user port) wakes the thread once for all of them, logging how many and what
// it took (1.5-3.7 ms on a loaded 2-core machine). A failure only costs the old wait: a warning, not an error.

#include <string>

namespace esw::vdpa {

// Empty when the event thread was woken, else what failed (the listen fds are then seen within 1 s as before).
std::string wake_vhost_event_thread();

}  // namespace esw::vdpa
