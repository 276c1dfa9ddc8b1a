// qwen.tiktoken tests: the real file against HF's ids and the release's special cases, the
// converted tokenizer.json, tiktoken's merge rule on a toy vocabulary, folders holding either
// format, and malformed files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "testdata.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/tiktoken_file.h"
#include "tokenizer/tokenizer_files.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/remove_tree.h"
#include "test_util.h"

using c3::test::ids_str;

namespace fs = std::filesystem;
using c3::tokenizer::BpeTokenizer;

namespace {

// A fresh folder per process (ctest -j runs tests at once).
fs::path fresh_dir(const std::string& name) {
  fs::path d =
      c3::test::binary_dir() / "test_out" / "tiktoken" / (name + "-" + std::to_string(::getpid()));
  c3::remove_tree(d);
  fs::create_directories(d);
  return d;
}

std::vector<nlohmann::json> read_jsonl(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw std::runtime_error("missing golden data " + p.string());
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string base64(const std::string& bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 2]));
    out += a[v >> 18];
    out += a[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? a[v & 63] : '=';
  }
  return out;
}

// A toy tiktoken file: the 256 bytes (rank = byte value), then `extra` tokens.
std::string toy_tiktoken(const std::vector<std::string>& extra) {
  std::string out;
  for (int b = 0; b < 256; ++b)
    out += base64(std::string(1, char(b))) + " " + std::to_string(b) + "\n";
  for (size_t i = 0; i < extra.size(); ++i)
    out += base64(extra[i]) + " " + std::to_string(256 + i) + "\n";
  return out;
}

const char* kQwenConfig =
    R"({"model_max_length": 8192, "tokenizer_class": "QWenTokenizer", "auto_map": )"
    R"({"AutoTokenizer": ["tokenization_qwen.QWenTokenizer", null]}})";

}  // namespace

// One test for everything that needs the 151,643-rank file, so that it is read once per run.
TEST(Tiktoken, QwenFileMatchesHfIdsSpecialCasesAndItsConversion) {
  const fs::path dir = fresh_dir("qwen");
  const fs::path tar = c3::test::testdata("tokenizer/qwen-vl-tiktoken.tar.xz");
  ASSERT_TRUE(fs::exists(tar)) << "missing golden data " << tar;
  const std::string cmd = fmt::format("tar -xJf '{}' -C '{}'", tar.string(), dir.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  // The release's folder: qwen.tiktoken + tokenizer_config.json, no tokenizer.json.
  const BpeTokenizer tok = c3::tokenizer::load_tokenizer(dir.string());
  EXPECT_EQ(tok.origin(), (dir / "qwen.tiktoken").string());
  EXPECT_EQ(tok.vocab_size(), 151860);  // 151,643 ranks + 217 special tokens
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.token_id("<|extra_204|>"), 151850);
  EXPECT_EQ(tok.token_id("<img>"), 151857);
  EXPECT_EQ(tok.token_id("</img>"), 151858);
  EXPECT_EQ(tok.token_id("<imgpad>"), 151859);
  EXPECT_EQ(tok.token_id("Ġthe"), 279);
  EXPECT_TRUE(tok.is_special(151859));
  EXPECT_FALSE(tok.is_special(279));
  EXPECT_EQ(tok.file_hash(), c3::hash_hex(c3::read_file(dir / "qwen.tiktoken")));

  // HF's ids for the Qwen tokenizer, except the case with <think> (a newer vocabulary's token).
  auto cases = read_jsonl(c3::test::testdata("tokenizer/qwen_cases.jsonl"));
  ASSERT_EQ(cases.size(), 240u);
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> want;
  for (const auto& c : cases) {
    if (c.at("text").get<std::string>().find("<think>") != std::string::npos) continue;
    texts.push_back(c.at("text"));
    want.push_back(c.at("ids").get<std::vector<int32_t>>());
    EXPECT_EQ(tok.decode(want.back()), c.at("decoded").get<std::string>());
  }
  ASSERT_EQ(texts.size(), 239u);
  for (const auto& c : read_jsonl(dir / "special_cases.jsonl")) {
    texts.push_back(c.at("text"));
    want.push_back(c.at("ids").get<std::vector<int32_t>>());
  }
  int bad = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = tok.encode(texts[i]);
    if (ids != want[i]) {
      ++bad;
      ADD_FAILURE() << "case " << i << " " << nlohmann::json(texts[i]).dump() << "\n  got  "
                    << ids_str(ids) << "\n  want " << ids_str(want[i]);
    }
  }
  std::printf("qwen.tiktoken: %zu cases, %d id mismatches\n", texts.size(), bad);

  // The converted tokenizer.json gives the same ids, on the cases and on random strings.
  const std::string json =
      c3::tokenizer::tiktoken_to_hf_json(c3::tokenizer::read_tiktoken(tok.origin()));
  const BpeTokenizer conv = BpeTokenizer::from_json(json, "converted tokenizer.json");
  EXPECT_EQ(conv.vocab_size(), tok.vocab_size());
  for (size_t i = 0; i < texts.size(); ++i)
    EXPECT_EQ(ids_str(conv.encode(texts[i])), ids_str(want[i])) << nlohmann::json(texts[i]).dump();
  const std::vector<std::string> atoms = {
      "a",          "b",           "aa", "ab", "the",    " ",       "  ",     "\n",         "\t",
      "'s",         "'LL",         "1",  "23", "é",      "e\u0301", "日本",   "\U0001F600", "<img>",
      "<|im_end|>", "<|extra_7|>", ".",  "--", "\u00a0", "ﬁ",       ">\u0338"};
  std::mt19937 rng(5);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    for (int k = 0, n = 1 + rng() % 12; k < n; ++k) s += atoms[rng() % atoms.size()];
    ASSERT_EQ(ids_str(conv.encode(s)), ids_str(tok.encode(s))) << nlohmann::json(s).dump();
    ASSERT_EQ(tok.decode(tok.encode(s)), conv.decode(conv.encode(s)));
  }
  c3::remove_tree(dir);
}

// tiktoken merges whatever adjacent pair concatenates to the lowest rank, not only the pair a
// trainer merged: in "abcx", "abc" (rank 258) is reached from [a, bc] after "bc" (rank 256)
// beats "ab".
// A pre-token that is a whole token is that token even when no merge leads to it ("xyz").
TEST(Tiktoken, MergeRuleWholeWordsAndSpecialTokens) {
  const fs::path dir = fresh_dir("toy");
  c3::write_file_atomic(dir / "qwen.tiktoken", toy_tiktoken({"bc", "ab", "abc", "xyz"}));
  c3::write_file_atomic(dir / "tokenizer_config.json", kQwenConfig);
  const BpeTokenizer tok = BpeTokenizer::from_tiktoken((dir / "qwen.tiktoken").string());
  EXPECT_EQ(ids_str(tok.encode("abcx")), ids_str({258, 'x'}));  // [a,b,c,x] -> [a,bc,x] -> [abc,x]
  EXPECT_EQ(ids_str(tok.encode("abc")), ids_str({258}));
  EXPECT_EQ(ids_str(tok.encode("ab")), ids_str({257}));
  EXPECT_EQ(ids_str(tok.encode("xyz")), ids_str({259}));
  EXPECT_EQ(ids_str(tok.encode("xyzz")), ids_str({'x', 'y', 'z', 'z'}));
  // Special tokens start right after the last rank, in QWenTokenizer's order.
  EXPECT_EQ(tok.vocab_size(), 260 + 217);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 260);
  EXPECT_EQ(tok.token_id("<img>"), 260 + 214);
  EXPECT_EQ(ids_str(tok.encode("x<img>y<|extra_0|>")), ids_str({'x', 474, 'y', 263}));
  // QWenTokenizer applies NFC to the whole text before it looks for special tokens: '>' and a
  // combining long solidus compose to U+226F, and "<img>" is no longer there.
  const auto ids = tok.encode("<img>\u0338");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 474), 0) << ids_str(ids);
  EXPECT_EQ(tok.decode(ids), "<img\u226F");
  // The converted tokenizer.json agrees.
  const std::string json = c3::tokenizer::tiktoken_to_hf_json(
      c3::tokenizer::read_tiktoken((dir / "qwen.tiktoken").string()));
  const BpeTokenizer conv = BpeTokenizer::from_json(json, "conv.json");
  for (const char* s :
       {"abcx", "abc", "ab", "xyz", "xyzz", "x<img>y<|extra_0|>", "<img>\u0338", "bcabc"})
    EXPECT_EQ(ids_str(conv.encode(s)), ids_str(tok.encode(s))) << s;
  auto j = nlohmann::json::parse(json);
  EXPECT_TRUE(j["model"]["ignore_merges"].get<bool>());
  // Merges by rank: "bc"'s, "ab"'s, then "abc"'s two splits ordered by their left halves.
  EXPECT_EQ(j["model"]["merges"].dump(), R"([["b","c"],["a","b"],["a","bc"],["ab","c"]])");
  c3::remove_tree(dir);
}

// Malformed files are refused with the file and the line named.
TEST(Tiktoken, MalformedFilesNameTheLine) {
  auto error = [](const std::string& text) -> std::string {
    try {
      c3::tokenizer::parse_tiktoken(text, "t.tiktoken");
    } catch (const c3::Error& e) {
      return e.what();
    }
    return "";
  };
  const std::string ok = toy_tiktoken({"ab"});
  EXPECT_EQ(error(ok), "");
  EXPECT_EQ(error(ok + "\n\n"), "");  // blank lines are skipped, as tiktoken does
  auto expect = [&](const std::string& text, const std::vector<std::string>& needles) {
    const std::string e = error(text);
    ASSERT_FALSE(e.empty()) << "accepted: " << needles[0];
    for (const auto& n : needles) EXPECT_NE(e.find(n), std::string::npos) << e;
  };
  expect(ok + "YWJj! 257\n", {"t.tiktoken: line 258", "not valid base64"});
  expect(ok + "YWJ 257\n", {"line 258", "base64"});
  expect(ok + "YWJj\n", {"line 258", "BASE64 RANK"});
  expect(ok + "YWJj 256\n", {"line 258", "rank 256 repeats"});
  expect(ok + "YWJj 259\n", {"line 258", "gap", "expected rank 257"});
  expect(ok + "YWJj -1\n", {"line 258", "not an integer"});
  expect(ok + "YWJj 257 x\n", {"line 258", "BASE64 RANK"});
  expect(ok + base64("ab") + " 257\n", {"line 258", "repeats line 257"});
  expect("", {"t.tiktoken", "no tokens"});
  // Every single byte must be a token.
  std::string no_a = toy_tiktoken({});
  no_a.replace(no_a.find(base64("a") + " 97"), base64("a").size(), base64("zz"));
  expect(no_a, {"t.tiktoken", "0x61"});
  // A tokenizer_config.json beside it naming another class.
  const fs::path dir = fresh_dir("bad_config");
  c3::write_file_atomic(dir / "qwen.tiktoken", ok);
  c3::write_file_atomic(dir / "tokenizer_config.json", R"({"tokenizer_class": "LlamaTokenizer"})");
  try {
    BpeTokenizer::from_tiktoken((dir / "qwen.tiktoken").string());
    ADD_FAILURE() << "another tokenizer_class was accepted";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("LlamaTokenizer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer_config.json"), std::string::npos) << e.what();
  }
  c3::remove_tree(dir);
}

// A folder with one format loads it; with both, tokenizer_config.json decides as AutoTokenizer
// would; copying carries the companions and gives the main file its canonical name.
TEST(Tiktoken, FoldersPickAndCopyTheirTokenizerFiles) {
  const fs::path dir = fresh_dir("folders");
  const fs::path both = dir / "both", src = dir / "src", out = dir / "out";
  for (const auto& d : {both, src, out}) fs::create_directories(d);
  const std::string tik = toy_tiktoken({"ab"});
  c3::write_file_atomic(src / "my.tiktoken", tik);
  c3::write_file_atomic(src / "tokenizer_config.json", kQwenConfig);
  c3::write_file_atomic(src / "tokenization_qwen.py", "# code\n");
  auto files = c3::tokenizer::find_tokenizer((src / "my.tiktoken").string());
  EXPECT_TRUE(files.tiktoken());
  EXPECT_EQ(files.files.size(), 3u);
  c3::tokenizer::copy_tokenizer_files(files, out.string());
  EXPECT_EQ(c3::read_file(out / "qwen.tiktoken"), tik);
  EXPECT_TRUE(fs::exists(out / "tokenizer_config.json"));
  EXPECT_TRUE(fs::exists(out / "tokenization_qwen.py"));
  EXPECT_EQ(c3::tokenizer::load_tokenizer(out.string()).token_id("<img>"), 257 + 214);

  // Both formats: QWenTokenizer in the config picks qwen.tiktoken, else tokenizer.json.
  c3::write_file_atomic(both / "qwen.tiktoken", tik);
  c3::write_file_atomic(both / "tokenizer.json", c3::tokenizer::tiktoken_to_hf_json(
                                                     c3::tokenizer::parse_tiktoken(tik, "t")));
  c3::write_file_atomic(both / "tokenizer_config.json", kQwenConfig);
  EXPECT_TRUE(c3::tokenizer::find_tokenizer(both.string()).tiktoken());
  EXPECT_EQ(c3::tokenizer::find_tokenizer(both.string()).files.size(), 3u);
  c3::write_file_atomic(both / "tokenizer_config.json", R"({"tokenizer_class": "Qwen2Tokenizer"})");
  EXPECT_FALSE(c3::tokenizer::find_tokenizer(both.string()).tiktoken());
  fs::remove(both / "tokenizer_config.json");
  EXPECT_FALSE(c3::tokenizer::find_tokenizer(both.string()).tiktoken());

  try {
    c3::tokenizer::find_tokenizer(dir.string());
    ADD_FAILURE() << "a folder without a tokenizer was accepted";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.json and no qwen.tiktoken"),
              std::string::npos)
        << e.what();
  }
  c3::remove_tree(dir);
}

// file_hash() is the hash of the file's bytes: latents made with c3-small's tokenizer.json
// before qwen.tiktoken support keep matching.
TEST(Tiktoken, JsonFileHashIsUnchanged) {
  const fs::path p = c3::test::testdata("c3/c3-tiny/tokenizer.json");
  EXPECT_EQ(c3::tokenizer::load_tokenizer(p.string()).file_hash(), c3::hash_hex(c3::read_file(p)));
  EXPECT_EQ(c3::tokenizer::load_tokenizer(p.parent_path().string()).file_hash(),
            c3::hash_hex(c3::read_file(p)));
}
