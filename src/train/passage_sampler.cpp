// Passage sampling: SplitMix64, length distributions, and word-boundary cuts aimed by per-word
// token counts, then checked by tokenizing the chosen text once.
#include "train/passage_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tokenizer/bpe_tokenizer.h"
#include "util/error.h"

namespace c3::train {

// ---------------------------------------------------------------------------------------------
// Rng

static uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng Rng::keyed(std::initializer_list<uint64_t> keys) {
  uint64_t h = 0x2545f4914f6cdd1dULL;
  for (uint64_t k : keys) {
    uint64_t s = h ^ k;
    h = splitmix64(s);
  }
  return Rng(h);
}

uint64_t Rng::next() { return splitmix64(state_); }

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int64_t Rng::uniform_int(int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  // Lemire's multiply-shift: no modulo, bias below 2^-40 for our ranges.
  uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
  unsigned __int128 m = static_cast<unsigned __int128>(next()) * range;
  return lo + static_cast<int64_t>(m >> 64);
}

// ---------------------------------------------------------------------------------------------
// LengthDist

static bool parse_count(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 12) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = std::stoll(s);
  return true;
}

LengthDist LengthDist::parse(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    fail(
        "bad length distribution '{}': {}. Expected uniform:LO-HI, loguniform:LO-HI or fixed:N "
        "(token counts, 1 <= LO <= HI), e.g. uniform:64-1280",
        spec, why);
  };
  size_t colon = spec.find(':');
  if (colon == std::string::npos) bad("no ':'");
  std::string kind = spec.substr(0, colon), range = spec.substr(colon + 1);
  LengthDist d;
  if (kind == "fixed") {
    d.kind = Fixed;
    if (!parse_count(range, d.lo)) bad("'" + range + "' is not a token count");
    d.hi = d.lo;
  } else if (kind == "uniform" || kind == "loguniform") {
    d.kind = kind == "uniform" ? Uniform : LogUniform;
    size_t dash = range.find('-');
    if (dash == std::string::npos) bad("no '-' between LO and HI");
    if (!parse_count(range.substr(0, dash), d.lo) || !parse_count(range.substr(dash + 1), d.hi))
      bad("'" + range + "' is not LO-HI");
  } else {
    bad("unknown kind '" + kind + "'");
  }
  if (d.lo < 1) bad("lengths must be >= 1");
  if (d.lo > d.hi) bad("LO > HI");
  return d;
}

std::string LengthDist::str() const {
  switch (kind) {
    case Fixed:
      return fmt::format("fixed:{}", lo);
    case LogUniform:
      return fmt::format("loguniform:{}-{}", lo, hi);
    default:
      return fmt::format("uniform:{}-{}", lo, hi);
  }
}

int64_t LengthDist::sample(Rng& rng) const {
  switch (kind) {
    case Fixed:
      return lo;
    case Uniform:
      return rng.uniform_int(lo, hi);
    case LogUniform: {
      // Density ~ 1/x on [lo, hi + 1), floored, so every integer in [lo, hi] can come out.
      double a = std::log(static_cast<double>(lo)), b = std::log(static_cast<double>(hi) + 1.0);
      auto x = static_cast<int64_t>(std::floor(std::exp(a + rng.uniform() * (b - a))));
      return std::clamp(x, lo, hi);
    }
  }
  return lo;
}

// ---------------------------------------------------------------------------------------------
// Word boundaries over UTF-8. Decoding is lenient (a stray byte counts as one character) so that
// cutting never fails; the tokenizer is what rejects invalid text.

namespace {

struct Char {
  uint32_t cp;
  size_t len;
};

Char decode_at(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 1;
  if (i + len > s.size()) return {b, 1};
  if (len == 1) return {b, 1};
  uint32_t cp = b & (0x7f >> len);
  for (size_t k = 1; k < len; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xc0) != 0x80) return {b, 1};
    cp = (cp << 6) | (c & 0x3f);
  }
  return {cp, len};
}

bool is_continuation(std::string_view s, size_t i) {
  return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80;
}

// Start of the character that ends just before byte i (i > 0).
size_t prev_start(std::string_view s, size_t i) {
  size_t j = i - 1;
  for (int k = 0; k < 3 && j > 0 && is_continuation(s, j); ++k) --j;
  return decode_at(s, j).len == i - j ? j : i - 1;
}

bool is_space(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0d);
  return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
         c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// Scripts written without spaces between words: every character is a word of its own.
bool is_cjk(uint32_t c) {
  return (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xf900 && c <= 0xfaff) ||
         (c >= 0xff00 && c <= 0xffef) || (c >= 0x20000 && c <= 0x3ffff);
}

// [first non-space, one past the last non-space) of doc; empty when all whitespace.
std::pair<size_t, size_t> trimmed(std::string_view doc) {
  size_t a = 0;
  while (a < doc.size()) {
    Char c = decode_at(doc, a);
    if (!is_space(c.cp)) break;
    a += c.len;
  }
  size_t b = doc.size();
  while (b > a) {
    size_t p = prev_start(doc, b);
    if (!is_space(decode_at(doc, p).cp)) break;
    b = p;
  }
  return {a, b};
}

// The latest word start in [floor, o]; `floor` must be a word start.
size_t word_start_at_or_before(std::string_view doc, size_t o, size_t floor) {
  while (o > floor && is_continuation(doc, o)) --o;
  while (o > floor && !is_word_start(doc, o)) o = prev_start(doc, o);
  return std::max(o, floor);
}

// The first word of the paragraph holding byte o (paragraphs are split by '\n').
size_t paragraph_start_at_or_before(std::string_view doc, size_t o, size_t floor) {
  if (o <= floor) return floor;
  size_t nl = doc.rfind('\n', o - 1);
  if (nl == std::string_view::npos || nl < floor) return floor;
  size_t q = nl + 1;
  while (q < doc.size()) {
    Char c = decode_at(doc, q);
    if (!is_space(c.cp)) break;
    q += c.len;
  }
  return q;
}

}  // namespace

bool is_word_start(std::string_view doc, size_t pos) {
  if (pos >= doc.size() || is_continuation(doc, pos)) return false;
  Char cur = decode_at(doc, pos);
  if (is_space(cur.cp)) return false;
  if (pos == 0) return true;
  uint32_t prev = decode_at(doc, prev_start(doc, pos)).cp;
  return is_space(prev) || is_cjk(prev) || is_cjk(cur.cp);
}

bool is_word_end(std::string_view doc, size_t pos) {
  if (pos == 0 || pos > doc.size() || is_continuation(doc, pos)) return false;
  uint32_t prev = decode_at(doc, prev_start(doc, pos)).cp;
  if (is_space(prev)) return false;
  if (pos == doc.size()) return true;
  uint32_t cur = decode_at(doc, pos).cp;
  return is_space(cur) || is_cjk(cur) || is_cjk(prev);
}

// ---------------------------------------------------------------------------------------------
// Cutting

namespace {

constexpr double kBytesPerTokenGuess = 4.0;  // English with a 16k BPE; only aims the start

// Finds the longest text [begin, end) ending at a segment end with at most `target` tokens.
// Segments are "spaces + word + the newlines right after it" (or single characters in `chars`
// mode): with the Qwen2 and GPT-2 split regexes, pre-tokens never straddle those boundaries
// (".\n\n" is one pre-token, " word" another), so per-segment token counts add up to the count
// of the whole text. They do not for CJK runs and other odd cases, so the counts only aim the
// search and a real tokenization checks each candidate.
class Cutter {
 public:
  Cutter(const tokenizer::BpeTokenizer& tok, std::string_view doc, size_t begin, size_t limit,
         int64_t target, bool chars)
      : tok_(tok),
        doc_(doc),
        begin_(begin),
        pos_(begin),
        limit_(limit),
        target_(target),
        chars_(chars) {}

  // Returns the number of segments of the best cut (0: nothing fits) and fills end/ids.
  int64_t run(size_t& end, std::vector<int32_t>& ids) {
    int64_t good = 0, bad = 1;
    double scale = 1.0;
    for (int iter = 0; iter < 64; ++iter) {
      if (good == n()) {  // every segment so far fits: take in more text, if any
        if (!extend(scale)) break;
        bad = n() + 1;
      }
      if (good + 1 >= bad) break;
      int64_t k;
      if (iter < 4) {  // aim by the (rescaled) counts, then fall back to bisection
        k = good + 1;
        while (k + 1 < bad && k + 1 <= n() && est(k + 1) * scale <= target_) ++k;
      } else {
        k = (good + bad) / 2;
      }
      k = std::min(k, n());
      std::vector<int32_t> got = tok_.encode(doc_.substr(begin_, ends_[k - 1] - begin_));
      auto f = static_cast<int64_t>(got.size());
      bool exact = f == est(k);
      if (est(k) > 0) scale = static_cast<double>(f) / est(k);
      if (f <= target_) {
        good = k;
        ids = std::move(got);
        // The counts were exact here and say the next word overflows: trust them.
        if (exact && k < n() && est(k + 1) > target_) break;
      } else {
        bad = k;
      }
    }
    if (good > 0) end = ends_[good - 1];
    return good;
  }

  size_t first_word_end() const { return ends_.empty() ? begin_ : ends_[0]; }

 private:
  int64_t n() const { return static_cast<int64_t>(ends_.size()); }
  int64_t est(int64_t k) const { return est_[k - 1]; }  // estimated tokens of k segments

  int64_t count(size_t from, size_t to) {
    scratch_.clear();
    tok_.encode_to(doc_.substr(from, to - from), scratch_);
    return static_cast<int64_t>(scratch_.size());
  }

  // Adds segments until their counts (times scale) pass the target or the text ends.
  bool extend(double scale) {
    bool added = false;
    while (pos_ < limit_ && (!added || prefix_.back() * scale <= target_)) {
      size_t q = pos_;
      if (!chars_) {
        while (q < limit_ && is_space(decode_at(doc_, q).cp)) q += decode_at(doc_, q).len;
      }
      if (q >= limit_) {
        pos_ = limit_;
        break;
      }
      Char c = decode_at(doc_, q);
      size_t r = q + c.len;
      if (!chars_ && !is_cjk(c.cp)) {
        while (r < limit_) {
          Char d = decode_at(doc_, r);
          if (is_space(d.cp) || is_cjk(d.cp)) break;
          r += d.len;
        }
      }
      r = std::min(r, limit_);
      size_t next = r;
      if (!chars_)
        while (next < limit_ && (doc_[next] == '\n' || doc_[next] == '\r')) ++next;
      int64_t full = count(pos_, next);
      // A passage ends at the word itself, without the newlines: count that too (rarely needed).
      ends_.push_back(r);
      est_.push_back(prefix_.back() + (next > r ? count(pos_, r) : full));
      prefix_.push_back(prefix_.back() + full);
      pos_ = next;
      added = true;
    }
    return added;
  }

  const tokenizer::BpeTokenizer& tok_;
  std::string_view doc_;
  size_t begin_, pos_, limit_;
  int64_t target_;
  bool chars_;
  std::vector<size_t> ends_;
  std::vector<int64_t> prefix_{0};  // prefix_[k]: summed counts of the first k segments
  std::vector<int64_t> est_;        // est_[k - 1]: counts of k segments, the last one bare
  std::vector<int32_t> scratch_;
};

}  // namespace

Passage cut_passage_from(const tokenizer::BpeTokenizer& tok, std::string_view doc, size_t begin,
                         int64_t target_tokens) {
  size_t limit = trimmed(doc).second;
  while (begin < limit && is_space(decode_at(doc, begin).cp)) begin += decode_at(doc, begin).len;
  Passage p;
  p.begin = p.end = std::min(begin, doc.size());
  if (begin >= limit || target_tokens < 1) return p;

  size_t end = begin;
  Cutter words(tok, doc, begin, limit, target_tokens, /*chars=*/false);
  if (words.run(end, p.ids) == 0) {
    // The first word alone is too long (a URL, a long run of symbols): cut it between characters.
    Cutter chars(tok, doc, begin, words.first_word_end(), target_tokens, /*chars=*/true);
    if (chars.run(end, p.ids) == 0) return p;
  }
  p.end = end;
  p.text = std::string(doc.substr(begin, end - begin));
  return p;
}

Passage cut_passage(const tokenizer::BpeTokenizer& tok, std::string_view doc, int64_t target_tokens,
                    uint64_t seed) {
  auto [a, b] = trimmed(doc);
  if (a >= b || target_tokens < 1) {
    Passage p;
    p.begin = p.end = a;
    return p;
  }
  Rng rng(seed);
  // Aim the start so that about target_tokens of text follow it.
  auto need = static_cast<size_t>(static_cast<double>(target_tokens) * kBytesPerTokenGuess);
  size_t max_start = b - a > need ? b - need : a;
  size_t o = a + static_cast<size_t>(rng.uniform_int(0, static_cast<int64_t>(max_start - a)));
  bool paragraph = rng.uniform() < 0.25;
  size_t s =
      paragraph ? paragraph_start_at_or_before(doc, o, a) : word_start_at_or_before(doc, o, a);
  Passage p = cut_passage_from(tok, doc, s, target_tokens);

  // Ran into the end of the document short of the target: start earlier, by the missing tokens
  // at this text's own bytes per token.
  for (int tries = 0; tries < 4 && p.end == b && s > a && p.n_tokens() < 0.9 * target_tokens;
       ++tries) {
    double bpt = p.n_tokens() > 0 ? static_cast<double>(p.end - p.begin) / p.n_tokens()
                                  : kBytesPerTokenGuess;
    auto back = static_cast<size_t>((target_tokens - p.n_tokens()) * bpt * 1.1) + 1;
    s = word_start_at_or_before(doc, s > a + back ? s - back : a, a);
    p = cut_passage_from(tok, doc, s, target_tokens);
  }
  return p;
}

std::optional<Passage> cut_passage_in_range(const tokenizer::BpeTokenizer& tok,
                                            std::string_view doc, int64_t lo, int64_t hi,
                                            uint64_t seed) {
  C3_CHECK(lo >= 1 && lo < hi, "cut_passage_in_range: bad length bin [{}, {}): need 1 <= lo < hi",
           lo, hi);
  auto [a, b] = trimmed(doc);
  Rng rng(seed);
  for (int attempt = 0; attempt < 4; ++attempt) {
    // First aim anywhere in the bin; if the cut falls short of it, aim at the top.
    int64_t target = attempt == 0 ? rng.uniform_int(lo, hi - 1) : hi - 1;
    Passage p = cut_passage(tok, doc, target, rng.next());
    if (p.n_tokens() >= lo && p.n_tokens() < hi) return p;
    if (p.begin <= a && p.end >= b) return std::nullopt;  // the whole document is too short
  }
  return std::nullopt;
}

}  // namespace c3::train
