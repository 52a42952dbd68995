// The emulated ISM service core (dataplane/smc/ism.h): GIDs, grants, limits, token guessing, revocation.

#include "dataplane/smc/ism.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <set>

namespace esw::smc::ism {
namespace {

constexpr uint32_t kA = 1, kB = 2, kC = 3;

class IsmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(svc.add_vport(kA, Limits{4, 256 * 1024}).ok());
    ASSERT_TRUE(svc.add_vport(kB, Limits{4, 256 * 1024}).ok());
    ASSERT_TRUE(svc.add_vport(kC, Limits{4, 256 * 1024}).ok());
  }
  Service svc{0xFF10};
};

TEST(IsmChid, OutsideEmulatedRangeRefused) {
  for (uint16_t chid : {0x0000, 0x1234, 0xFEFF, 0xFFFF}) {
    Service s(chid);
    Result r = s.add_vport(1, Limits{});
    EXPECT_EQ(r.err, Err::kInvalid) << chid;
    EXPECT_NE(std::strstr(r.reason, "0xFF00-0xFFFE"), nullptr);
  }
  Service ok(0xFF00);
  EXPECT_TRUE(ok.add_vport(1, Limits{}).ok());
}

TEST_F(IsmTest, GidsUniqueAndStable) {
  std::set<std::pair<uint64_t, uint64_t>> seen;
  Service s(0xFF00);
  for (uint32_t v = 0; v < 2000; ++v) {
    ASSERT_TRUE(s.add_vport(v, Limits{}).ok());
    const Gid* g = s.gid(v);
    ASSERT_NE(g, nullptr);
    EXPECT_TRUE(seen.insert({g->gid, g->gid_ext}).second);
    uint32_t back = 0;
    ASSERT_TRUE(s.vport_of(*g, &back));
    EXPECT_EQ(back, v);
  }
  EXPECT_EQ(s.add_vport(7, Limits{}).err, Err::kVportExists);
  EXPECT_EQ(s.add_vport(kNoVport, Limits{}).err, Err::kInvalid);
  uint32_t v;
  EXPECT_FALSE(s.vport_of(Gid{1, 2}, &v));
}

TEST_F(IsmTest, RegisterSealedMemfdAndGrants) {
  DmbGrant g;
  ASSERT_TRUE(svc.register_dmb({kA, 100}, kB, 64 * 1024, &g).ok());
  EXPECT_NE(g.token, 0u);
  EXPECT_EQ(g.size, 64u * 1024);
  // The owner's fd is read-only; the memfd is sealed against shrinking and growing.
  EXPECT_EQ(fcntl(g.mem_fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  int seals = fcntl(g.mem_fd, F_GET_SEALS);
  EXPECT_TRUE(seals & F_SEAL_SHRINK);
  EXPECT_TRUE(seals & F_SEAL_GROW);
  EXPECT_TRUE(seals & F_SEAL_SEAL);

  DmbGrant w;
  Result r = svc.attach({kC, 300}, g.token, &w);
  EXPECT_EQ(r.err, Err::kNotGranted);
  EXPECT_NE(std::strstr(r.reason, "not granted"), nullptr);
  ASSERT_TRUE(svc.attach({kB, 200}, g.token, &w).ok());
  EXPECT_EQ(fcntl(w.mem_fd, F_GETFL) & O_ACCMODE, O_RDWR);
  EXPECT_EQ(w.event_fd, g.event_fd);
  // The owner may attach too (its read-only view).
  DmbGrant o;
  ASSERT_TRUE(svc.attach({kA, 101}, g.token, &o).ok());
  EXPECT_EQ(fcntl(o.mem_fd, F_GETFL) & O_ACCMODE, O_RDONLY);

  // The writer cannot grow or shrink the buffer.
  EXPECT_NE(ftruncate(w.mem_fd, 128 * 1024), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(ftruncate(w.mem_fd, 4096), 0);
  char byte = 1;
  EXPECT_LT(pwrite(w.mem_fd, &byte, 1, 64 * 1024), 0) << "a write past the end must fail (F_SEAL_GROW)";
  EXPECT_EQ(pwrite(w.mem_fd, &byte, 1, 64 * 1024 - 1), 1);

  // Only the owner vport unregisters.
  EXPECT_EQ(svc.unregister_dmb({kB, 200}, g.token).err, Err::kNotGranted);
  EXPECT_EQ(svc.unregister_dmb({kA, 100}, g.token + 1).err, Err::kNoToken);
  EXPECT_TRUE(svc.unregister_dmb({kA, 100}, g.token).ok());
  EXPECT_EQ(svc.attach({kB, 200}, g.token, &w).err, Err::kNoToken);
  EXPECT_EQ(svc.dmb_count(), 0u);
}

TEST_F(IsmTest, SizesAndLimits) {
  DmbGrant g;
  for (uint64_t bad : {0ull, 4096ull, 16ull * 1024 + 1, 48ull * 1024, 2ull << 20}) {
    Result r = svc.register_dmb({kA, 1}, kB, bad, &g);
    EXPECT_EQ(r.err, Err::kInvalid) << bad;
  }
  EXPECT_EQ(svc.register_dmb({kA, 1}, 99, 16 * 1024, &g).err, Err::kNoVport);
  EXPECT_EQ(svc.register_dmb({99, 1}, kB, 16 * 1024, &g).err, Err::kNoVport);
  // Byte limit 256 KiB: 128 + 64 + 64, then 16 more is refused by bytes.
  ASSERT_TRUE(svc.register_dmb({kA, 1}, kB, 128 * 1024, &g).ok());
  ASSERT_TRUE(svc.register_dmb({kA, 1}, kB, 64 * 1024, &g).ok());
  ASSERT_TRUE(svc.register_dmb({kA, 1}, kB, 64 * 1024, &g).ok());
  Result r = svc.register_dmb({kA, 1}, kB, 16 * 1024, &g);
  EXPECT_EQ(r.err, Err::kLimit);
  EXPECT_NE(std::strstr(r.reason, "byte limit"), nullptr);
  EXPECT_EQ(svc.dmb_bytes(kA), 256u * 1024);
  // Count limit 4 (vport B).
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(svc.register_dmb({kB, 2}, kA, 16 * 1024, &g).ok());
  r = svc.register_dmb({kB, 2}, kA, 16 * 1024, &g);
  EXPECT_EQ(r.err, Err::kLimit);
  EXPECT_NE(std::strstr(r.reason, "count limit"), nullptr);
  // Freed on release: the count comes back.
  svc.release_client(2);
  EXPECT_EQ(svc.dmb_count(kB), 0u);
  EXPECT_TRUE(svc.register_dmb({kB, 2}, kA, 16 * 1024, &g).ok());
}

TEST_F(IsmTest, MillionGuessedTokensAttachNothing) {
  DmbGrant g1, g2;
  ASSERT_TRUE(svc.register_dmb({kA, 1}, kB, 16 * 1024, &g1).ok());
  ASSERT_TRUE(svc.register_dmb({kB, 2}, kA, 16 * 1024, &g2).ok());
  std::mt19937_64 rng(0x5eed);
  uint64_t guessed = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    uint64_t t = rng();
    DmbGrant out;
    Result r = svc.attach({kC, 3}, t, &out);
    if (r.ok()) guessed++;
    // Even a correct guess is refused to a vport the DMB is not granted to.
  }
  EXPECT_EQ(guessed, 0u);
  // The real tokens, tried by the attacker vport C: refused, not merely unknown.
  DmbGrant out;
  EXPECT_EQ(svc.attach({kC, 3}, g1.token, &out).err, Err::kNotGranted);
  EXPECT_EQ(svc.attach({kC, 3}, g2.token, &out).err, Err::kNotGranted);
  EXPECT_EQ(svc.counters().attach_refused, 1'000'002u);
  EXPECT_EQ(svc.counters().attaches, 0u);
  // Tokens are not sequential or small.
  EXPECT_GT(g1.token > g2.token ? g1.token - g2.token : g2.token - g1.token, 1u << 20);
}

TEST_F(IsmTest, WritesBoundsChecked) {
  DmbGrant g;
  ASSERT_TRUE(svc.register_dmb({kA, 1}, kB, 16 * 1024, &g).ok());
  std::vector<uint8_t> data(100, 0xAB);
  EXPECT_TRUE(svc.write({kB, 2}, g.token, 16 * 1024 - 100, data).ok());
  Result r = svc.write({kB, 2}, g.token, 16 * 1024 - 99, data);
  EXPECT_EQ(r.err, Err::kInvalid);
  EXPECT_NE(std::strstr(r.reason, "past the end"), nullptr);
  EXPECT_EQ(svc.write({kB, 2}, g.token, ~0ull, data).err, Err::kInvalid);
  EXPECT_EQ(svc.write({kB, 2}, g.token, ~0ull - 50, data).err, Err::kInvalid) << "offset + length overflow";
  EXPECT_EQ(svc.write({kA, 1}, g.token, 0, data).err, Err::kNotGranted) << "the owner does not write its DMB";
  EXPECT_EQ(svc.write({kC, 3}, g.token, 0, data).err, Err::kNotGranted);
  uint64_t size = 0;
  const uint8_t* v = svc.debug_view(g.token, &size);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v[16 * 1024 - 1], 0xAB);
  EXPECT_EQ(v[16 * 1024 - 101], 0);
  EXPECT_EQ(svc.counters().write_refused, 5u);
}

// Revocation zeroes the buffer as every holder of the memfd sees it, and signals the eventfd.
TEST_F(IsmTest, RevokeZeroesAndSignals) {
  for (int how = 0; how < 3; ++how) {
    DmbGrant g;
    ASSERT_TRUE(svc.register_dmb({kA, 10}, kB, 64 * 1024, &g).ok());
    DmbGrant w;
    ASSERT_TRUE(svc.attach({kB, 20}, g.token, &w).ok());
    // Keep our own references, as a tenant that received the fds would.
    int mem = dup(w.mem_fd), ev = dup(w.event_fd);
    auto* m = static_cast<uint8_t*>(mmap(nullptr, 64 * 1024, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0));
    ASSERT_NE(m, MAP_FAILED);
    std::memset(m, 0x5A, 64 * 1024);
    if (how == 0) {
      ASSERT_TRUE(svc.unregister_dmb({kA, 10}, g.token).ok());
    }
    if (how == 1) svc.release_client(10);  // the owner tenant died
    if (how == 2) {
      ASSERT_TRUE(svc.remove_vport(kA).ok());
      ASSERT_TRUE(svc.add_vport(kA, Limits{4, 256 * 1024}).ok());
    }
    EXPECT_EQ(svc.dmb_count(), 0u) << how;
    size_t nonzero = 0;
    for (size_t i = 0; i < 64 * 1024; ++i) nonzero += i != kCdcConsFlagsOffset && m[i] != 0;
    EXPECT_EQ(nonzero, 0u) << "revocation " << how << " must zero the buffer";
    EXPECT_EQ(m[kCdcConsFlagsOffset], kCdcStateAbort) << "all but the abort flag";
    uint64_t cnt = 0;
    EXPECT_EQ(read(ev, &cnt, sizeof cnt), 8) << "the eventfd is raised on revocation " << how;
    DmbGrant again;
    EXPECT_EQ(svc.attach({kB, 20}, g.token, &again).err, Err::kNoToken);
    munmap(m, 64 * 1024);
    close(mem);
    close(ev);
  }
  EXPECT_GE(svc.counters().bytes_zeroed, 3u * 64 * 1024);
}

// The writer's end (tenant death or vport removal) tells the surviving owner: abort flag in its DMB's CDC header.
TEST_F(IsmTest, WriterGoneSetsAbortForOwner) {
  for (int how = 0; how < 2; ++how) {
    DmbGrant g, w;
    ASSERT_TRUE(svc.register_dmb({kA, 10}, kB, 16 * 1024, &g).ok());
    ASSERT_TRUE(svc.attach({kB, 20}, g.token, &w).ok());
    uint64_t size;
    const uint8_t* v = svc.debug_view(g.token, &size);
    ASSERT_EQ(v[kCdcConsFlagsOffset] & kCdcStateAbort, 0);
    if (how == 0) svc.release_client(20);
    if (how == 1) {
      ASSERT_TRUE(svc.remove_vport(kB).ok());
    }
    v = svc.debug_view(g.token, &size);
    ASSERT_NE(v, nullptr) << "the owner's DMB survives its writer";
    EXPECT_EQ(v[kCdcConsFlagsOffset] & kCdcStateAbort, kCdcStateAbort);
    uint64_t cnt = 0;
    EXPECT_EQ(read(g.event_fd, &cnt, sizeof cnt), 8);
    if (how == 1) {
      // The removed vport's grant is gone for good, even for a vport that reuses the id.
      ASSERT_TRUE(svc.add_vport(kB, Limits{4, 256 * 1024}).ok());
      EXPECT_EQ(svc.attach({kB, 21}, g.token, &w).err, Err::kNotGranted);
    }
    ASSERT_TRUE(svc.unregister_dmb({kA, 10}, g.token).ok());
  }
}

TEST_F(IsmTest, SignalAndDetach) {
  DmbGrant g, w;
  ASSERT_TRUE(svc.register_dmb({kA, 10}, kB, 16 * 1024, &g).ok());
  EXPECT_EQ(svc.signal({kC, 30}, g.token).err, Err::kNotGranted);
  EXPECT_EQ(svc.detach({kB, 20}, g.token).err, Err::kNotGranted) << "not attached yet";
  ASSERT_TRUE(svc.attach({kB, 20}, g.token, &w).ok());
  ASSERT_TRUE(svc.signal({kB, 20}, g.token).ok());
  uint64_t cnt = 0;
  EXPECT_EQ(read(g.event_fd, &cnt, sizeof cnt), 8);
  EXPECT_EQ(cnt, 1u);
  EXPECT_TRUE(svc.detach({kB, 20}, g.token).ok());
  // Detached: the writer's death no longer concerns this DMB.
  svc.release_client(20);
  uint64_t size;
  EXPECT_EQ(svc.debug_view(g.token, &size)[kCdcConsFlagsOffset], 0);
}

}  // namespace
}  // namespace esw::smc::ism
