// The fast JSON string paths for big texts (control/json_text.h) give what nlohmann::json gives: the client's
// writer, the server's request parse (parse_envelope lifts big string values past nlohmann's lexer) and the
// state store's config payload. No EAL.

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "control/json_text.h"
#include "dataplane/daemon/api_request.h"
#include "dataplane/daemon/state_store.h"

namespace esw {
namespace {

using json = nlohmann::json;

std::string random_text(std::mt19937& rng, size_t n, const std::string& alphabet) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
  return s;
}

std::string ascii_alphabet() {
  std::string a;
  for (int c = 0; c < 0x80; ++c) a += static_cast<char>(c);
  return a + "\"\"\\\\  abcxyz";
}

TEST(JsonText, AsciiStringsAreWrittenAsDumpWritesThem) {
  std::mt19937 rng(7);
  for (int c = 0; c < 0x80; ++c) {
    const std::string text(1, static_cast<char>(c));
    std::string out = "x";
    ASSERT_TRUE(api::append_json_ascii_string(out, text));
    EXPECT_EQ(out, "x" + json(text).dump()) << "byte " << c;
  }
  for (int i = 0; i < 200; ++i) {
    const std::string text = random_text(rng, rng() % 300, ascii_alphabet());
    std::string out;
    ASSERT_TRUE(api::append_json_ascii_string(out, text));
    EXPECT_EQ(out, json(text).dump());
  }
  std::string out = "kept";
  EXPECT_FALSE(api::append_json_ascii_string(out, "caf\xc3\xa9"));
  EXPECT_EQ(out, "kept");
}

TEST(JsonText, SimpleLiteralsAreDecodedAsTheParserDecodesThem) {
  std::mt19937 rng(11);
  std::string printable;
  for (int c = 0x20; c < 0x7f; ++c) printable += static_cast<char>(c);
  for (int i = 0; i < 200; ++i) {
    // Printable text plus the control characters dump() writes with a short escape.
    const std::string text = random_text(rng, rng() % 300, printable + "\n\t\r\b\f\"\\/");
    const std::string literal = json(text).dump();
    std::string out = "x";
    ASSERT_EQ(api::decode_json_simple_string(literal + ",\"next\"", out), literal.size()) << literal;
    EXPECT_EQ(out, "x" + text);
  }
  // What the parser must read itself: \u escapes, raw control or non-ASCII bytes, bad escapes, no closing quote.
  for (const char* literal : {R"("a\u0041")", "\"a\x01\"", "\"caf\xc3\xa9\"", R"("a\x")", "\"abc", "abc\"",
                                    "\"a\x7f\""}) {
    std::string out = "kept";
    EXPECT_EQ(api::decode_json_simple_string(literal, out), 0u) << literal;
    EXPECT_EQ(out, "kept");
  }
}

// parse_envelope's tree equals nlohmann's parse of the same line, big strings lifted or not.
void expect_same_parse(const std::string& line, size_t lifted = 0) {
  size_t got_lifted = 0;
  try {
    EXPECT_EQ(dp::parse_request_json(line, &got_lifted), json::parse(line));
  } catch (const json::exception&) {
  }
  EXPECT_EQ(got_lifted, lifted);
  json want;
  std::string want_error;
  try {
    want = json::parse(line);
  } catch (const json::exception& e) {
    want_error = e.what();
  }
  dp::ApiEnvelope env;
  try {
    dp::parse_envelope(line, env);
  } catch (const dp::ApiError& e) {
    if (!want_error.empty()) {
      EXPECT_EQ(e.code, "parse_error");
      EXPECT_NE(e.message.find(want_error.substr(0, 120)), std::string::npos) << e.message << "\n" << want_error;
      return;
    }
    FAIL() << e.code << ": " << e.message;
  }
  ASSERT_TRUE(want_error.empty()) << "parse_envelope accepted what the parser refuses: " << want_error;
  EXPECT_EQ(env.method, want["method"]);
  EXPECT_EQ(env.id, want["id"]);
  EXPECT_EQ(env.params, want.value("params", json::object()));
}

// A big string other than params.yaml, lifted or not, is still refused by its bound.
void expect_too_large(const std::string& line, const std::string& where) {
  dp::ApiEnvelope env;
  try {
    dp::parse_envelope(line, env);
    FAIL() << "accepted";
  } catch (const dp::ApiError& e) {
    EXPECT_EQ(e.code, "too_large");
    EXPECT_NE(e.message.find(where), std::string::npos) << e.message;
  }
}

TEST(JsonText, BigRequestStringsParseAsTheParserParsesThem) {
  std::mt19937 rng(3);
  const std::string yaml_chars = "abc xyz:-,=.\"\\\n\t/0123456789";
  const std::string big = random_text(rng, 200000, yaml_chars);
  const std::string head = R"({"api":1,"id":7,"method":"apply","params":{)";
  // Lifted: one big value, two big values, escapes of every simple kind.
  expect_same_parse(head + R"("dry_run":true,"yaml":)" + json(big).dump() + "}}", 1);
  expect_too_large(head + R"("source":)" + json(big.substr(0, 70000)).dump() + R"(,"yaml":)" + json(big).dump() +
                   "}}", "params.\"source\"");
  // Not lifted: a \u escape, non-ASCII text, a big key; a big string in an array is (it is a value).
  expect_same_parse(head + R"("yaml":)" + json(big + "\x01").dump() + "}}");
  expect_same_parse(head + R"("yaml":)" + json(big + "caf\xc3\xa9").dump() + "}}");
  expect_too_large(head + json(big).dump() + R"(:1,"yaml":"x"}})", "params.<a key>");
  expect_too_large(head + R"("yaml":"x","list":[)" + json(big).dump() + "]}}", "params.\"list\"[0]");
  expect_too_large(R"({"api":1,"method":"apply","id":[)" + json(big).dump() + R"(],"params":{"yaml":"x"}})", "\"id\"");
  EXPECT_EQ(dp::parse_request_json(head + R"("yaml":"x","list":[)" + json(big).dump() + "," + json(big).dump() + "]}}"),
            json::parse(head + R"("yaml":"x","list":[)" + json(big).dump() + "," + json(big).dump() + "]}}"));
  // A user string that looks like a marker stays what it is.
  expect_same_parse(head + R"("yaml":)" + json(big).dump() + R"(,"source":"\u0000esw-lifted-0-0"}})", 1);
  // Errors after a big string: the parser's own message, positions included.
  expect_same_parse(head + R"("yaml":)" + json(big).dump() + "}");
  expect_same_parse(head + R"("yaml":)" + json(big).dump() + R"(,"x":tru}})");
  expect_same_parse(head + R"("yaml":)" + json(big).dump() + R"(,"x":"bad\q"}})");
  // Invalid UTF-8 inside a big string is the parser's to refuse.
  expect_same_parse(head + R"("yaml":")" + big.substr(0, 0) + std::string(70000, 'a') + "\xff\"}}");
}

TEST(JsonText, StateStoreConfigPayloadIsDumpsText) {
  const std::string dir = "/tmp/esw-json-text-test-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  for (const std::string& yaml : {std::string("tables: []\nx: \"q\\\\\"\n\t\x01 end\n"), std::string("caf\xc3\xa9: 1\n")}) {
    {
      dp::StateStore store(dir, false);
      std::string error;
      ASSERT_TRUE(store.save_config({yaml, "my \"file\".yaml", 42}, error)) << error;
    }
    std::string text;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().filename().string().starts_with("config.")) {
        std::ifstream in(e.path());
        text.assign(std::istreambuf_iterator<char>(in), {});
      }
    }
    const std::string want = json{{"yaml", yaml}, {"source", "my \"file\".yaml"}, {"generation", 42}}.dump();
    ASSERT_GE(text.size(), want.size());
    EXPECT_EQ(text.substr(text.size() - want.size()), want);
    dp::StateStore store(dir, false);
    std::vector<std::string> notes;
    const auto loaded = store.load_config(notes);
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(loaded->yaml, yaml);
    EXPECT_EQ(loaded->generation, 42u);
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace esw
