#include "config/yaml_doc.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <yaml-cpp/exceptions.h>

#include <cstdint>
#include <sstream>
#include <string_view>
#include <unordered_map>

namespace esw::cfg::detail {

namespace {
const std::string kEmpty;

// ---- The fast path for big lists of one-line strings (the compact rule form: 100k rules = 100k lines) ----
// yaml-cpp's scanner reads ~15 MB/s, most of it char by char in its scalar scanner: 0.9 s for the 13 MB of a
// 100k-rule config. A line `<indent>- "<text>"` whose text holds no escape, quote, control or non-ASCII
// character is read here instead, when it is one of a run of at least kMinRun such lines with one indentation:
// yaml-cpp parses the run's first line (so whatever holds it - a block sequence - is its to judge) and sees the
// others as empty lines (so every later line and column stays where it was); the builder then adds their items
// after the first one, with the marks yaml-cpp would have given them. A run whose first item yaml-cpp does not
// report as such (inside a block scalar, another document, a flow collection...) makes the whole text be parsed
// again without the fast path. Texts with '\r' or non-ASCII bytes (where yaml-cpp's marks count differently)
// never take it.
constexpr size_t kMinRun = 32;

struct RunItem {
  uint32_t quote;  // offset of the opening quote in the original text (the item's mark)
  uint32_t text;   // offset of its first character
  uint32_t size;
};

struct Run {
  int line = 0;            // of its first item (yaml-cpp's 0-based line)
  int column = 0;          // of the first item's quote
  size_t reduced_end = 0;  // in the reduced text: just past the run's emptied lines
  size_t removed = 0;      // bytes removed up to the end of this run (this one's and every earlier run's)
  RunItem first;              // yaml-cpp reads this one
  std::vector<RunItem> rest;  // every other item
};

// A line "<spaces>- \"<text>\"<spaces>" with a plain text: its indentation and text, or false.
bool simple_item(std::string_view line, size_t& indent, size_t& text, size_t& size) {
  size_t i = 0;
  while (i < line.size() && line[i] == ' ') ++i;
  if (line.size() < i + 4 || line[i] != '-' || line[i + 1] != ' ' || line[i + 2] != '"') return false;
  indent = i;
  text = i + 3;
  size_t j = text;
  while (j < line.size()) {
    const unsigned char c = static_cast<unsigned char>(line[j]);
    if (c == '"') break;
    if (c < 0x20 || c >= 0x7f || c == '\\') return false;
    ++j;
  }
  if (j == line.size()) return false;  // no closing quote on this line
  size = j - text;
  for (size_t k = j + 1; k < line.size(); ++k) {
    if (line[k] != ' ') return false;
  }
  return true;
}

// The runs in `yaml` and the text yaml-cpp reads instead (the runs' later lines emptied), or no runs.
std::vector<Run> find_runs(const std::string& yaml, std::string& reduced) {
  std::vector<Run> runs;
  if (yaml.size() >= UINT32_MAX || yaml.find('\r') != std::string::npos) return runs;
  for (unsigned char c : yaml) {
    if (c >= 0x80) return runs;
  }
  struct Line {
    size_t begin, end;  // without the '\n'
    size_t indent, text, size;
    bool item;
  };
  // Pass 1: the runs, as ranges of lines.
  std::vector<std::pair<size_t, size_t>> ranges;  // [first line, last line] (0-based)
  std::vector<Line> lines;
  size_t at = 0;
  while (at <= yaml.size()) {
    size_t end = yaml.find('\n', at);
    if (end == std::string::npos) end = yaml.size();
    Line l{at, end, 0, 0, 0, false};
    l.item = simple_item(std::string_view(yaml).substr(at, end - at), l.indent, l.text, l.size);
    lines.push_back(l);
    if (end == yaml.size()) break;
    at = end + 1;
  }
  for (size_t i = 0; i < lines.size();) {
    size_t j = i;
    while (j < lines.size() && lines[j].item && lines[j].indent == lines[i].indent) ++j;
    if (j - i >= kMinRun) ranges.emplace_back(i, j - 1);
    i = j > i ? j : i + 1;
  }
  if (ranges.empty()) return runs;
  // Pass 2: the reduced text.
  reduced.clear();
  reduced.reserve(yaml.size() / 2);
  size_t copied = 0, removed = 0;
  for (const auto& [first, last] : ranges) {
    Run run;
    run.line = static_cast<int>(first);
    run.column = static_cast<int>(lines[first].indent + 2);
    run.first = {static_cast<uint32_t>(lines[first].begin + lines[first].indent + 2),
                 static_cast<uint32_t>(lines[first].begin + lines[first].text), static_cast<uint32_t>(lines[first].size)};
    run.rest.reserve(last - first);
    reduced.append(yaml, copied, lines[first].end + 1 - copied);  // up to the first item's line break
    for (size_t k = first + 1; k <= last; ++k) {
      const Line& l = lines[k];
      run.rest.push_back({static_cast<uint32_t>(l.begin + l.indent + 2), static_cast<uint32_t>(l.begin + l.text),
                          static_cast<uint32_t>(l.size)});
      removed += l.end - l.begin;
      reduced.push_back('\n');
    }
    copied = lines[last].end + 1;
    run.reduced_end = reduced.size();
    run.removed = removed;
    runs.push_back(std::move(run));
  }
  if (copied < yaml.size()) reduced.append(yaml, copied, std::string::npos);
  return runs;
}

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
  // runs/original: the fast path's runs (find_runs) in `original`, parsed by yaml-cpp as the reduced text.
  DocBuilder(Doc& doc, const std::vector<Run>& runs, const std::string& original)
      : doc_(doc), runs_(runs), original_(original) {
    doc_.tags_ = {"", "?", "!"};
  }

  // Every run was found where it was expected (else the text must be parsed again without them).
  bool runs_taken() const { return next_run_ == runs_.size() && !run_missed_; }

  static Doc parse(const std::string& text, const std::vector<Run>& runs, const std::string& original,
                   bool& runs_taken);

  void OnDocumentStart(const YAML::Mark& mark) override {
    doc_.starts_.push_back(original_mark(mark));
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
    if (next_run_ < runs_.size() && mark.line >= runs_[next_run_].line) take_run(mark, tag, anchor, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    if (!building_) return;
    open(add(YAML::NodeType::Sequence, mark, tag, anchor));
    block_seq_[depth_ - 1] = style == YAML::EmitterStyle::Block;
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
  // The run's first item, as yaml-cpp reported it: its other items follow, as yaml-cpp would have reported them.
  void take_run(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, const std::string& value) {
    const Run& run = runs_[next_run_];
    ++next_run_;
    const bool first_item = mark.line == run.line && mark.column == run.column &&
                            original_mark(mark).pos == static_cast<int>(run.first.quote) && tag == "!" &&
                            anchor == YAML::NullAnchor && depth_ > 0 && block_seq_[depth_ - 1] &&
                            std::string_view(value) == std::string_view(original_).substr(run.first.text, run.first.size);
    if (!first_item) {
      run_missed_ = true;
      next_run_ = runs_.size();  // the caller parses it all again
      return;
    }
    const uint32_t tag_id = tag_index(tag);
    std::vector<uint32_t>& kids = pending_[depth_ - 1];
    kids.reserve(kids.size() + run.rest.size());
    doc_.nodes_.reserve(doc_.nodes_.size() + run.rest.size());
    int line = run.line;
    for (const RunItem& item : run.rest) {
      const uint32_t id = static_cast<uint32_t>(doc_.nodes_.size());
      Doc::Data& d = doc_.nodes_.emplace_back();
      d.type = YAML::NodeType::Scalar;
      d.tag = tag_id;
      d.mark.pos = static_cast<int>(item.quote);
      d.mark.line = ++line;
      d.mark.column = run.column;
      d.scalar.assign(original_, item.text, item.size);
      kids.push_back(id);
    }
  }

  // A mark in the reduced text -> the same place in the original (only `pos` differs: lines were emptied).
  YAML::Mark original_mark(YAML::Mark mark) const {
    if (runs_.empty() || mark.is_null()) return mark;
    size_t removed = 0;
    for (const Run& r : runs_) {  // few runs (one per big list)
      if (static_cast<size_t>(mark.pos) < r.reduced_end) break;
      removed = r.removed;
    }
    mark.pos += static_cast<int>(removed);
    return mark;
  }

  uint32_t add(YAML::NodeType::value type, const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor) {
    const uint32_t id = static_cast<uint32_t>(doc_.nodes_.size());
    Doc::Data& d = doc_.nodes_.emplace_back();
    d.type = type;
    d.mark = original_mark(mark);
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
    if (block_seq_.size() <= depth_) block_seq_.push_back(false);
    block_seq_[depth_] = false;
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
  const std::vector<Run>& runs_;
  const std::string& original_;
  size_t next_run_ = 0;
  bool run_missed_ = false;
  std::vector<bool> block_seq_;  // per open container: a block sequence
  bool building_ = false;
  size_t depth_ = 0;
  std::vector<uint32_t> open_;
  std::vector<std::vector<uint32_t>> pending_;  // per open container (reused across containers of one depth)
  std::unordered_map<YAML::anchor_t, uint32_t> anchors_;
  std::unordered_map<std::string, uint32_t> tag_ids_;
};

// One pass of yaml-cpp's event parser over `text` (the original, or the reduced text of `runs`).
Doc DocBuilder::parse(const std::string& text, const std::vector<Run>& runs, const std::string& original,
                      bool& runs_taken) {
  Doc doc;
  std::istringstream stream(text);
  YAML::Parser parser(stream);
  DocBuilder builder(doc, runs, original);
  while (parser.HandleNextDocument(builder)) {
    const auto& s = doc.starts_;
    if (s.size() >= 2 && s.back().pos == s[s.size() - 2].pos) {
      doc.stuck_ = true;
      break;
    }
  }
  runs_taken = builder.runs_taken();
  return doc;
}

Doc Doc::parse(const std::string& yaml) { return parse(yaml, true); }

Doc Doc::parse(const std::string& yaml, bool fast_lists) {
  std::string reduced;
  const std::vector<Run> runs = fast_lists ? find_runs(yaml, reduced) : std::vector<Run>();
  bool taken = true;
  if (!runs.empty()) {
    try {
      Doc doc = DocBuilder::parse(reduced, runs, yaml, taken);
      if (taken) return doc;
    } catch (const YAML::Exception&) {
      // Reported from the original text below, where yaml-cpp's own marks are the error's.
    }
  }
  return DocBuilder::parse(yaml, {}, yaml, taken);
}

}  // namespace esw::cfg::detail
