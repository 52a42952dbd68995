// libFuzzer target for the YAML config loader (esw::cfg::load_config_string). Built and run by
// run_config_fuzz.sh (clang, -fsanitize=fuzzer,address,undefined; yaml-cpp and fmt from Debian). Seeds: the
// configs of tests/config/valid and tests/config/invalid.
//
// Beyond "no crash, no sanitizer report, no hang" it checks:
//  - the loader's contract (config/README.md): a config iff no errors; errors in file order; every line within
//    the input; no raw control character in any message (user text is quoted and escaped);
//  - that the loader's document (config/yaml_doc.h, built from yaml-cpp's events) is the tree YAML::Load builds
//    from the same text: same types, tags, scalars and marks (so every error keeps its place), same order.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "config/yaml_doc.h"

namespace {

void check(bool ok, const char* what, const std::string& detail = "") {
  if (!ok) {
    std::fprintf(stderr, "config loader invariant violated: %s %s\n", what, detail.c_str());
    std::abort();
  }
}

int count_lines(const std::string& text) {
  int lines = 1;
  for (char c : text) lines += c == '\n' || c == '\r';
  return lines;
}

// Walks both trees in step, at most `budget` nodes (an alias may make a cycle: `&a [*a]`).
void same_tree(const esw::cfg::detail::Node& ours, const YAML::Node& theirs, int depth, size_t& budget) {
  if (depth > 64 || budget == 0) return;
  --budget;
  check(static_cast<int>(ours.Type()) == static_cast<int>(theirs.Type()), "node type differs from YAML::Load's");
  const YAML::Mark a = ours.Mark(), b = theirs.Mark();
  check(a.pos == b.pos && a.line == b.line && a.column == b.column, "mark differs from YAML::Load's",
        std::to_string(a.line) + ":" + std::to_string(a.column) + " vs " + std::to_string(b.line) + ":" +
            std::to_string(b.column));
  if (theirs.IsScalar()) {
    check(ours.Scalar() == theirs.Scalar(), "scalar differs from YAML::Load's");
    check(ours.Tag() == theirs.Tag(), "tag differs from YAML::Load's", ours.Tag() + " vs " + theirs.Tag());
  }
  if (theirs.IsMap() || theirs.IsSequence()) {
    check(ours.Tag() == theirs.Tag(), "tag differs from YAML::Load's");
    check(ours.size() == theirs.size(), "size differs from YAML::Load's");
    auto it = ours.begin();
    for (auto jt = theirs.begin(); jt != theirs.end() && it != ours.end(); ++jt, ++it) {
      if (theirs.IsMap()) {
        same_tree(it->first, jt->first, depth + 1, budget);
        same_tree(it->second, jt->second, depth + 1, budget);
      } else {
        same_tree(*it, *jt, depth + 1, budget);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  const esw::cfg::LoadResult r = esw::cfg::load_config_string(text, "fuzz.yaml");
  check(r.config.has_value() == r.errors.empty(), "config must be set iff there are no errors");
  const int lines = count_lines(text);
  for (size_t i = 0; i < r.errors.size(); ++i) {
    const esw::cfg::Error& e = r.errors[i];
    check(e.line >= 0 && e.line <= lines + 1 && e.column >= 0, "error outside the input", e.to_string());
    check(!e.message.empty(), "empty error message");
    for (unsigned char c : e.message) check(c >= 0x20 && c != 0x7f, "raw control character in", e.to_string());
    for (unsigned char c : e.path) check(c >= 0x20 && c != 0x7f, "raw control character in path", e.to_string());
    if (i > 0) {
      const esw::cfg::Error& p = r.errors[i - 1];
      check(p.line < e.line || (p.line == e.line && p.column <= e.column), "errors not in file order");
    }
  }

  // The document against yaml-cpp's own tree. Only when the event parse succeeded and did not stop where
  // YAML::Load would loop forever; YAML::Load reads the first document only, so it must succeed too.
  std::optional<esw::cfg::detail::Doc> doc;
  try {
    doc = esw::cfg::detail::Doc::parse(text);
  } catch (const YAML::Exception&) {
  }
  if (doc && !doc->stuck()) {
    YAML::Node node;
    try {
      node = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      check(false, "YAML::Load failed where the event parse did not:", e.what());
    }
    size_t budget = 100000;
    same_tree(doc->root(), node, 0, budget);
  }
  return 0;
}
