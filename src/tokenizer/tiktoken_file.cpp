// Reading qwen.tiktoken strictly, and the merge table and tokenizer.json that it amounts to.
#include "tokenizer/tiktoken_file.h"

#include <algorithm>
#include <array>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/hf_tokenizer_json.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"

namespace c3::tokenizer {

namespace {

// Standard base64 with padding, as Python's base64.b64encode writes it; false on anything else.
// (Twenty lines here rather than a new library dependency for every build.)
bool decode_base64(std::string_view in, std::string& out) {
  static const auto table = [] {
    std::array<int8_t, 256> t;
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[uint8_t(a[i])] = static_cast<int8_t>(i);
    return t;
  }();
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  const size_t pad = in.back() != '=' ? 0 : in[in.size() - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      const bool padded = last && k >= 4 - pad;
      const int8_t d = padded ? 0 : table[uint8_t(in[i + k])];
      if (d < 0) return false;
      v = (v << 6) | uint32_t(d);
    }
    out += static_cast<char>(v >> 16);
    if (!(last && pad == 2)) out += static_cast<char>((v >> 8) & 0xFF);
    if (!(last && pad >= 1)) out += static_cast<char>(v & 0xFF);
  }
  return true;
}

std::string shown(std::string_view line) {
  std::string s(line.substr(0, 60));
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         (line.size() > 60 ? "..." : "");
}

// Parses one "BASE64 RANK" line of `origin` (line number `ln`); `want` is the rank expected.
std::string parse_line(std::string_view line, int64_t ln, int32_t want, const std::string& origin) {
  const size_t sp = line.find(' ');
  C3_CHECK(
      sp != std::string_view::npos && sp > 0 && line.find(' ', sp + 1) == std::string_view::npos,
      "{}: line {}: expected \"BASE64 RANK\" (two fields separated by one space), got {}", origin,
      ln, shown(line));
  std::string bytes;
  C3_CHECK(decode_base64(line.substr(0, sp), bytes),
           "{}: line {}: {} is not valid base64 (standard alphabet, padded with '=')", origin, ln,
           shown(line.substr(0, sp)));
  const std::string_view num = line.substr(sp + 1);
  int64_t rank = 0;
  bool digits = !num.empty() && num.size() <= 10;
  for (char c : num) {
    digits = digits && c >= '0' && c <= '9';
    rank = rank * 10 + (c - '0');
  }
  C3_CHECK(digits, "{}: line {}: the rank {} is not an integer from 0 to 9999999999", origin, ln,
           shown(num));
  C3_CHECK(rank >= want,
           "{}: line {}: rank {} repeats (ranks must count up from 0 by one; this "
           "line should have rank {})",
           origin, ln, rank, want);
  C3_CHECK(rank == want,
           "{}: line {}: rank {} leaves a gap: expected rank {} (ranks must count "
           "up from 0 by one)",
           origin, ln, rank, want);
  return bytes;
}

}  // namespace

TiktokenFile parse_tiktoken(std::string_view text, const std::string& origin) {
  TiktokenFile f;
  f.path = origin;
  f.hash = hash_hex(text);
  f.tokens.reserve(std::count(text.begin(), text.end(), '\n') + 1);
  std::vector<int64_t> line_of;  // by rank, for messages about repeated tokens
  int64_t ln = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++ln;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // tiktoken skips blank lines too
    C3_CHECK(f.tokens.size() < (size_t(1) << 24), "{}: line {}: more than 2^24 ranks", origin, ln);
    f.tokens.push_back(parse_line(line, ln, static_cast<int32_t>(f.tokens.size()), origin));
    line_of.push_back(ln);
  }
  C3_CHECK(!f.tokens.empty(), "{}: no tokens (expected lines \"BASE64 RANK\")", origin);
  std::unordered_map<std::string_view, int32_t> rank_of;
  rank_of.reserve(f.tokens.size());
  for (size_t r = 0; r < f.tokens.size(); ++r) {
    auto [it, fresh] = rank_of.emplace(f.tokens[r], static_cast<int32_t>(r));
    C3_CHECK(fresh, "{}: line {}: token {} repeats line {}'s (each token once)", origin, line_of[r],
             shown(f.tokens[r]), line_of[it->second]);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    C3_CHECK(rank_of.count(one),
             "{}: no token for the byte 0x{:02X}; a byte-level BPE file "
             "needs all 256 single bytes",
             origin, b);
  }
  return f;
}

TiktokenFile read_tiktoken(const std::string& path) {
  return parse_tiktoken(read_file(path), path);
}

const std::vector<std::string>& qwen_special_tokens() {
  static const std::vector<std::string> tokens = [] {
    std::vector<std::string> t = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 205; ++i) t.push_back(fmt::format("<|extra_{}|>", i));
    for (const char* s :
         {"<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>", "<img>", "</img>", "<imgpad>"})
      t.push_back(s);
    return t;
  }();
  return tokens;
}

void check_qwen_tokenizer_config(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, std::string(e.what()).substr(0, 200));
  }
  C3_CHECK(j.is_object(), "{}: expected a JSON object", path);
  if (!j.contains("tokenizer_class") || j["tokenizer_class"].is_null()) return;
  const auto& cls = j["tokenizer_class"];
  C3_CHECK(cls.is_string() && cls.get<std::string>() == "QWenTokenizer",
           "{}: tokenizer_class is {}, but a qwen.tiktoken is read as QWenTokenizer (whose code "
           "fixes the special tokens). Use this folder's tokenizer.json, or fix the config.",
           path, cls.dump());
}

std::vector<TiktokenMerge> tiktoken_merges(const std::vector<std::string>& tokens) {
  std::unordered_map<std::string_view, int32_t> rank_of;
  rank_of.reserve(tokens.size());
  for (size_t r = 0; r < tokens.size(); ++r) rank_of.emplace(tokens[r], static_cast<int32_t>(r));
  std::vector<TiktokenMerge> merges;
  merges.reserve(tokens.size() * 2);
  for (size_t r = 0; r < tokens.size(); ++r) {
    const std::string_view t = tokens[r];
    const size_t first = merges.size();
    for (size_t i = 1; i < t.size(); ++i) {
      auto l = rank_of.find(t.substr(0, i));
      if (l == rank_of.end()) continue;
      auto rt = rank_of.find(t.substr(i));
      if (rt == rank_of.end()) continue;
      merges.push_back({l->second, rt->second, static_cast<int32_t>(r)});
    }
    std::sort(merges.begin() + first, merges.end(),
              [](const TiktokenMerge& a, const TiktokenMerge& b) {
                return a.left != b.left ? a.left < b.left : a.right < b.right;
              });
  }
  return merges;
}

std::string tiktoken_to_hf_json(const TiktokenFile& f) {
  HfBpeJson spec;
  spec.tokens = f.tokens;
  for (const TiktokenMerge& m : tiktoken_merges(f.tokens)) spec.merges.push_back({m.left, m.right});
  spec.ignore_merges = true;
  const auto& special = qwen_special_tokens();
  for (size_t i = 0; i < special.size(); ++i) {
    AddedToken a;
    a.id = static_cast<int32_t>(f.tokens.size() + i);
    a.content = special[i];
    a.special = true;
    a.normalized = true;  // QWenTokenizer applies NFC to the whole text before it finds them
    spec.added.push_back(a);
  }
  return hf_tokenizer_json(spec);
}

}  // namespace c3::tokenizer
