// Pre-tokenization: PCRE2 JIT splits that reproduce HF's Oniguruma-based Split and ByteLevel.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pretokenizer.h"

#include <pcre2.h>

#include <cstdint>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace c3::tokenizer {

const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|)"
    R"(\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Oniguruma's Unicode \s: U+0009..U+000D, U+0085 and the Z categories.
static const char* const kOnigSpace = R"(\t-\r\x{85}\p{Z})";

std::string onig_to_pcre2(const std::string& p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[++i];
      if (e == 's') {
        out += in_class ? std::string(kOnigSpace) : "[" + std::string(kOnigSpace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kOnigSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // [:alpha:]
      size_t end = p.find(":]", i + 2);
      if (end != std::string::npos) {
        out.append(p, i, end + 2 - i);
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

namespace {

// ASCII classes of the Qwen2 pattern: \p{L}, \p{N}, Oniguruma's \s, CR/LF, and the rest.
enum : uint8_t { kL = 1, kN = 2, kS = 4, kCrLf = 8, kO = 16 };
struct AsciiClasses {
  uint8_t c[128];
  AsciiClasses() {
    for (int i = 0; i < 128; ++i) {
      if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z')) c[i] = kL;
      else if (i >= '0' && i <= '9') c[i] = kN;
      else if (i == '\r' || i == '\n') c[i] = kS | kCrLf;
      else if ((i >= 0x09 && i <= 0x0D) || i == ' ') c[i] = kS;
      else c[i] = kO;
    }
  }
};
const AsciiClasses kAscii;

// The Qwen2 pattern's match at `p`, when deciding it needs only ASCII characters; false sends
// the position to PCRE2. The pattern matches at every position, so this is PCRE2's next match.
//   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} |
//   ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
bool qwen2_ascii_match(std::string_view sv, size_t p, size_t& end) {
  const auto* s = reinterpret_cast<const uint8_t*>(sv.data());
  const size_t n = sv.size();
  const uint8_t c = s[p];
  if (c >= 0x80) return false;
  // Alternatives 1: contractions (a non-ASCII letter might fold to 's': U+017F).
  if (c == '\'' && p + 1 < n) {
    if (s[p + 1] >= 0x80) return false;
    const uint8_t d = s[p + 1] | 0x20;
    if (d == 's' || d == 't' || d == 'm' || d == 'd') {
      end = p + 2;
      return true;
    }
    if ((d == 'r' || d == 'v' || d == 'l') && p + 2 < n) {
      if (s[p + 2] >= 0x80) return false;
      const uint8_t e = s[p + 2] | 0x20;
      if (e == (d == 'l' ? 'l' : 'e')) {
        end = p + 3;
        return true;
      }
    }
  }
  const uint8_t k = kAscii.c[c];
  // 2: an optional non-letter, non-digit, non-CR/LF character, then letters.
  size_t q = SIZE_MAX;
  if (k & kL) {
    q = p;
  } else if (!(k & (kN | kCrLf)) && p + 1 < n) {
    if (s[p + 1] >= 0x80) return false;
    if (kAscii.c[s[p + 1]] & kL) q = p + 1;
  }
  if (q != SIZE_MAX) {
    size_t i = q;
    while (i < n && s[i] < 0x80 && (kAscii.c[s[i]] & kL)) ++i;
    if (i < n && s[i] >= 0x80) return false;
    end = i;
    return true;
  }
  // 3: one digit.
  if (k & kN) {
    end = p + 1;
    return true;
  }
  // 4: an optional space, other characters, then CR/LF.
  {
    size_t i = c == ' ' ? p + 1 : p;
    if (i < n && s[i] >= 0x80) return false;
    if (i < n && (kAscii.c[s[i]] & kO)) {
      while (i < n && s[i] < 0x80 && (kAscii.c[s[i]] & kO)) ++i;
      if (i < n && s[i] >= 0x80) return false;
      while (i < n && (s[i] == '\r' || s[i] == '\n')) ++i;
      end = i;
      return true;
    }
  }
  // 5-7: c is whitespace. W = the whole whitespace run.
  size_t w = p, last_crlf = SIZE_MAX;
  while (w < n && s[w] < 0x80 && (kAscii.c[s[w]] & kS)) {
    if (kAscii.c[s[w]] & kCrLf) last_crlf = w;
    ++w;
  }
  if (w < n && s[w] >= 0x80) return false;  // U+00A0, U+3000, ... may continue the run
  if (last_crlf != SIZE_MAX) end = last_crlf + 1;  // \s*[\r\n]+ backtracks to the last CR/LF
  else if (w == n) end = n;                        // \s+(?!\S) at the end of the text
  else if (w - p >= 2) end = w - 1;                // \s+(?!\S): leave one space for the word
  else end = w;                                    // \s+
  return true;
}

}  // namespace

Regex::Regex(const std::string& pattern, bool allow_fast_path) : pattern_(pattern) {
  if (allow_fast_path && pattern == kQwen2Pattern) fast_ = qwen2_ascii_match;
  std::string translated = onig_to_pcre2(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), PCRE2_UTF | PCRE2_UCP, &err, &err_off,
                                   nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    fail("tokenizer.json: cannot compile the pre-tokenizer regex /{}/ at offset {}: {}", pattern,
         err_off, reinterpret_cast<char*>(msg));
  }
  // The JIT makes matching several times faster; without it (rare builds) pcre2_match is used.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = std::shared_ptr<void>(code,
                                [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
}

namespace {
// Match data and the JIT stack are not thread-safe; each thread has its own (any pattern).
struct PcreThread {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  PcreThread() { pcre2_jit_stack_assign(mc, nullptr, js); }
  ~PcreThread() {
    pcre2_jit_stack_free(js);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
  }
};
}  // namespace

bool Regex::find(std::string_view s, size_t from, size_t& begin, size_t& end) const {
  thread_local PcreThread t;
  auto* code = static_cast<pcre2_code*>(code_.get());
  // The text was validated once by the caller; PCRE2 need not re-check it per match.
  int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), from,
                       PCRE2_NO_UTF_CHECK, t.md, t.mc);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof(msg));
    fail("pre-tokenizer regex failed at byte {} of a {}-byte piece: {}", from, s.size(),
         reinterpret_cast<char*>(msg));
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(t.md);
  begin = ov[0];
  end = ov[1];
  return true;
}

size_t Regex::next_char(std::string_view s, size_t i) {
  if (i >= s.size()) return i + 1;
  size_t j = i;
  next_codepoint(s, j);
  return j;
}

void PreTokenizer::add_from_json(const nlohmann::json& j, std::vector<Step>& steps) {
  const std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& sub : j.at("pretokenizers")) add_from_json(sub, steps);
    return;
  }
  if (type == "Split") {
    Step st;
    const auto& pat = j.at("pattern");
    if (pat.contains("Regex")) {
      st.regex = std::make_shared<Regex>(pat.at("Regex").get<std::string>());
    } else {
      // A literal string: quote it so that no character is special.
      std::string lit = pat.at("String").get<std::string>();
      st.regex = std::make_shared<Regex>("\\Q" + lit + "\\E");
    }
    const std::string b = j.value("behavior", "Isolated");
    if (b == "Removed") st.behavior = Behavior::kRemoved;
    else if (b == "Isolated") st.behavior = Behavior::kIsolated;
    else if (b == "MergedWithPrevious") st.behavior = Behavior::kMergedWithPrevious;
    else if (b == "MergedWithNext") st.behavior = Behavior::kMergedWithNext;
    else if (b == "Contiguous") st.behavior = Behavior::kContiguous;
    else fail("tokenizer.json: Split behavior \"{}\" is not supported", b);
    st.invert = j.value("invert", false);
    steps.push_back(std::move(st));
    return;
  }
  if (type == "ByteLevel") {
    Step st;
    st.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) st.regex = std::make_shared<Regex>(kGpt2Pattern);
    if (st.regex || st.add_prefix_space) steps.push_back(std::move(st));
    return;
  }
  fail("tokenizer.json: pre_tokenizer type \"{}\" is not supported (supported: Split, ByteLevel, "
       "Sequence)", type);
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j) {
  PreTokenizer p;
  if (!j.is_null()) add_from_json(j, p.steps_);
  return p;
}

PreTokenizer PreTokenizer::qwen2() {
  PreTokenizer p;
  Step st;
  st.regex = std::make_shared<Regex>(kQwen2Pattern);
  p.steps_.push_back(std::move(st));
  return p;
}

void PreTokenizer::apply(const Step& st, std::string_view piece,
                         std::vector<std::string_view>& out, std::deque<std::string>& scratch) {
  if (piece.empty()) return;  // HF drops empty pieces before each step (no prefix space either)
  if (st.add_prefix_space && (piece.empty() || piece[0] != ' ')) {
    scratch.push_back(" " + std::string(piece));
    piece = scratch.back();
  }
  if (!st.regex) {
    if (!piece.empty()) out.push_back(piece);
    return;
  }
  if (st.behavior == Behavior::kIsolated && !st.invert) {  // the hot path (Qwen2, GPT-2)
    size_t prev = 0;
    st.regex->for_each_match(piece, [&](size_t b, size_t e) {
      if (b > prev) out.push_back(piece.substr(prev, b - prev));
      if (e > b) out.push_back(piece.substr(b, e - b));
      prev = e;
    });
    if (prev < piece.size()) out.push_back(piece.substr(prev));
    return;
  }
  // General case: segments (begin, end, is_delimiter) that cover the piece, as HF forms them.
  struct Seg {
    size_t b, e;
    bool delim;
  };
  std::vector<Seg> segs;
  size_t prev = 0;
  st.regex->for_each_match(piece, [&](size_t b, size_t e) {
    if (b > prev) segs.push_back({prev, b, false});
    segs.push_back({b, e, true});
    prev = e;
  });
  if (prev < piece.size()) segs.push_back({prev, piece.size(), false});
  if (st.invert) {
    for (auto& s : segs) s.delim = !s.delim;
  }
  std::vector<std::pair<size_t, size_t>> res;
  bool pending_next = false;  // MergedWithNext: the last result still waits for its next piece
  for (size_t i = 0; i < segs.size(); ++i) {
    const Seg& s = segs[i];
    switch (st.behavior) {
      case Behavior::kRemoved:
        if (!s.delim) res.push_back({s.b, s.e});
        break;
      case Behavior::kIsolated:
        res.push_back({s.b, s.e});
        break;
      case Behavior::kMergedWithPrevious:
        // HF merges a delimiter into the previous piece only when that one is no delimiter.
        if (s.delim && !res.empty() && !(i > 0 && segs[i - 1].delim)) res.back().second = s.e;
        else res.push_back({s.b, s.e});
        break;
      case Behavior::kMergedWithNext:
        if (pending_next) res.back().second = s.e;
        else res.push_back({s.b, s.e});
        pending_next = s.delim;
        break;
      case Behavior::kContiguous:
        if (s.delim && i > 0 && segs[i - 1].delim) res.back().second = s.e;
        else res.push_back({s.b, s.e});
        break;
    }
  }
  for (auto [b, e] : res) {
    if (e > b) out.push_back(piece.substr(b, e - b));
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words,
                         std::deque<std::string>& scratch) const {
  if (steps_.empty()) {
    if (!text.empty()) words.push_back(text);
    return;
  }
  if (steps_.size() == 1) {
    apply(steps_[0], text, words, scratch);
    return;
  }
  std::vector<std::string_view> cur{text}, next;
  for (const Step& st : steps_) {
    next.clear();
    for (std::string_view p : cur) apply(st, p, next, scratch);
    cur.swap(next);
  }
  words.insert(words.end(), cur.begin(), cur.end());
}

}  // namespace c3::tokenizer
