// Tests of the eval metrics: bit-parallel Levenshtein vs the plain DP, UTF-8 decoding, precisions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/levenshtein.h"
#include "eval/text_metrics.h"

namespace c3::eval {
namespace {

std::u32string random_string(std::mt19937_64& rng, size_t len, const std::u32string& alphabet) {
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  std::u32string s(len, U'\0');
  for (auto& c : s) c = alphabet[pick(rng)];
  return s;
}

// `s` with `k` random single-code-point edits (substitute, insert or delete).
std::u32string mutate(std::mt19937_64& rng, std::u32string s, int k,
                      const std::u32string& alphabet) {
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1);
  for (int e = 0; e < k; ++e) {
    const size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 3) {
      case 0:
        if (pos < s.size()) s[pos] = alphabet[pick(rng)];
        break;
      case 1:
        s.insert(s.begin() + pos, alphabet[pick(rng)]);
        break;
      default:
        if (pos < s.size()) s.erase(s.begin() + pos);
    }
  }
  return s;
}

const std::u32string kBinary = U"ab";
const std::u32string kDna = U"ACGT";
const std::u32string kAscii = [] {
  std::u32string s;
  for (char32_t c = 0x20; c < 0x7F; ++c) s += c;
  return s;
}();
// Mixed scripts plus astral code points, so the hash-map half of the match masks gets exercised.
const std::u32string kUnicode = U"aé中文字ñ€😀𝄞Ωж ";
const std::u32string kLarge = [] {  // far more distinct code points than one 64-row block
  std::u32string s;
  for (char32_t c = 0x4E00; c < 0x4E00 + 500; ++c) s += c;
  return s;
}();

TEST(Levenshtein, MatchesDpOnRandomStrings) {
  std::mt19937_64 rng(1234);
  const std::vector<const std::u32string*> alphabets = {&kBinary, &kDna, &kAscii, &kUnicode,
                                                        &kLarge};
  std::uniform_int_distribution<size_t> len(0, 300);
  int checked = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    const auto& alphabet = *alphabets[trial % alphabets.size()];
    const std::u32string a = random_string(rng, len(rng), alphabet);
    // Half unrelated pairs (distance near max), half near-copies (the case eval sees).
    const std::u32string b = trial % 2 ? random_string(rng, len(rng), alphabet)
                                       : mutate(rng, a, int(rng() % 20), alphabet);
    const int64_t want = levenshtein_dp(a, b);
    ASSERT_EQ(levenshtein(a, b), want)
        << "trial " << trial << " |a|=" << a.size() << " |b|=" << b.size();
    ASSERT_EQ(levenshtein(b, a), want) << "symmetry, trial " << trial;
    ++checked;
  }
  EXPECT_EQ(checked, 4000);
}

TEST(Levenshtein, BlockBoundaryLengths) {
  std::mt19937_64 rng(99);
  for (size_t n : {1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 256, 257}) {
    for (size_t m : {size_t(0), size_t(1), n - 1, n, n + 1, 2 * n + 3}) {
      for (const auto* alphabet : {&kBinary, &kUnicode}) {
        const std::u32string a = random_string(rng, n, *alphabet);
        const std::u32string b = random_string(rng, m, *alphabet);
        ASSERT_EQ(levenshtein(a, b), levenshtein_dp(a, b)) << "n=" << n << " m=" << m;
        const std::u32string c = mutate(rng, a, 3, *alphabet);
        ASSERT_EQ(levenshtein(a, c), levenshtein_dp(a, c)) << "n=" << n << " near copy";
      }
    }
  }
}

TEST(Levenshtein, EdgeCases) {
  EXPECT_EQ(levenshtein(U"", U""), 0);
  EXPECT_EQ(levenshtein(U"", U"abc"), 3);
  EXPECT_EQ(levenshtein(U"abc", U""), 3);
  EXPECT_EQ(levenshtein(U"kitten", U"sitting"), 3);
  EXPECT_EQ(levenshtein(U"flaw", U"lawn"), 2);
  EXPECT_EQ(levenshtein(U"中文", U"中国文"), 1);
  for (size_t n : {63, 64, 65, 128, 129}) {
    const std::u32string a(n, U'x');
    EXPECT_EQ(levenshtein(a, a), 0) << n;
    EXPECT_EQ(levenshtein(a, std::u32string(n, U'y')), int64_t(n)) << n;
    std::u32string b = a;
    b[n / 2] = U'é';
    EXPECT_EQ(levenshtein(a, b), 1) << n;
    EXPECT_EQ(levenshtein(a, a.substr(1)), 1) << n;
    EXPECT_EQ(levenshtein(a + U"z", U"z" + a), 2) << n;
  }
}

TEST(Levenshtein, LongNearCopies) {
  // Checks the multi-block path at eval sizes against the DP (which is still fast at 3k).
  std::mt19937_64 rng(7);
  for (size_t n : {1000, 3000}) {
    const std::u32string a = random_string(rng, n, kAscii);
    const std::u32string b = mutate(rng, a, int(n / 50), kAscii);
    EXPECT_EQ(levenshtein(a, b), levenshtein_dp(a, b)) << n;
  }
}

TEST(Utf8, DecodesValidText) {
  EXPECT_EQ(utf8_to_u32(""), U"");
  EXPECT_EQ(utf8_to_u32("abc"), U"abc");
  EXPECT_EQ(utf8_to_u32("h\xC3\xA9llo"), U"héllo");
  EXPECT_EQ(utf8_to_u32("\xE4\xB8\xAD\xE6\x96\x87"), U"中文");
  EXPECT_EQ(utf8_to_u32("\xF0\x9F\x98\x80"), U"😀");
  EXPECT_EQ(utf8_to_u32("\xF4\x8F\xBF\xBF"), std::u32string(1, 0x10FFFF));
  EXPECT_EQ(utf8_to_u32(std::string("a\0b", 3)), std::u32string(U"a\0b", 3));
}

TEST(Utf8, ReplacesInvalidBytesLikePython) {
  const std::u32string r(1, 0xFFFD);
  EXPECT_EQ(utf8_to_u32("\x80"), r);  // lone continuation
  EXPECT_EQ(utf8_to_u32("a\xFF"
                        "b"),
            U"a" + r + U"b");                                 // never-valid byte
  EXPECT_EQ(utf8_to_u32("\xC0\xAF"), r + r);                  // overlong lead C0
  EXPECT_EQ(utf8_to_u32("\xE0\x80\xAF"), r + r + r);          // overlong 3-byte
  EXPECT_EQ(utf8_to_u32("\xED\xA0\x80"), r + r + r);          // surrogate D800
  EXPECT_EQ(utf8_to_u32("\xF4\x90\x80\x80"), r + r + r + r);  // > U+10FFFF
  EXPECT_EQ(utf8_to_u32("\xE4\xB8"), r);                      // truncated at the end
  EXPECT_EQ(utf8_to_u32("\xE4\xB8x"), r + U"x");              // truncated mid-text
  EXPECT_EQ(utf8_to_u32("\xF0\x9F\x98"), r);                  // one maximal subpart, one U+FFFD
  EXPECT_EQ(utf8_to_u32("\xC3\xC3\xA9"), r + U"é");           // bad byte starts the next one
}

TEST(Utf8, NeverCrashesOnRandomBytes) {
  std::mt19937_64 rng(42);
  for (int t = 0; t < 2000; ++t) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s) c = char(rng() & 0xFF);
    const std::u32string u = utf8_to_u32(s);
    EXPECT_LE(u.size(), s.size());
    for (char32_t c : u) EXPECT_TRUE(c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF));
  }
}

TEST(TextMetrics, CharPrecision) {
  EXPECT_DOUBLE_EQ(char_precision("", ""), 1.0);
  EXPECT_DOUBLE_EQ(char_precision("abc", ""), 0.0);
  EXPECT_DOUBLE_EQ(char_precision("", "abc"), 0.0);
  EXPECT_DOUBLE_EQ(char_precision("abcd", "abcd"), 1.0);
  EXPECT_DOUBLE_EQ(char_precision("abcd", "abce"), 0.75);
  EXPECT_DOUBLE_EQ(char_precision("ab", "abcd"), 0.5);
  // Code points, not bytes: one substituted CJK char out of four is 75%, not 1 - 3/12.
  EXPECT_DOUBLE_EQ(char_precision("中文字符", "中文字母"), 0.75);
  EXPECT_DOUBLE_EQ(char_precision("xyz", "abc"), 0.0);
}

TEST(TextMetrics, ExactMatchIsByteEquality) {
  EXPECT_TRUE(exact_match("", ""));
  EXPECT_TRUE(exact_match("a b", "a b"));
  EXPECT_FALSE(exact_match("a b ", "a b"));
  EXPECT_FALSE(exact_match("A b", "a b"));
}

TEST(TextMetrics, WordPrecision) {
  EXPECT_DOUBLE_EQ(word_precision("", ""), 1.0);
  EXPECT_DOUBLE_EQ(word_precision("  \n", "\t "), 1.0);
  EXPECT_DOUBLE_EQ(word_precision("x", "  "), 0.0);
  EXPECT_DOUBLE_EQ(word_precision("", "a b"), 0.0);
  EXPECT_DOUBLE_EQ(word_precision("the cat sat", "the cat sat"), 1.0);
  // Distinct words of ref: {the, cat, sat, mat}; pred has the, cat, mat.
  EXPECT_DOUBLE_EQ(word_precision("the cat on the mat", "the cat sat the mat"), 0.75);
  // Order and repetition do not matter; punctuation sticks to its word.
  EXPECT_DOUBLE_EQ(word_precision("b a a", "a b"), 1.0);
  EXPECT_DOUBLE_EQ(word_precision("end", "end."), 0.0);
  // Unicode whitespace separates words (NBSP, ideographic space, line separator).
  EXPECT_DOUBLE_EQ(word_precision("a b c", "a\u00A0b\u3000c"), 1.0);
  EXPECT_DOUBLE_EQ(word_precision("中文 字", "中文\u2028字"), 1.0);
}

TEST(TextMetrics, ScorePassage) {
  const PassageScore s = score_passage("hello world", "hello world");
  EXPECT_DOUBLE_EQ(s.char_precision, 1.0);
  EXPECT_DOUBLE_EQ(s.word_precision, 1.0);
  EXPECT_TRUE(s.exact);
  EXPECT_TRUE(std::isnan(s.token_accuracy));
  const PassageScore t = score_passage("hello word", "hello world");
  EXPECT_NEAR(t.char_precision, 1 - 1.0 / 11, 1e-12);
  EXPECT_DOUBLE_EQ(t.word_precision, 0.5);
  EXPECT_FALSE(t.exact);
}

TEST(BinStats, MeansRatioAndJson) {
  BinStats b("64-128", 64, 128, 32);
  EXPECT_TRUE(std::isnan(b.char_precision()));
  PassageScore s1{1.0, 1.0, true, 0.9};
  PassageScore s2{0.5, 0.25, false};  // token accuracy not computed
  b.add(s1, 80);
  b.add(s2, 100);
  b.seconds = 2.5;
  EXPECT_EQ(b.n, 2);
  EXPECT_DOUBLE_EQ(b.mean_tokens(), 90.0);
  EXPECT_DOUBLE_EQ(b.ratio(), 90.0 / 32);
  EXPECT_DOUBLE_EQ(b.char_precision(), 0.75);
  EXPECT_DOUBLE_EQ(b.word_precision(), 0.625);
  EXPECT_DOUBLE_EQ(b.exact_match(), 0.5);
  EXPECT_DOUBLE_EQ(b.token_accuracy(), 0.9);  // over the passages that have one

  const auto j = b.to_json();
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  const std::vector<std::string> want = {"bin",
                                         "n",
                                         "mean_tokens",
                                         "latents",
                                         "ratio",
                                         "char_precision",
                                         "char_precision_ci95",
                                         "exact_match",
                                         "word_precision",
                                         "token_accuracy",
                                         "seconds"};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(j["bin"], "64-128");
  EXPECT_EQ(j["n"], 2);
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 90.0 / 32);
  EXPECT_DOUBLE_EQ(j["exact_match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 2.5);

  // NaN is not JSON: an empty bin and an uncomputed token accuracy write null.
  BinStats empty("128-256", 128, 256, 32);
  empty.add(s2, 130);
  EXPECT_TRUE(empty.to_json()["token_accuracy"].is_null());
  EXPECT_TRUE(BinStats("1-2", 1, 2, 32).to_json()["char_precision"].is_null());
}

}  // namespace
}  // namespace c3::eval
