#pragma once
// A YAML document as the loader reads it (internal to config/): built in one pass from yaml-cpp's event parser
// (YAML::Parser + EventHandler) into flat arrays, instead of yaml-cpp's node tree (YAML::Load), which costs about
// 100 bytes and several allocations per node and took 10 s for a 100k-rule config in the mapping form.
// `Node` offers the part of YAML::Node's read interface the loader uses, with the same meaning: the same events
// make the same types, tags, scalars and marks (so every error keeps its line and column), duplicate keys are
// kept in order, an alias is the anchored node itself.

#include <yaml-cpp/mark.h>
#include <yaml-cpp/node/type.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace esw::cfg::detail {

class Doc;

// A node of a Doc, or null (default-constructed: no document, or a missing value).
class Node {
 public:
  Node() = default;
  Node(const Doc* doc, uint32_t id) : doc_(doc), id_(id) {}

  YAML::NodeType::value Type() const;
  bool IsNull() const { return Type() == YAML::NodeType::Null; }
  bool IsScalar() const { return Type() == YAML::NodeType::Scalar; }
  bool IsSequence() const { return Type() == YAML::NodeType::Sequence; }
  bool IsMap() const { return Type() == YAML::NodeType::Map; }
  const std::string& Scalar() const;  // "" unless a scalar
  const std::string& Tag() const;     // "?" plain and untagged, "!" quoted; "" for null
  YAML::Mark Mark() const;
  size_t size() const;  // items of a sequence, pairs of a mapping, else 0
  bool has(std::string_view key) const;  // a mapping with a scalar key `key` (YAML::Node's [key].IsDefined())

  class iterator;
  iterator begin() const;
  iterator end() const;

 private:
  const Doc* doc_ = nullptr;
  uint32_t id_ = 0;
};

// A sequence item (`*it`) or a mapping pair (`it->first`, `it->second`), as YAML::const_iterator gives them.
struct NodeItem : Node {
  Node first, second;
};

class Node::iterator {
 public:
  iterator(const Doc* doc, const uint32_t* at, bool pairs) : doc_(doc), at_(at), pairs_(pairs) {}
  NodeItem operator*() const;
  struct Arrow {
    NodeItem item;
    const NodeItem* operator->() const { return &item; }
  };
  Arrow operator->() const { return {**this}; }
  iterator& operator++() {
    at_ += pairs_ ? 2 : 1;
    return *this;
  }
  bool operator==(const iterator& o) const { return at_ == o.at_; }

 private:
  const Doc* doc_;
  const uint32_t* at_;
  bool pairs_;
};

// The first document of a YAML text, and what the parser saw of the others.
class Doc {
 public:
  // Parses `yaml`; throws what YAML::Parser throws (YAML::ParserException, YAML::DeepRecursion). Stops, with
  // stuck() set, where yaml-cpp 0.7 would loop forever (a stray ',' at document level makes it yield an empty
  // document without consuming the token, over and over).
  static Doc parse(const std::string& yaml);
  // fast_lists false: yaml-cpp reads every line (tests compare the two; the fast path is described in
  // yaml_doc.cc: long runs of `- "plain text"` lines are read without yaml-cpp's scanner).
  static Doc parse(const std::string& yaml, bool fast_lists);

  Node root() const { return has_root_ ? Node(this, root_) : Node(); }
  const std::vector<YAML::Mark>& document_starts() const { return starts_; }
  bool stuck() const { return stuck_; }

 private:
  friend class Node;
  friend class DocBuilder;
  struct Data {
    YAML::NodeType::value type = YAML::NodeType::Null;
    uint32_t tag = 0;    // index into tags_
    uint32_t first = 0;  // children: kids_[first, first + count) (mappings: key, value, key, value, ...)
    uint32_t count = 0;
    YAML::Mark mark;
    std::string scalar;
  };
  std::vector<Data> nodes_;
  std::vector<uint32_t> kids_;
  std::vector<std::string> tags_;
  std::vector<YAML::Mark> starts_;
  uint32_t root_ = 0;
  bool has_root_ = false;
  bool stuck_ = false;
};

}  // namespace esw::cfg::detail
