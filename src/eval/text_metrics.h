// Fidelity metrics of a reconstructed passage against its reference, and their per-bin means.
#pragma once
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace c3::eval {

// 1 - levenshtein(pred, ref) / max(|pred|, |ref|) over code points (C3-SPEC.md, "char
// precision", the main figure); 1.0 when both are empty. Always in [0, 1].
double char_precision(const std::u32string& pred, const std::u32string& ref);
double char_precision(std::string_view pred_utf8, std::string_view ref_utf8);

// Byte-for-byte equality: no trimming or normalisation, so a stray trailing space counts.
bool exact_match(std::string_view pred, std::string_view ref);

// |distinct words of ref found in pred| / |distinct words of ref|. Words are maximal runs of
// non-whitespace code points, whitespace as Python's str.split() sees it (Unicode White_Space
// plus U+001C..U+001F). A ref with no words scores 1.0 if pred has none either, else 0.0.
double word_precision(std::string_view pred_utf8, std::string_view ref_utf8);

// Scores of one reconstructed passage.
struct PassageScore {
  double char_precision = 0;
  double word_precision = 0;
  bool exact = false;
  // Teacher-forced decoder accuracy on the reference tokens; NaN when not computed.
  double token_accuracy = std::numeric_limits<double>::quiet_NaN();
};

// char precision, word precision and exact match of `pred` against `ref` (UTF-8).
PassageScore score_passage(std::string_view pred, std::string_view ref);

// Accumulates the scores of the passages of one length bin [lo, hi) tokens at L latents.
struct BinStats {
  std::string bin;  // label, e.g. "64-128"
  int64_t lo = 0;   // passage length in the model's tokens: lo <= tokens < hi
  int64_t hi = 0;
  int64_t latents = 0;  // L
  int64_t n = 0;        // passages added
  double seconds = 0;   // wall time spent on this bin (compress + decompress + scoring)

  BinStats() = default;
  BinStats(std::string bin, int64_t lo, int64_t hi, int64_t latents);

  void add(const PassageScore& s, int64_t n_tokens);

  // Means over the passages added; NaN when n == 0. token_accuracy averages only the passages
  // that have one, and is NaN when none has.
  double mean_tokens() const;
  double ratio() const;  // compression ratio = mean_tokens / latents
  double char_precision() const;
  // Half-width of the 95% confidence interval of the mean char precision (normal approximation,
  // 1.96 x the standard error from the sample standard deviation): how far another sample of n
  // passages could land. NaN when n < 2.
  double char_precision_ci95() const;
  double word_precision() const;
  double exact_match() const;  // fraction of passages reproduced exactly
  double token_accuracy() const;

  // {bin, n, mean_tokens, latents, ratio, char_precision, char_precision_ci95, exact_match,
  //  word_precision, token_accuracy, seconds} in that order; NaN becomes null (report.h reads it
  //  back).
  nlohmann::ordered_json to_json() const;

  // Restores an accumulator whose means equal the given ones (for reports read back from JSON).
  void set_means(int64_t n, double mean_tokens, double char_precision, double word_precision,
                 double exact_match, double token_accuracy,
                 double char_precision_ci95 = std::numeric_limits<double>::quiet_NaN());

 private:
  double sum_tokens_ = 0, sum_char_ = 0, sum_word_ = 0, sum_token_acc_ = 0;
  double sum_sq_char_ = 0;  // for the confidence interval
  bool restored_ = false;   // set_means: the interval comes from the report, not the sums
  double ci95_restored_ = std::numeric_limits<double>::quiet_NaN();
  int64_t n_exact_ = 0, n_token_acc_ = 0;
};

}  // namespace c3::eval
