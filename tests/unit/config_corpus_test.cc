// Config corpus: every file under tests/config/invalid must fail exactly as its "# expect:" lines say, and every
// valid config we ship or document must load and pass the rule compiler's checks. No EAL.
//
// An invalid file starts with one comment line per error, in the order the errors are reported (file order):
//   # expect: <path> | <line>:<col> | <message fragment>
// The path is empty for problems with the source as a whole (YAML syntax). Errors come from the loader
// (load_config_file) or, when the file loads, from the rule compiler (esw::dp::check_config): the corpus holds
// both, so a rule that moves from one to the other keeps its test.
//
// Valid: tests/config/valid/*.yaml, config/examples/*.yaml, config/default.yaml, and each ```yaml block of
// config/README.md that starts with "apiVersion:".
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "dataplane/rules/ruleset.h"

#ifndef ESW_SOURCE_ROOT
#error "build with -DESW_SOURCE_ROOT=\"<source root>\" (see tests/meson.build)"
#endif

namespace esw::cfg {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMinInvalidFiles = 45;

fs::path source_root() { return fs::path(ESW_SOURCE_ROOT); }
fs::path invalid_dir() { return source_root() / "tests/config/invalid"; }
fs::path valid_dir() { return source_root() / "tests/config/valid"; }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Files in `dir` (sorted); everything that is not a regular *.yaml file is returned in `others`.
std::vector<fs::path> yaml_files(const fs::path& dir, std::vector<fs::path>* others = nullptr) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".yaml") {
      files.push_back(entry.path());
    } else if (others != nullptr) {
      others->push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

struct Expect {
  std::string path;
  int line = 0;
  int column = 0;
  std::string fragment;
};

std::string trim(std::string s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "<path> | <line>:<col> | <fragment>" (what follows "# expect:").
std::optional<Expect> parse_expect(std::string_view text) {
  const size_t bar1 = text.find('|');
  const size_t bar2 = bar1 == std::string_view::npos ? bar1 : text.find('|', bar1 + 1);
  if (bar2 == std::string_view::npos) return std::nullopt;
  const std::string where = trim(std::string(text.substr(bar1 + 1, bar2 - bar1 - 1)));
  const size_t colon = where.find(':');
  if (colon == std::string::npos || !all_digits(where.substr(0, colon)) || !all_digits(where.substr(colon + 1))) {
    return std::nullopt;
  }
  Expect e{trim(std::string(text.substr(0, bar1))), std::stoi(where.substr(0, colon)),
           std::stoi(where.substr(colon + 1)), trim(std::string(text.substr(bar2 + 1)))};
  if (e.fragment.empty()) return std::nullopt;
  return e;
}

// The "# expect:" lines of a file; a malformed one is reported in `problems`.
std::vector<Expect> parse_expects(const std::string& text, std::vector<std::string>& problems) {
  std::vector<Expect> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("# expect")) continue;
    std::optional<Expect> e;
    if (line.starts_with("# expect:")) e = parse_expect(std::string_view(line).substr(9));
    if (!e) {
      problems.push_back("malformed expect line: " + line);
      continue;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

// NN-short-name.yaml: two or three digits, then lower-case words joined by '-'.
bool is_corpus_name(const std::string& name) {
  const size_t dash = name.find('-');
  if (dash < 2 || dash > 3 || !all_digits(name.substr(0, dash)) || !name.ends_with(".yaml")) return false;
  const std::string words = name.substr(dash + 1, name.size() - dash - 1 - 5);
  return !words.empty() && words.front() != '-' && words.back() != '-' && words.find("--") == std::string::npos &&
         std::all_of(words.begin(), words.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::string as_expect_lines(const std::vector<Error>& errors) {
  std::string out;
  for (const Error& e : errors) {
    out += fmt::format("  # expect: {} | {}:{} | {}\n", e.path, e.line, e.column, e.message);
  }
  return out.empty() ? "  (no errors)\n" : out;
}

// Loader errors, or else the rule compiler's.
std::vector<Error> all_errors(const LoadResult& result) {
  if (!result.config) return result.errors;
  return esw::dp::check_config(*result.config);
}

std::string test_name(const fs::path& path) {
  std::string name = path.stem().string();
  std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  return name;
}

// ------------------------------------------------------------------------------------------- invalid configs

class InvalidConfig : public ::testing::TestWithParam<fs::path> {};

TEST_P(InvalidConfig, FailsAsExpected) {
  const fs::path& file = GetParam();
  std::vector<std::string> problems;
  const std::vector<Expect> expected = parse_expects(read_text(file), problems);
  EXPECT_THAT(problems, ::testing::IsEmpty());
  ASSERT_FALSE(expected.empty()) << file << " has no \"# expect:\" line";

  const LoadResult result = load_config_file(file.string());
  const std::vector<Error> errors = all_errors(result);
  ASSERT_EQ(errors.size(), expected.size()) << file << " gave:\n" << as_expect_lines(errors);
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE(fmt::format("{}: error {}: {}", file.filename().string(), i, errors[i].to_string()));
    EXPECT_EQ(errors[i].path, expected[i].path);
    EXPECT_EQ(errors[i].line, expected[i].line);
    EXPECT_EQ(errors[i].column, expected[i].column);
    EXPECT_THAT(errors[i].message, ::testing::HasSubstr(expected[i].fragment));
  }
  if (::testing::Test::HasFailure()) ADD_FAILURE() << file << " gave:\n" << as_expect_lines(errors);
}

INSTANTIATE_TEST_SUITE_P(Corpus, InvalidConfig, ::testing::ValuesIn(yaml_files(invalid_dir())),
                         [](const ::testing::TestParamInfo<fs::path>& info) { return test_name(info.param); });

// Nothing in the corpus directory escapes the test above.
TEST(ConfigCorpus, InvalidDirectoryIsFullyCovered) {
  std::vector<fs::path> others;
  const std::vector<fs::path> files = yaml_files(invalid_dir(), &others);
  EXPECT_GE(files.size(), kMinInvalidFiles) << invalid_dir();
  EXPECT_THAT(others, ::testing::IsEmpty()) << "only *.yaml files belong in " << invalid_dir();
  std::set<std::string> numbers;
  for (const fs::path& file : files) {
    const std::string name = file.filename().string();
    EXPECT_TRUE(is_corpus_name(name)) << name << ": expected NN-short-name.yaml";
    EXPECT_TRUE(numbers.insert(name.substr(0, name.find('-'))).second) << name << ": number used twice";
  }
}

// ------------------------------------------------------------------------------------------- valid configs

void expect_clean(const std::string& what, const LoadResult& result) {
  EXPECT_TRUE(result.config.has_value()) << what << " does not load:\n" << as_expect_lines(result.errors);
  if (!result.config) return;
  const std::vector<Error> errors = esw::dp::check_config(*result.config);
  EXPECT_THAT(errors, ::testing::IsEmpty()) << what << " fails the rule checks:\n" << as_expect_lines(errors);
}

std::vector<fs::path> valid_files() {
  std::vector<fs::path> files = yaml_files(valid_dir());
  const std::vector<fs::path> examples = yaml_files(source_root() / "config/examples");
  files.insert(files.end(), examples.begin(), examples.end());
  files.push_back(source_root() / "config/default.yaml");
  return files;
}

class ValidConfig : public ::testing::TestWithParam<fs::path> {};

TEST_P(ValidConfig, LoadsAndChecksClean) {
  const fs::path& file = GetParam();
  ASSERT_TRUE(fs::is_regular_file(file)) << file;
  std::vector<std::string> problems;
  EXPECT_THAT(parse_expects(read_text(file), problems), ::testing::IsEmpty()) << file << " is not an invalid config";
  expect_clean(file.string(), load_config_file(file.string()));
}

INSTANTIATE_TEST_SUITE_P(Shipped, ValidConfig, ::testing::ValuesIn(valid_files()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           return info.param.parent_path().filename().string() + "_" + test_name(info.param);
                         });

TEST(ConfigCorpus, ValidDirectoryIsNotEmpty) {
  std::vector<fs::path> others;
  EXPECT_GE(yaml_files(valid_dir(), &others).size(), 3u);
  EXPECT_THAT(others, ::testing::IsEmpty());
}

TEST(ConfigCorpus, DefaultFileIsTheEmbeddedDefault) {
  EXPECT_EQ(read_text(source_root() / "config/default.yaml"), default_config_yaml());
}

// The documentation's complete examples are configs too.
TEST(ConfigCorpus, ReadmeExamplesLoad) {
  const std::string readme = read_text(source_root() / "config/README.md");
  ASSERT_FALSE(readme.empty());
  size_t blocks = 0;
  size_t pos = 0;
  while ((pos = readme.find("```yaml\n", pos)) != std::string::npos) {
    const size_t begin = pos + 8;
    const size_t end = readme.find("```", begin);
    ASSERT_NE(end, std::string::npos) << "unterminated yaml block";
    const std::string block = readme.substr(begin, end - begin);
    pos = end + 3;
    if (!block.starts_with("apiVersion:")) continue;
    ++blocks;
    const auto newlines = std::count(readme.begin(), readme.begin() + static_cast<std::ptrdiff_t>(begin), '\n');
    const size_t line = static_cast<size_t>(newlines) + 1;
    expect_clean(fmt::format("config/README.md block at line {}", line), load_config_string(block, "README.md"));
  }
  EXPECT_GE(blocks, 5u);
}

// config/examples/full.yaml is the reference for every feature: make sure it keeps using all of them.
TEST(ConfigCorpus, FullExampleUsesEveryFeature) {
  const LoadResult result = load_config_file((source_root() / "config/examples/full.yaml").string());
  ASSERT_TRUE(result.config.has_value()) << as_expect_lines(result.errors);
  const Config& c = *result.config;
  EXPECT_FALSE(c.uplinks.empty());
  std::set<std::string> vport_fields, actions, miss_actions;
  bool srtcm = false, trtcm = false, keyword = false, valued = false, named_table = false;
  for (const VportConfig& v : c.vports) {
    for (const auto& [field, loc] : v.locs) vport_fields.insert(field.substr(0, field.find_first_of(".[")));
  }
  for (const MeterConfig& m : c.meters) (m.tr_tcm ? trtcm : srtcm) = true;
  for (const TableConfig& t : c.tables) {
    named_table |= !t.name.empty();
    for (const ActionConfig& a : t.miss) miss_actions.insert(a.name);
    for (const RuleConfig& r : t.rules) {
      for (const MatchItem& m : r.match) (m.value.empty() ? keyword : valued) = true;
      for (const ActionConfig& a : r.actions) actions.insert(a.name);
    }
  }
  EXPECT_THAT(vport_fields, ::testing::IsSupersetOf({"name", "flavour", "id", "attach", "hw_addr", "ipv4", "ipv6",
                                                     "vlan", "state", "spoofchk", "trust", "roce", "smc",
                                                     "dhcp_client", "egress_multicast", "rate"}));
  EXPECT_THAT(actions, ::testing::IsSupersetOf({"output", "mirror", "to_representor", "drop", "count", "meter",
                                                "goto_table", "set_field", "set_register", "dec_ttl", "push_vlan",
                                                "pop_vlan"}));
  EXPECT_FALSE(miss_actions.empty());
  EXPECT_TRUE(srtcm && trtcm && keyword && valued && named_table);
  EXPECT_NE(c.dataplane.api_socket, DataplaneConfig{}.api_socket);
}

}  // namespace
}  // namespace esw::cfg
