// Tokenizer tests: HF-produced golden ids (Qwen, c3-tiny), UTF-8 handling, streaming, threads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "testdata.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/streaming_decoder.h"
#include "tokenizer/utf8.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"
#include "test_util.h"

using c3::test::ids_str;

namespace fs = std::filesystem;
using c3::tokenizer::BpeTokenizer;
using c3::tokenizer::StreamingDecoder;

namespace {

// The real Qwen tokenizer.json, extracted once per run from the golden tar.xz into the build dir.
const BpeTokenizer& qwen() {
  static std::unique_ptr<BpeTokenizer> tok = [] {
    fs::path tar = c3::test::testdata("tokenizer/qwen-tokenizer.tar.xz");
    if (!fs::exists(tar)) throw std::runtime_error("missing golden data " + tar.string());
    // One folder per process: ctest -j runs several of these tests at once, and one must never
    // read a tokenizer.json that another is still extracting.
    fs::path dir = c3::test::binary_dir() / "testdata_tokenizer" / ("qwen-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::string cmd = fmt::format("tar -xJf '{}' -C '{}'", tar.string(), dir.string());
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    auto path = (dir / "tokenizer.json").string();
    auto loaded = std::make_unique<BpeTokenizer>(BpeTokenizer::from_file(path));
    c3::remove_tree(dir);
    return loaded;
  }();
  return *tok;
}

struct QwenCase {
  std::string text, decoded;
  std::vector<int32_t> ids;
};

std::vector<QwenCase> qwen_cases() {
  fs::path p = c3::test::testdata("tokenizer/qwen_cases.jsonl");
  std::ifstream in(p);
  if (!in) throw std::runtime_error("missing golden data " + p.string());
  std::vector<QwenCase> cases;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    cases.push_back({j.at("text"), j.at("decoded"), j.at("ids").get<std::vector<int32_t>>()});
  }
  return cases;
}

// Reads an I64 tensor from a safetensors file: 8-byte little-endian header size, JSON, data.
std::vector<int32_t> read_i64_tensor(const fs::path& path, const std::string& name) {
  std::string bytes = c3::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[i]);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  const auto& t = header.at(name);
  EXPECT_EQ(t.at("dtype"), "I64");
  size_t b = t.at("data_offsets")[0], e = t.at("data_offsets")[1];
  std::vector<int32_t> out;
  for (size_t off = 8 + n + b; off < 8 + n + e; off += 8) {
    int64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | uint8_t(bytes[off + i]);
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

}  // namespace

// ---- golden data from HF tokenizers --------------------------------------------------------

TEST(Tokenizer, QwenCasesMatchHf) {
  const BpeTokenizer& tok = qwen();
  auto cases = qwen_cases();
  ASSERT_EQ(cases.size(), 240u);
  int bad_ids = 0, bad_text = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    auto ids = tok.encode(c.text);
    if (ids != c.ids) {
      ++bad_ids;
      ADD_FAILURE() << "case " << i << " " << nlohmann::json(c.text).dump() << "\n  got  "
                    << ids_str(ids) << "\n  want " << ids_str(c.ids);
    }
    if (tok.decode(c.ids) != c.decoded) {
      ++bad_text;
      ADD_FAILURE() << "case " << i << " decodes to " << nlohmann::json(tok.decode(c.ids)).dump();
    }
  }
  std::printf("qwen cases: %zu, id mismatches %d, decode mismatches %d\n", cases.size(), bad_ids,
              bad_text);
}

TEST(Tokenizer, QwenVocabulary) {
  const BpeTokenizer& tok = qwen();
  EXPECT_EQ(tok.vocab_size(), 151669);  // 151,643 BPE tokens + 26 added
  EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_id("Ġthe"), 279);
  EXPECT_EQ(tok.token_id("no such token"), -1);
  EXPECT_TRUE(tok.is_special(151643));
  EXPECT_FALSE(tok.is_special(151667));  // <think> is added but not special
  EXPECT_FALSE(tok.is_special(279));
  EXPECT_EQ(tok.id_to_token(279), "Ġthe");
  EXPECT_EQ(tok.file_hash().size(), 32u);
}

TEST(Tokenizer, C3TinyCaseMatchesExpectedIds) {
  fs::path dir = c3::test::testdata("c3/c3-tiny");
  auto tok = BpeTokenizer::from_file((dir / "tokenizer.json").string());
  auto c = nlohmann::json::parse(c3::read_file(dir / "case.json"));
  EXPECT_EQ(tok.vocab_size(), 1506);
  for (auto& [k, v] : c.at("special_token_ids").items()) EXPECT_EQ(tok.token_id(k), v) << k;
  auto context_ids = read_i64_tensor(dir / "expected.safetensors", "context_ids");
  auto prompt_ids = read_i64_tensor(dir / "expected.safetensors", "prompt_ids");
  EXPECT_EQ(ids_str(tok.encode(c.at("encoder_input").get<std::string>())), ids_str(context_ids));
  EXPECT_EQ(ids_str(tok.encode(c.at("full_prompt").get<std::string>())), ids_str(prompt_ids));
  EXPECT_EQ(tok.decode(prompt_ids), c.at("full_prompt").get<std::string>());
}

// ---- decoding ------------------------------------------------------------------------------

TEST(Tokenizer, DecodeSkipsSpecialTokensOnRequest) {
  const BpeTokenizer& tok = qwen();
  auto ids = tok.encode("<|im_start|>user\nhi<think>x</think><|im_end|>");
  EXPECT_EQ(tok.decode(ids), "<|im_start|>user\nhi<think>x</think><|im_end|>");
  EXPECT_EQ(tok.decode(ids, true), "user\nhi<think>x</think>");
  // Unknown ids are skipped, as HF does (models pad their embedding tables past the vocab).
  EXPECT_EQ(tok.decode({9707, 999999, -5, 1879}), "Hello world");
}

TEST(Tokenizer, DecodeOfPartialCharacterIsReplacement) {
  const BpeTokenizer& tok = qwen();
  auto ids = tok.encode("\U00013000");  // a hieroglyph: split over byte tokens
  ASSERT_GT(ids.size(), 1u);
  std::vector<int32_t> first(ids.begin(), ids.end() - 1);
  EXPECT_EQ(tok.decode(first), "\xEF\xBF\xBD");
}

TEST(Tokenizer, StreamingDecoderEqualsDecode) {
  const BpeTokenizer& tok = qwen();
  for (const auto& c : qwen_cases()) {
    for (bool skip : {false, true}) {
      StreamingDecoder sd(tok, skip);
      std::string got;
      for (int32_t id : c.ids) {
        std::string piece = sd.feed(id);
        EXPECT_EQ(c3::tokenizer::find_invalid_utf8(piece), std::string_view::npos);
        got += piece;
      }
      got += sd.flush();
      EXPECT_EQ(got, tok.decode(c.ids, skip)) << nlohmann::json(c.text).dump();
    }
  }
  // A sequence cut mid-character: the held bytes come out of flush() as U+FFFD.
  StreamingDecoder sd(tok);
  auto ids = tok.encode("a\U00013000");
  std::string got;
  for (size_t i = 0; i + 1 < ids.size(); ++i) got += sd.feed(ids[i]);
  EXPECT_EQ(got, "a");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");
}

// ---- UTF-8 ---------------------------------------------------------------------------------

TEST(Tokenizer, InvalidUtf8ThrowsWithByteOffset) {
  const BpeTokenizer& tok = qwen();
  try {
    tok.encode(std::string("abc\xC3(def", 8));
    FAIL() << "no exception";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte offset 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tok.encode("\xED\xA0\x80"), c3::Error);      // a surrogate
  EXPECT_THROW(tok.encode("\xC0\xAF"), c3::Error);          // overlong '/'
  EXPECT_THROW(tok.encode("x\xF4\x90\x80\x80"), c3::Error);  // > U+10FFFF
  EXPECT_THROW(tok.encode("\xE2\x82"), c3::Error);          // truncated
}

TEST(Tokenizer, LossyReplacesMaximalSubparts) {
  using c3::tokenizer::to_valid_utf8;
  const std::string R = "\xEF\xBF\xBD";
  // Unicode's own example (Table 3-8): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  EXPECT_EQ(to_valid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64"),
            "a" + R + R + R + "b" + R + "c" + R + R + "d");
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), R + R + R);
  const BpeTokenizer& tok = qwen();
  EXPECT_EQ(tok.encode_lossy("ok\xFFok"), tok.encode("ok\xEF\xBF\xBDok"));
  EXPECT_EQ(tok.encode_lossy("fine"), tok.encode("fine"));
}

TEST(Tokenizer, NoByteStringCrashesLossyEncode) {
  const BpeTokenizer& tok = qwen();
  std::mt19937 rng(1234);
  const std::string alphabet = "<|im_end>é 日\n\t'sA1";
  c3::tokenizer::Normalizer nfc({c3::tokenizer::Normalizer::Form::kNFC});
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s(rng() % 40, '\0');
    for (char& ch : s) {
      ch = (rng() % 3 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
    }
    auto ids = tok.encode_lossy(s);
    EXPECT_EQ(tok.decode(ids), nfc.normalize(c3::tokenizer::to_valid_utf8(s)));
  }
}

// ---- pieces --------------------------------------------------------------------------------

TEST(Tokenizer, OnigSpaceRewrittenForPcre2) {
  using c3::tokenizer::onig_to_pcre2;
  EXPECT_EQ(onig_to_pcre2(R"(\s+(?!\S))"), R"([\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}]))");
  EXPECT_EQ(onig_to_pcre2(R"([^\s\p{L}])"), R"([^\t-\r\x{85}\p{Z}\p{L}])");
  EXPECT_EQ(onig_to_pcre2(R"([]\s] \\s)"), R"([]\t-\r\x{85}\p{Z}] \\s)");
  // U+180E is \s for PCRE2 but not for Oniguruma (nor for HF).
  c3::tokenizer::Regex re(R"(\s+)");
  int n = 0;
  re.for_each_match("a\u180Eb \u3000c", [&](size_t b, size_t e) { ++n; });
  EXPECT_EQ(n, 1);
}

TEST(Tokenizer, Qwen2FastMatcherEqualsPcre2) {
  using c3::tokenizer::Regex;
  Regex fast(c3::tokenizer::kQwen2Pattern), pcre(c3::tokenizer::kQwen2Pattern, false);
  auto matches = [](const Regex& re, const std::string& s) {
    std::vector<std::pair<size_t, size_t>> m;
    re.for_each_match(s, [&](size_t b, size_t e) { m.push_back({b, e}); });
    return m;
  };
  const std::vector<std::string> atoms = {
      "a", "Z", "q", "0", "7", " ", " ", " ", "\t", "\r", "\n", "\x0b", "\x0c", "'", "'", "s", "S",
      "t", "r", "R", "e", "E", "v", "l", "L", "m", "d", "D", "(", ".", ",", "!", "-", "_", "\x01",
      "\x7f", "\x1c", "\u00e9", "\u00a0", "\u3000", "\u017f", "\u65e5", "\u2014", "\u2019",
      "\U0001F600", "\u0301", "\u0660", "\u180e", "\u2028"};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s;
    const int len = 1 + rng() % 24;
    for (int k = 0; k < len; ++k) s += atoms[rng() % (iter % 2 ? atoms.size() : 36)];
    auto a = matches(fast, s), b = matches(pcre, s);
    ASSERT_EQ(a, b) << nlohmann::json(s).dump();
  }
  for (const auto& c : qwen_cases()) ASSERT_EQ(matches(fast, c.text), matches(pcre, c.text));
}

TEST(Tokenizer, NfcNormalizesOnlyWhatNeedsIt) {
  c3::tokenizer::Normalizer nfc({c3::tokenizer::Normalizer::Form::kNFC});
  EXPECT_EQ(nfc.normalize("plain ascii"), "plain ascii");
  EXPECT_EQ(nfc.normalize("cafe\u0301 x"), "caf\u00e9 x");
  EXPECT_EQ(nfc.normalize("\u1100\u1161\u11A8"), "\uAC01");  // Hangul jamo compose
  EXPECT_EQ(nfc.normalize("A\u030A\u0323"), "\u1EA0\u030A");   // marks reordered, then composed
}

TEST(Tokenizer, EncodeIsThreadSafe) {
  const BpeTokenizer& tok = qwen();
  auto cases = qwen_cases();
  std::vector<std::thread> threads;
  std::vector<int> errors(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 5; ++rep) {
        for (size_t i = t; i < cases.size() + t; ++i) {
          const auto& c = cases[(i * 7) % cases.size()];
          if (tok.encode(c.text) != c.ids) ++errors[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int e : errors) EXPECT_EQ(e, 0);
}

// A toy vocabulary (id = byte value) plus added tokens with lstrip / rstrip / single_word /
// normalized, GPT-2's ByteLevel pre-tokenizer and NFC.
static BpeTokenizer toy_tokenizer(bool add_prefix_space) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) {
    std::string t = c3::tokenizer::bytes_to_token(std::string(1, char(b)));
    vocab[t] = b;
  }
  auto added = nlohmann::json::array();
  auto add = [&](int id, const char* content, bool lstrip, bool rstrip, bool single, bool norm) {
    added.push_back({{"id", id}, {"content", content}, {"single_word", single}, {"lstrip", lstrip},
                     {"rstrip", rstrip}, {"normalized", norm}, {"special", !norm}});
  };
  add(300, "<L>", true, false, false, false);
  add(301, "<R>", false, true, false, false);
  add(302, "word", false, false, true, false);
  add(303, "caf\u00e9", false, false, false, true);
  add(304, "<R><L>", false, false, false, false);
  nlohmann::json j = {
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  return BpeTokenizer::from_json(j.dump());
}

TEST(Tokenizer, AddedTokenFlagsFollowHf) {
  auto tok = toy_tokenizer(false);
  auto ids = [&](const std::string& s) { return ids_str(tok.encode(s)); };
  EXPECT_EQ(ids("a  <L>b"), ids_str({'a', 300, 'b'}));   // lstrip eats the spaces on its left
  EXPECT_EQ(ids("a<R> \n b"), ids_str({'a', 301, 'b'}));  // rstrip eats spaces and newlines
  EXPECT_EQ(ids("<R><L>"), ids_str({304}));               // the longest match wins
  EXPECT_EQ(ids("a word b"), ids_str({'a', ' ', 302, ' ', 'b'}));
  EXPECT_EQ(ids("awordb").find("302"), std::string::npos);  // single_word: not inside a word
  EXPECT_EQ(ids("cafe\u0301!"), ids_str({303, '!'}));      // normalized: found after NFC
}

TEST(Tokenizer, ByteLevelPrefixSpaceGoesOnEveryPiece) {
  auto tok = toy_tokenizer(true);
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(ids_str(tok.encode("a")), ids_str({' ', 'a'}));
  EXPECT_EQ(ids_str(tok.encode(" a<R>b")), ids_str({' ', 'a', 301, ' ', 'b'}));
}

// Ids must be integers in [0, 2^24): a float, an id past int32 or a huge id that would size the
// id tables at gigabytes is refused with the token named (all three were fuzzing findings).
TEST(Tokenizer, RejectsIdsThatAreNotSmallIntegers) {
  auto load = [](const std::string& vocab, const std::string& added) -> std::string {
    const std::string j = R"({"model": {"type": "BPE", "vocab": )" + vocab +
                          R"(, "merges": []}, "added_tokens": )" + added + "}";
    try {
      BpeTokenizer::from_json(j, "t.json");
    } catch (const c3::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(load(R"({"a": 400000000})", "[]").find("model.vocab[\"a\"]"), std::string::npos);
  EXPECT_NE(load(R"({"a": 2.5})", "[]").find("2.5"), std::string::npos);
  EXPECT_NE(load(R"({"a": 2147483647})", "[]").find("16777215"), std::string::npos);
  EXPECT_NE(load(R"({"a": 0})", R"([{"id": 1e300, "content": "<x>"}])").find("<x>"),
            std::string::npos);
  // Whole floats are fine ids (the file then fails later, for lacking a pre-tokenizer).
  EXPECT_EQ(load(R"({"a": 0, "b": 1.0})", "[]").find("ids must be"), std::string::npos);
}
