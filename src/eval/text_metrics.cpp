// Char/word precision and exact match of one passage, and the per-bin accumulator of them.
#include "eval/text_metrics.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "eval/levenshtein.h"

namespace c3::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Python's str.isspace() set, so word counts agree with `text.split()` in reference scripts.
bool is_space(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
  if (c < 0x85) return false;
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::unordered_set<std::u32string> distinct_words(std::string_view utf8) {
  const std::u32string s = utf8_to_u32(utf8);
  std::unordered_set<std::u32string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) words.emplace(s, start, i - start);
  }
  return words;
}

double mean_or_nan(double sum, int64_t n) { return n > 0 ? sum / double(n) : kNaN; }

nlohmann::ordered_json number_or_null(double x) {
  return std::isfinite(x) ? nlohmann::ordered_json(x) : nlohmann::ordered_json(nullptr);
}

}  // namespace

double char_precision(const std::u32string& pred, const std::u32string& ref) {
  const size_t longest = std::max(pred.size(), ref.size());
  if (longest == 0) return 1.0;
  return 1.0 - double(levenshtein(pred, ref)) / double(longest);
}

double char_precision(std::string_view pred_utf8, std::string_view ref_utf8) {
  return char_precision(utf8_to_u32(pred_utf8), utf8_to_u32(ref_utf8));
}

bool exact_match(std::string_view pred, std::string_view ref) { return pred == ref; }

double word_precision(std::string_view pred_utf8, std::string_view ref_utf8) {
  const auto ref_words = distinct_words(ref_utf8);
  const auto pred_words = distinct_words(pred_utf8);
  if (ref_words.empty()) return pred_words.empty() ? 1.0 : 0.0;
  size_t found = 0;
  for (const auto& w : ref_words) found += pred_words.count(w);
  return double(found) / double(ref_words.size());
}

PassageScore score_passage(std::string_view pred, std::string_view ref) {
  PassageScore s;
  s.char_precision = char_precision(pred, ref);
  s.word_precision = word_precision(pred, ref);
  s.exact = exact_match(pred, ref);
  return s;
}

BinStats::BinStats(std::string bin, int64_t lo, int64_t hi, int64_t latents)
    : bin(std::move(bin)), lo(lo), hi(hi), latents(latents) {}

void BinStats::add(const PassageScore& s, int64_t n_tokens) {
  ++n;
  sum_tokens_ += double(n_tokens);
  sum_char_ += s.char_precision;
  sum_sq_char_ += s.char_precision * s.char_precision;
  sum_word_ += s.word_precision;
  n_exact_ += s.exact ? 1 : 0;
  if (!std::isnan(s.token_accuracy)) {
    sum_token_acc_ += s.token_accuracy;
    ++n_token_acc_;
  }
}

void BinStats::set_means(int64_t n_passages, double mean_tokens, double char_precision,
                         double word_precision, double exact_match, double token_accuracy,
                         double char_precision_ci95) {
  restored_ = true;
  ci95_restored_ = char_precision_ci95;
  auto sum = [&](double mean) { return std::isfinite(mean) ? mean * double(n_passages) : 0.0; };
  n = n_passages;
  sum_tokens_ = sum(mean_tokens);
  sum_char_ = sum(char_precision);
  sum_word_ = sum(word_precision);
  n_exact_ = int64_t(std::llround(sum(exact_match)));
  n_token_acc_ = std::isfinite(token_accuracy) ? n_passages : 0;
  sum_token_acc_ = sum(token_accuracy);
}

double BinStats::mean_tokens() const { return mean_or_nan(sum_tokens_, n); }
double BinStats::ratio() const { return latents > 0 ? mean_tokens() / double(latents) : kNaN; }
double BinStats::char_precision() const { return mean_or_nan(sum_char_, n); }
double BinStats::char_precision_ci95() const {
  if (restored_) return ci95_restored_;
  if (n < 2) return kNaN;
  const double mean = sum_char_ / double(n);
  const double var = std::max(0.0, (sum_sq_char_ - double(n) * mean * mean) / double(n - 1));
  return 1.96 * std::sqrt(var / double(n));
}
double BinStats::word_precision() const { return mean_or_nan(sum_word_, n); }
double BinStats::exact_match() const { return mean_or_nan(double(n_exact_), n); }
double BinStats::token_accuracy() const { return mean_or_nan(sum_token_acc_, n_token_acc_); }

nlohmann::ordered_json BinStats::to_json() const {
  return nlohmann::ordered_json{
      {"bin", bin},
      {"n", n},
      {"mean_tokens", number_or_null(mean_tokens())},
      {"latents", latents},
      {"ratio", number_or_null(ratio())},
      {"char_precision", number_or_null(char_precision())},
      {"char_precision_ci95", number_or_null(char_precision_ci95())},
      {"exact_match", number_or_null(exact_match())},
      {"word_precision", number_or_null(word_precision())},
      {"token_accuracy", number_or_null(token_accuracy())},
      {"seconds", seconds},
  };
}

}  // namespace c3::eval
