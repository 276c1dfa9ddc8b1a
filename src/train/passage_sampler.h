// Passage sampling for training and eval: a seeded RNG, token-length distributions, and cutting a
// document into a passage of a target token length at word boundaries.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {
class BpeTokenizer;
}

namespace c3::train {

// SplitMix64 (Steele, Lea & Flood, 2014). Unlike std::*_distribution it gives the same numbers
// with every compiler and standard library, which resume and cross-host determinism rely on.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // A stream keyed by several integers, e.g. {seed, epoch, doc}: each key tuple gets its own
  // independent stream, so results do not depend on the order in which streams are used.
  static Rng keyed(std::initializer_list<uint64_t> keys);

  uint64_t next();
  double uniform();                             // in [0, 1)
  int64_t uniform_int(int64_t lo, int64_t hi);  // in [lo, hi], both inclusive

 private:
  uint64_t state_;
};

// A distribution of passage lengths in tokens; bounds are inclusive.
struct LengthDist {
  enum Kind { Uniform, LogUniform, Fixed };
  Kind kind = Uniform;
  int64_t lo = 64, hi = 1280;

  // "uniform:64-1280", "loguniform:32-1280" or "fixed:64". Throws c3::Error on anything else.
  static LengthDist parse(const std::string& spec);
  std::string str() const;  // the spec parse() reads back
  int64_t sample(Rng& rng) const;
};

// A piece of a document: its text and exactly the ids that text tokenizes to.
struct Passage {
  std::string text;
  std::vector<int32_t> ids;
  size_t begin = 0, end = 0;  // byte range of `text` in the source document

  int64_t n_tokens() const { return static_cast<int64_t>(ids.size()); }
};

// A word starts after whitespace (or at the start of the document) and ends before whitespace.
// CJK ideographs, kana and fullwidth punctuation are one word each, since those scripts put no
// spaces between words. Exposed for tests.
bool is_word_start(std::string_view doc, size_t pos);
bool is_word_end(std::string_view doc, size_t pos);

// The longest passage that starts at `begin` (a word start), ends at a word end, and has at most
// `target_tokens` tokens. A single word longer than that is cut between code points (never
// inside one). Costs about two tokenizations of the passage: per-word counts to aim, then one
// exact tokenization of the chosen text (rarely a few more when the counts do not add up).
Passage cut_passage_from(const tokenizer::BpeTokenizer& tok, std::string_view doc, size_t begin,
                         int64_t target_tokens);

// A passage of at most `target_tokens` tokens from a place picked by `seed`: a word start, or
// (one time in four) a paragraph start. It reaches >= 90% of the target whenever the document is
// long enough; a shorter document gives all of its text, less surrounding whitespace.
Passage cut_passage(const tokenizer::BpeTokenizer& tok, std::string_view doc, int64_t target_tokens,
                    uint64_t seed);

// A passage whose token count lies in [lo, hi), for eval length bins; nullopt when the document
// is too short (or no cut lands in the bin after a few tries).
std::optional<Passage> cut_passage_in_range(const tokenizer::BpeTokenizer& tok,
                                            std::string_view doc, int64_t lo, int64_t hi,
                                            uint64_t seed);

}  // namespace c3::train
