// guest_udp_sink PORT FILE: runs inside a test guest (linked statically, packed into the initramfs by
// scripts/lib/guest.sh): receives UDP datagrams on PORT and appends each one, unchanged, to FILE. The receive
// buffer is made as large as the kernel allows (SO_RCVBUFFORCE: root), so datagrams can wait in the guest's
// socket (in the pages the device wrote them to) while the process is stopped. Exits 0 once nothing arrived for
// 5 s after the first datagram; prints what it got.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s PORT FILE\n", argv[0]);
    return 2;
  }
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int buf = 64 << 20;
  if (s < 0 || setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf)) != 0) {
    perror("guest_udp_sink: socket/SO_RCVBUFFORCE");
    return 1;
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
  if (bind(s, (struct sockaddr*)&a, sizeof(a)) != 0) {
    perror("guest_udp_sink: bind");
    return 1;
  }
  int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0) {
    perror("guest_udp_sink: open");
    return 1;
  }
  printf("guest_udp_sink: bound\n");
  fflush(stdout);
  static char d[65536];
  long n = 0, bytes = 0;
  for (;;) {
    ssize_t k = recv(s, d, sizeof(d), 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      perror("guest_udp_sink: recv");
      return 1;
    }
    if (write(out, d, (size_t)k) != k) {
      perror("guest_udp_sink: write");
      return 1;
    }
    if (n++ == 0) {
      struct timeval tv = {.tv_sec = 5};
      setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    }
    bytes += k;
  }
  close(out);
  printf("guest_udp_sink: %ld datagrams, %ld bytes\n", n, bytes);
  return 0;
}
