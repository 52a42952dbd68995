#include "config/schema_smc.h"

#include <fmt/format.h>

#include <map>

#include "config/formats.h"
#include "config/schema_limits.h"

namespace esw::cfg::detail {
namespace {

// Limits an operator may give; the ISM core refuses more than its DMB sizes allow anyway.
constexpr uint32_t kMaxIsmDmbs = 65536;
constexpr int64_t kMaxIsmBytes = int64_t{64} << 30;

std::optional<std::string> check_ism_socket(std::string& text) {
  if (text.empty() || text.front() != '/' || text.back() == '/' || text.size() > kMaxUnixPathLen ||
      text.find('\0') != std::string::npos) {
    return fmt::format("{} is not a valid ISM endpoint path; expected an absolute file path of at most {} bytes (a "
                       "Unix socket address)",
                       quoted(text), kMaxUnixPathLen);
  }
  return std::nullopt;
}

// Permission bits, written in octal as a string or a plain number: "0660", 0660, 660.
bool read_mode(const Value& v, uint32_t& out) {
  if (v.node.IsScalar()) {
    std::string text = v.node.Scalar();
    if (text.starts_with("0o")) text = text.substr(2);
    uint32_t m = 0;
    bool ok = !text.empty() && text.size() <= 4;
    for (char c : text) {
      if (c < '0' || c > '7') ok = false;
      m = m * 8 + static_cast<uint32_t>(c - '0');
    }
    if (ok && m <= 0777) {
      out = m;
      return true;
    }
  }
  v.error(fmt::format("expected permission bits in octal (0000..0777, e.g. \"0660\"), got {}", describe(v.node)));
  return false;
}

bool read_ism(const Value& v, SmcIsmConfig& out) {
  SmcIsmConfig c;
  const bool ok = read_map(v, [&](MapReader& m) {
    m.required("socket", c.socket, checked_text(check_ism_socket));
    m.optional("owner", c.owner, Integer<int64_t>{.min = 0, .max = 0xFFFFFFFE});
    m.optional("group", c.group, Integer<int64_t>{.min = 0, .max = 0xFFFFFFFE});
    m.optional("mode", c.mode, read_mode);
    m.optional("max_dmbs", c.max_dmbs, Integer<uint32_t>{.min = 1, .max = kMaxIsmDmbs});
    m.optional("max_bytes", c.max_bytes, Integer64{.min = 16 * 1024, .max = kMaxIsmBytes});
  });
  if (ok) out = std::move(c);
  return ok;
}

}  // namespace

bool read_vport_smc(const Value& v, VportConfig& out) {
  if (v.node.IsScalar()) return one_of({SmcPolicy::kAllow, SmcPolicy::kDeny})(v, out.smc);
  if (!v.node.IsMap()) {
    v.error(fmt::format("expected allow, deny or a mapping {{policy, ism}}, got {}", describe(v.node)));
    return false;
  }
  return read_map(v, [&](MapReader& m) {
    m.optional("policy", out.smc, one_of({SmcPolicy::kAllow, SmcPolicy::kDeny}));
    m.optional("ism", out.smc_ism, read_ism);
  });
}

void check_smc_ism(const Config& config, Diagnostics& diag) {
  std::map<std::string, std::string> seen;  // socket path -> where
  if (!config.dataplane.api_socket.empty()) seen.emplace(config.dataplane.api_socket, "dataplane.api_socket");
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const Attachment& a = config.vports[i].attach;
    if (a.vhost_user) seen.emplace(a.vhost_user->socket, index_path("vports", i) + ".attach.vhost_user.socket");
  }
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vp = config.vports[i];
    if (!vp.smc_ism) continue;
    const std::string base = index_path("vports", i) + ".smc";
    const std::string path = base + ".ism.socket";
    if (!diag.clean(path)) continue;
    if (vp.smc != SmcPolicy::kAllow) {
      diag.error_at(base + ".ism", "an ISM endpoint (SMC-D) needs policy allow; remove ism or set policy: allow");
    }
    auto [it, fresh] = seen.emplace(vp.smc_ism->socket, path);
    if (!fresh) {
      diag.error_at(path, fmt::format("socket {} is already used by {} (line {})", quoted(vp.smc_ism->socket),
                                      it->second, diag.location_of(it->second).line));
    }
  }
}

}  // namespace esw::cfg::detail
