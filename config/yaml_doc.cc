#include "config/yaml_doc.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <sstream>
#include <unordered_map>

namespace esw::cfg::detail {

namespace {
const std::string kEmpty;
}  // namespace

YAML::NodeType::value Node::Type() const { return doc_ ? doc_->nodes_[id_].type : YAML::NodeType::Null; }

const std::string& Node::Scalar() const {
  return doc_ && doc_->nodes_[id_].type == YAML::NodeType::Scalar ? doc_->nodes_[id_].scalar : kEmpty;
}

const std::string& Node::Tag() const { return doc_ ? doc_->tags_[doc_->nodes_[id_].tag] : kEmpty; }

YAML::Mark Node::Mark() const { return doc_ ? doc_->nodes_[id_].mark : YAML::Mark::null_mark(); }

size_t Node::size() const {
  if (!doc_) return 0;
  const Doc::Data& d = doc_->nodes_[id_];
  return d.type == YAML::NodeType::Map || d.type == YAML::NodeType::Sequence ? d.count : 0;
}

bool Node::has(std::string_view key) const {
  if (!IsMap()) return false;
  for (auto it = begin(); it != end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == key) return true;
  }
  return false;
}

Node::iterator Node::begin() const {
  if (!doc_ || size() == 0) return {doc_, nullptr, false};
  const Doc::Data& d = doc_->nodes_[id_];
  return {doc_, doc_->kids_.data() + d.first, d.type == YAML::NodeType::Map};
}

Node::iterator Node::end() const {
  if (!doc_ || size() == 0) return {doc_, nullptr, false};
  const Doc::Data& d = doc_->nodes_[id_];
  const bool pairs = d.type == YAML::NodeType::Map;
  return {doc_, doc_->kids_.data() + d.first + (pairs ? 2 * d.count : d.count), pairs};
}

NodeItem Node::iterator::operator*() const {
  NodeItem item;
  if (pairs_) {
    item.first = Node(doc_, at_[0]);
    item.second = Node(doc_, at_[1]);
  } else {
    static_cast<Node&>(item) = Node(doc_, at_[0]);
  }
  return item;
}

// Appends the first document's nodes to a Doc as the parser reports them; later documents are only counted.
class DocBuilder : public YAML::EventHandler {
 public:
  explicit DocBuilder(Doc& doc) : doc_(doc) { doc_.tags_ = {"", "?", "!"}; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    doc_.starts_.push_back(mark);
    building_ = doc_.starts_.size() == 1;
  }
  void OnDocumentEnd() override { building_ = false; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (!building_) return;
    finish(add(YAML::NodeType::Null, mark, "", anchor));
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t anchor) override {
    if (!building_) return;
    auto it = anchors_.find(anchor);
    // yaml-cpp's parser refuses an unknown alias before it gets here; a null stands in all the same.
    finish(it != anchors_.end() ? it->second : add(YAML::NodeType::Null, YAML::Mark::null_mark(), "", 0));
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!building_) return;
    const uint32_t id = add(YAML::NodeType::Scalar, mark, tag, anchor);
    doc_.nodes_[id].scalar = value;
    finish(id);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    if (building_) open(add(YAML::NodeType::Sequence, mark, tag, anchor));
  }
  void OnSequenceEnd() override {
    if (building_) close();
  }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    if (building_) open(add(YAML::NodeType::Map, mark, tag, anchor));
  }
  void OnMapEnd() override {
    if (building_) close();
  }

 private:
  uint32_t add(YAML::NodeType::value type, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor) {
    const uint32_t id = static_cast<uint32_t>(doc_.nodes_.size());
    Doc::Data& d = doc_.nodes_.emplace_back();
    d.type = type;
    d.mark = mark;
    d.tag = tag_index(type == YAML::NodeType::Null ? std::string() : tag);
    if (anchor != YAML::NullAnchor) anchors_[anchor] = id;
    return id;
  }

  uint32_t tag_index(const std::string& tag) {
    for (uint32_t i = 0; i < 3; ++i) {
      if (doc_.tags_[i] == tag) return i;
    }
    auto [it, inserted] = tag_ids_.emplace(tag, static_cast<uint32_t>(doc_.tags_.size()));
    if (inserted) doc_.tags_.push_back(tag);
    return it->second;
  }

  // A complete node: the root, or the next child of the open container.
  void finish(uint32_t id) {
    if (depth_ == 0) {
      doc_.root_ = id;
      doc_.has_root_ = true;
    } else {
      pending_[depth_ - 1].push_back(id);
    }
  }

  void open(uint32_t id) {
    if (pending_.size() <= depth_) pending_.emplace_back();
    pending_[depth_].clear();
    open_.push_back(id);
    ++depth_;
  }

  void close() {
    --depth_;
    const uint32_t id = open_.back();
    open_.pop_back();
    std::vector<uint32_t>& kids = pending_[depth_];
    Doc::Data& d = doc_.nodes_[id];
    d.first = static_cast<uint32_t>(doc_.kids_.size());
    d.count = static_cast<uint32_t>(d.type == YAML::NodeType::Map ? kids.size() / 2 : kids.size());
    doc_.kids_.insert(doc_.kids_.end(), kids.begin(), kids.end());
    finish(id);
  }

  Doc& doc_;
  bool building_ = false;
  size_t depth_ = 0;
  std::vector<uint32_t> open_;
  std::vector<std::vector<uint32_t>> pending_;  // per open container (reused across containers of one depth)
  std::unordered_map<YAML::anchor_t, uint32_t> anchors_;
  std::unordered_map<std::string, uint32_t> tag_ids_;
};

Doc Doc::parse(const std::string& yaml) {
  Doc doc;
  std::istringstream stream(yaml);
  YAML::Parser parser(stream);
  DocBuilder builder(doc);
  while (parser.HandleNextDocument(builder)) {
    const auto& s = doc.starts_;
    if (s.size() >= 2 && s.back().pos == s[s.size() - 2].pos) {
      doc.stuck_ = true;
      break;
    }
  }
  return doc;
}

}  // namespace esw::cfg::detail
