// YAML -> Config. Two passes:
//  1. Schema (schema.h: schema.cc, schema_rules.cc, rule_text.cc): MapReader walks each mapping, reads typed
//     fields with value parsers (yaml_reader.h: Integer, Text, OneOf, ListOf, section readers) and reports
//     unknown keys. Each value is checked on its own here (string formats: formats.h).
//  2. Cross-field checks on the finished model (checks.h: uniqueness, references, mode rules). They find their
//     source locations through the paths recorded in pass 1 and skip values that already failed in pass 1.
// A new section is a read_<section>() function built from these pieces plus, if needed, a check_<topic>().
// This file: the document (one YAML document, parse errors located) and the two passes in order.
#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/exceptions.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "config/checks.h"
#include "config/config.h"
#include "config/schema.h"
#include "config/yaml_doc.h"
#include "config/text_escape.h"
#include "config/yaml_reader.h"

namespace esw::cfg {
namespace {

using namespace detail;

// VportConfig::locs: everything read under "vports[i].", by the rest of its path.
void record_vport_locs(Config& config, const Diagnostics& diag) {
  constexpr std::string_view kPrefix = "vports[";
  diag.for_each_recorded([&](const std::string& path, Loc loc) {
    if (!path.starts_with(kPrefix)) return;
    const size_t close = path.find(']');
    size_t index = 0;
    const auto [end, ec] = std::from_chars(path.data() + kPrefix.size(), path.data() + close, index);
    if (ec != std::errc() || end != path.data() + close || index >= config.vports.size()) return;
    if (close + 2 > path.size() || path[close + 1] != '.') return;
    config.vports[index].locs[path.substr(close + 2)] = loc;
  });
}

// The one document in `yaml` (its root: a null node when there is none), or nothing after reporting why not.
// Built in one pass from yaml-cpp's events (yaml_doc.h), which also count the documents.
std::optional<Doc> parse_document(const std::string& yaml, Diagnostics& diag) {
  try {
    Doc doc = Doc::parse(yaml);
    const std::vector<YAML::Mark>& starts = doc.document_starts();
    if (doc.stuck()) {
      const YAML::Mark& at = starts.back();
      const std::string_view token =
          at.pos >= 0 && static_cast<size_t>(at.pos) < yaml.size() ? std::string_view(yaml).substr(at.pos, 1) : "";
      diag.error("", to_loc(at), fmt::format("invalid YAML: unexpected {}", quoted(token)));
      return std::nullopt;
    }
    if (starts.size() > 1) {
      diag.error("", to_loc(starts[1]), fmt::format("holds {} YAML documents; expected one", starts.size()));
    }
    return doc;  // the first document only
  } catch (const YAML::DeepRecursion& e) {  // its message is just "bad file"
    diag.error("", to_loc(e.mark), fmt::format("invalid YAML: nested more than {} levels deep", e.depth()));
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    diag.error("", to_loc(e.mark), fmt::format("invalid YAML: {}", escape_control(e.msg)));  // may quote input
    return std::nullopt;
  }
}

}  // namespace

LoadResult load_config_string(const std::string& yaml, const std::string& source_name) {
  Diagnostics diag(source_name);
  LoadResult result;
  const std::optional<Doc> document = parse_document(yaml, diag);
  if (!document) {
    result.errors = diag.take_in_file_order();
    return result;
  }
  const Node root = document->root();
  Config config;
  diag.record("", to_loc(root.Mark()));
  read_config(Value{root, "", to_loc(root.Mark()), &diag}, config);
  check_model(config, diag);
  record_vport_locs(config, diag);

  if (diag.has_errors()) {
    result.errors = diag.take_in_file_order();
  } else {
    result.config = std::move(config);
  }
  return result;
}

LoadResult load_config_file(const std::string& path) {
  std::string text;
  int err = 0;
  if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
    char buffer[1 << 16];
    errno = 0;
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
    if (std::ferror(file)) err = errno != 0 ? errno : EIO;
    std::fclose(file);
  } else {
    err = errno;
  }
  if (err != 0) {
    LoadResult result;
    result.errors.push_back(
        Error{"", 0, 0, fmt::format("cannot read config file {:?}: {}", path, std::generic_category().message(err))});
    return result;
  }
  return load_config_string(text, path);
}

}  // namespace esw::cfg
