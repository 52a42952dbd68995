// Test helper (tests/e2e/xdp_offload.sh): changes the XDP program on an interface from outside eswitchd, as an
// operator or another loader would, and puts the original back later.
//
//   xdp_swap IFACE OBJ|hold READY_FILE
//
// Holds the program attached to IFACE now (an fd, so it lives on whatever happens to the interface). With OBJ, it
// loads OBJ (its map named xsks_map, if any, reuses the held program's xsks_map: the af_xdp PMD's sockets go on
// receiving) and attaches OBJ's first program in place of the held one, in the same mode. With "hold" it changes
// nothing (the caller may then run `ip link set dev IFACE xdp off`). Then it writes "OLD_ID NEW_ID" to READY_FILE
// and waits; on SIGTERM or SIGINT it attaches the held program again (replacing whatever is there) and exits 0.
// Exit 1 with a one-line error on stderr when something fails.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

int die(const std::string& what) {
  std::fprintf(stderr, "xdp_swap: %s\n", what.c_str());
  return 1;
}

// The fd of the map called `name` among the program's maps, or -1.
int prog_map_fd(int prog_fd, const char* name) {
  std::vector<uint32_t> ids(16);
  bpf_prog_info info{};
  info.nr_map_ids = static_cast<uint32_t>(ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(ids.data());
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return -1;
  for (uint32_t i = 0; i < info.nr_map_ids && i < ids.size(); ++i) {
    const int fd = bpf_map_get_fd_by_id(ids[i]);
    if (fd < 0) continue;
    bpf_map_info mi{};
    uint32_t mlen = sizeof mi;
    if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0 && std::strcmp(mi.name, name) == 0) return fd;
    close(fd);
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return die("usage: xdp_swap IFACE OBJ|hold READY_FILE");
  const std::string iface = argv[1], obj_path = argv[2], ready = argv[3];
  const int ifindex = static_cast<int>(if_nametoindex(iface.c_str()));
  if (ifindex == 0) return die("no interface " + iface);
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (int rc = bpf_xdp_query(ifindex, 0, &q); rc != 0) return die("cannot query " + iface + ": " + std::strerror(-rc));
  uint32_t old_id = 0, mode = 0;
  if (q.attach_mode == XDP_ATTACHED_DRV) {
    old_id = q.drv_prog_id;
    mode = XDP_FLAGS_DRV_MODE;
  } else if (q.attach_mode == XDP_ATTACHED_SKB) {
    old_id = q.skb_prog_id;
    mode = XDP_FLAGS_SKB_MODE;
  } else {
    return die("no XDP program (in driver or generic mode) on " + iface);
  }
  const int old_fd = bpf_prog_get_fd_by_id(old_id);
  if (old_fd < 0) return die("cannot open program " + std::to_string(old_id) + ": " + std::strerror(errno));

  // Signals are taken with sigwait only.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigprocmask(SIG_BLOCK, &sigs, nullptr);

  uint32_t new_id = old_id;
  bpf_object* obj = nullptr;
  if (obj_path != "hold") {
    obj = bpf_object__open_file(obj_path.c_str(), nullptr);
    if (obj == nullptr) return die("cannot open " + obj_path + ": " + std::strerror(errno));
    if (bpf_map* m = bpf_object__find_map_by_name(obj, "xsks_map"); m != nullptr) {
      const int xsk_fd = prog_map_fd(old_fd, "xsks_map");
      if (xsk_fd < 0) return die("the program on " + iface + " has no xsks_map to share");
      if (int rc = bpf_map__reuse_fd(m, xsk_fd); rc != 0) return die("cannot reuse xsks_map: " + std::string(std::strerror(-rc)));
      close(xsk_fd);
    }
    if (int rc = bpf_object__load(obj); rc != 0) return die("cannot load " + obj_path + ": " + std::strerror(-rc));
    bpf_program* prog = bpf_object__next_program(obj, nullptr);
    if (prog == nullptr) return die(obj_path + " has no program");
    bpf_xdp_attach_opts ao{};
    ao.sz = sizeof ao;
    ao.old_prog_fd = old_fd;
    if (int rc = bpf_xdp_attach(ifindex, bpf_program__fd(prog), mode | XDP_FLAGS_REPLACE, &ao); rc != 0) {
      return die("cannot attach " + obj_path + " to " + iface + ": " + std::strerror(-rc));
    }
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) == 0) new_id = info.id;
  }
  if (FILE* f = std::fopen(ready.c_str(), "w"); f != nullptr) {
    std::fprintf(f, "%u %u\n", old_id, new_id);
    std::fclose(f);
  } else {
    return die("cannot write " + ready);
  }
  int sig = 0;
  sigwait(&sigs, &sig);
  // Back as it was (whatever is attached now: our program, none, or another one).
  const int rc = bpf_xdp_attach(ifindex, old_fd, mode, nullptr);
  if (obj != nullptr) bpf_object__close(obj);
  close(old_fd);
  if (rc != 0) return die("cannot attach program " + std::to_string(old_id) + " to " + iface + " again: " + std::strerror(-rc));
  return 0;
}
