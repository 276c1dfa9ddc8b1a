// Tests of the training data pipeline: length distributions, passage cutting, and the DataLoader's
// determinism, resume, sharding, streaming and errors, on synthetic corpora written here.
#include <gtest/gtest.h>
#include <lzma.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "testdata.h"
#include "tokenizer/bpe_tokenizer.h"
#include "train/data_loader.h"
#include "train/passage_sampler.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace c3::train {
namespace {

namespace fs = std::filesystem;
using tokenizer::BpeTokenizer;

const BpeTokenizer& tiny_bpe() {
  static const BpeTokenizer tok =
      BpeTokenizer::from_file(test::testdata("c3/c3-tiny/tokenizer.json").string());
  return tok;
}

// ---------------------------------------------------------------------------------------------
// Synthetic text

// Prose-like text: words from syllables, some non-ASCII, punctuation, paragraphs.
std::string make_doc(uint64_t seed, int n_words) {
  static const char* syll[] = {"ka", "lo", "mi", "the", "and", "ter", "pro", "ven", "sa", "qu",
                               "is", "on", "ro", "be",  "at",  "ex",  "ul",  "dor", "fi", "ne"};
  static const char* special[] = {"naïve",    "café", "Ελληνικά", "東京",  "straße", "🙂",
                                  "«quoted»", "1997", "e.g.",     "don't", "x-ray",  "Œuvre"};
  Rng rng(seed);
  std::string s;
  for (int i = 0; i < n_words; ++i) {
    if (i > 0) {
      double u = rng.uniform();
      s += u < 0.04 ? "\n\n" : u < 0.05 ? "\n" : u < 0.06 ? "  " : " ";
    }
    if (rng.uniform() < 0.08) {
      s += special[rng.uniform_int(0, 11)];
    } else {
      int n = static_cast<int>(rng.uniform_int(1, 3));
      std::string w;
      for (int k = 0; k < n; ++k) w += syll[rng.uniform_int(0, 19)];
      if (rng.uniform() < 0.1) w[0] = static_cast<char>(w[0] - 'a' + 'A');
      s += w;
    }
    double p = rng.uniform();
    if (p < 0.06)
      s += ".";
    else if (p < 0.09)
      s += ",";
    else if (p < 0.10)
      s += ";";
  }
  return s;
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n;
  }
  return true;
}

bool starts_or_ends_with_space(const std::string& s) {
  auto sp = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  return !s.empty() && (sp(s.front()) || sp(s.back()));
}

// ---------------------------------------------------------------------------------------------
// Corpus files

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("c3_train_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(count_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    c3::remove_tree(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int count_ = 0;
};

void write_file(const std::string& path, const std::string& bytes) {
  if (path.size() > 3 && path.substr(path.size() - 3) == ".xz") {
    std::vector<uint8_t> out(lzma_stream_buffer_bound(bytes.size()));
    size_t pos = 0;
    lzma_ret r = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr,
                                         reinterpret_cast<const uint8_t*>(bytes.data()),
                                         bytes.size(), out.data(), &pos, out.size());
    ASSERT_EQ(r, LZMA_OK);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<char*>(out.data()), pos);
  } else {
    std::ofstream(path, std::ios::binary) << bytes;
  }
}

// Writes n_docs documents of 30-400 words as JSON lines; returns the texts.
std::vector<std::string> write_corpus(const std::string& path, uint64_t seed, int n_docs) {
  std::vector<std::string> docs;
  std::string bytes;
  Rng rng(seed);
  for (int i = 0; i < n_docs; ++i) {
    docs.push_back(make_doc(rng.next(), static_cast<int>(rng.uniform_int(30, 400))));
    bytes += nlohmann::json{{"text", docs.back()}, {"source", "test"}}.dump() + "\n";
    if (i % 7 == 3) bytes += "\n";  // blank lines are skipped
  }
  write_file(path, bytes);
  return docs;
}

struct Corpus {
  TempDir dir;
  std::vector<std::string> files;
  std::vector<std::string> docs;
};

// Three files (the middle one xz) of 40 documents each.
std::unique_ptr<Corpus> make_corpus(int docs_per_file = 40) {
  auto c = std::make_unique<Corpus>();
  const char* names[] = {"part-0.jsonl", "part-1.jsonl.xz", "part-2.jsonl"};
  for (int f = 0; f < 3; ++f) {
    c->files.push_back(c->dir.file(names[f]));
    auto d = write_corpus(c->files.back(), 100 + f, docs_per_file);
    c->docs.insert(c->docs.end(), d.begin(), d.end());
  }
  return c;
}

DataOptions small_options(const Corpus& c) {
  DataOptions o;
  o.files = c.files;
  o.lengths = LengthDist::parse("uniform:16-128");
  o.batch_size = 4;
  o.bucket_docs = 10;  // chunks of 12 passages: several chunks per file
  o.seed = 7;
  o.n_threads = 2;
  return o;
}

std::vector<Batch> take(DataLoader& dl, int n) {
  std::vector<Batch> out;
  for (int i = 0; i < n; ++i) out.push_back(dl.next());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].epoch, b[i].epoch) << "batch " << i;
    ASSERT_EQ(a[i].chunk, b[i].chunk) << "batch " << i;
    ASSERT_EQ(a[i].index, b[i].index) << "batch " << i;
    ASSERT_EQ(a[i].passages.size(), b[i].passages.size()) << "batch " << i;
    for (size_t j = 0; j < a[i].passages.size(); ++j) {
      ASSERT_EQ(a[i].passages[j].text, b[i].passages[j].text) << "batch " << i << " row " << j;
      ASSERT_EQ(a[i].passages[j].ids, b[i].passages[j].ids) << "batch " << i << " row " << j;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rng and LengthDist

TEST(Rng, KeyedStreamsAreReproducibleAndDistinct) {
  Rng a = Rng::keyed({1, 2, 3}), b = Rng::keyed({1, 2, 3}), c = Rng::keyed({1, 3, 2});
  uint64_t a0 = a.next();
  EXPECT_EQ(a0, b.next());
  EXPECT_NE(a0, c.next());
  EXPECT_NE(Rng::keyed({0}).next(), Rng::keyed({0, 0}).next());
  Rng r(5);
  for (int i = 0; i < 10000; ++i) {
    int64_t x = r.uniform_int(-3, 3);
    ASSERT_GE(x, -3);
    ASSERT_LE(x, 3);
    double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(LengthDist, ParsesSpecs) {
  LengthDist u = LengthDist::parse("uniform:64-1280");
  EXPECT_EQ(u.kind, LengthDist::Uniform);
  EXPECT_EQ(u.lo, 64);
  EXPECT_EQ(u.hi, 1280);
  EXPECT_EQ(u.str(), "uniform:64-1280");
  LengthDist l = LengthDist::parse("loguniform:32-1280");
  EXPECT_EQ(l.kind, LengthDist::LogUniform);
  EXPECT_EQ(l.lo, 32);
  EXPECT_EQ(l.hi, 1280);
  EXPECT_EQ(l.str(), "loguniform:32-1280");
  LengthDist f = LengthDist::parse("fixed:64");
  EXPECT_EQ(f.kind, LengthDist::Fixed);
  EXPECT_EQ(f.lo, 64);
  EXPECT_EQ(f.hi, 64);
  EXPECT_EQ(LengthDist::parse(f.str()).str(), "fixed:64");
}

TEST(LengthDist, RejectsBadSpecsClearly) {
  for (std::string bad :
       {"", "uniform", "uniform:64", "uniform:x-10", "gauss:1-2", "fixed:0", "uniform:100-10",
        "fixed:-5", "uniform:64-1280x", "uniform:0-10", "loguniform:-1-5", "fixed:64-128"}) {
    try {
      LengthDist::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("'" + bad + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("uniform:64-1280"), std::string::npos) << "no example in: " << msg;
    }
  }
}

TEST(LengthDist, SamplesStayInBoundsWithTheRightShape) {
  Rng rng(11);
  LengthDist u = LengthDist::parse("uniform:64-1280"), l = LengthDist::parse("loguniform:32-1280");
  double sum = 0;
  std::vector<int64_t> logs;
  for (int i = 0; i < 20000; ++i) {
    int64_t x = u.sample(rng), y = l.sample(rng);
    ASSERT_GE(x, 64);
    ASSERT_LE(x, 1280);
    ASSERT_GE(y, 32);
    ASSERT_LE(y, 1280);
    sum += x;
    logs.push_back(y);
  }
  EXPECT_NEAR(sum / 20000, (64 + 1280) / 2.0, 15.0);
  std::nth_element(logs.begin(), logs.begin() + 10000, logs.end());
  EXPECT_NEAR(static_cast<double>(logs[10000]), std::sqrt(32.0 * 1281.0), 12.0);  // log-median

  std::set<int64_t> seen;  // both ends are reachable
  LengthDist small = LengthDist::parse("uniform:3-5"), lsmall = LengthDist::parse("loguniform:3-5");
  std::set<int64_t> lseen;
  for (int i = 0; i < 1000; ++i) {
    seen.insert(small.sample(rng));
    lseen.insert(lsmall.sample(rng));
  }
  EXPECT_EQ(seen, (std::set<int64_t>{3, 4, 5}));
  EXPECT_EQ(lseen, (std::set<int64_t>{3, 4, 5}));
  LengthDist f = LengthDist::parse("fixed:64");
  for (int i = 0; i < 100; ++i) ASSERT_EQ(f.sample(rng), 64);
}

// ---------------------------------------------------------------------------------------------
// Cutting passages

void check_passage(const BpeTokenizer& tok, const std::string& doc, const Passage& p,
                   int64_t target) {
  ASSERT_LE(p.n_tokens(), target);
  ASSERT_EQ(tok.encode(p.text), p.ids) << "text does not re-tokenize to ids: " << p.text;
  ASSERT_EQ(p.text, doc.substr(p.begin, p.end - p.begin));
  ASSERT_TRUE(valid_utf8(p.text));
  ASSERT_FALSE(starts_or_ends_with_space(p.text)) << "[" << p.text << "]";
  if (p.text.empty()) return;
  ASSERT_TRUE(is_word_start(doc, p.begin)) << "starts mid-word at " << p.begin << ": " << p.text;
  if (is_word_end(doc, p.end)) return;
  // Only a first word longer than the target may be cut inside, between characters.
  size_t e = p.end;
  while (e < doc.size() && !is_word_end(doc, e)) ++e;
  ASSERT_GT(static_cast<int64_t>(tok.encode(doc.substr(p.begin, e - p.begin)).size()), target)
      << "ends mid-word at " << p.end << ": " << p.text;
}

// Tokens of the longest word: no cut can get closer to its target than that.
int64_t longest_word(const BpeTokenizer& tok, const std::string& doc) {
  int64_t m = 0;
  for (size_t b = 0; b < doc.size(); ++b) {
    if (!is_word_start(doc, b)) continue;
    size_t e = b + 1;
    while (e < doc.size() && !is_word_end(doc, e)) ++e;
    m = std::max(m, static_cast<int64_t>(tok.encode(doc.substr(b, e - b)).size()));
  }
  return m;
}

TEST(CutPassage, CutsAtWordBoundariesCloseToTheTarget) {
  const auto& tok = tiny_bpe();
  std::string doc = make_doc(3, 2500);  // several thousand tokens
  ASSERT_GT(static_cast<int64_t>(tok.encode(doc).size()), 4000);
  const int64_t word = longest_word(tok, doc);
  std::set<size_t> starts;
  for (int64_t target : {1, 8, 33, 64, 200, 777, 1280}) {
    for (uint64_t seed = 0; seed < 12; ++seed) {
      Passage p = cut_passage(tok, doc, target, seed);
      SCOPED_TRACE("target " + std::to_string(target) + " seed " + std::to_string(seed));
      check_passage(tok, doc, p, target);
      if (target >= 10 * word) {
        EXPECT_GE(p.n_tokens(), 0.9 * target);
      }
      EXPECT_GE(p.n_tokens(), std::min<int64_t>(target, target - word + 1));
      starts.insert(p.begin);
      Passage again = cut_passage(tok, doc, target, seed);
      EXPECT_EQ(again.begin, p.begin);
      EXPECT_EQ(again.ids, p.ids);
    }
  }
  EXPECT_GT(starts.size(), 50u) << "starts are not spread over the document";
}

TEST(CutPassage, FromAStartIsTheLongestFit) {
  const auto& tok = tiny_bpe();
  std::string doc = make_doc(4, 800);
  for (int64_t target : {1, 5, 20, 100, 400}) {
    for (size_t begin = 0; begin < doc.size(); begin += doc.size() / 7) {
      size_t b = begin;
      while (b < doc.size() && !is_word_start(doc, b)) ++b;
      if (b >= doc.size()) continue;
      Passage p = cut_passage_from(tok, doc, b, target);
      SCOPED_TRACE("target " + std::to_string(target) + " begin " + std::to_string(b));
      check_passage(tok, doc, p, target);
      ASSERT_EQ(p.begin, b);
      // The next word end would not fit.
      size_t e = p.end + 1;
      while (e < doc.size() && !is_word_end(doc, e)) ++e;
      if (p.end < doc.size() && p.n_tokens() > 0) {
        EXPECT_GT(static_cast<int64_t>(tok.encode(doc.substr(b, e - b)).size()), target);
      }
    }
  }
}

TEST(CutPassage, ShortDocumentGivesItsTrimmedText) {
  const auto& tok = tiny_bpe();
  std::string doc = " \n  Hello there, naïve world.\n\nSecond line.  \n";
  for (uint64_t seed = 0; seed < 5; ++seed) {
    Passage p = cut_passage(tok, doc, 1000, seed);
    EXPECT_EQ(p.text, "Hello there, naïve world.\n\nSecond line.");
    EXPECT_EQ(tok.encode(p.text), p.ids);
  }
  EXPECT_TRUE(cut_passage(tok, "   \n ", 100, 1).text.empty());
  EXPECT_TRUE(cut_passage(tok, "", 100, 1).ids.empty());
}

TEST(CutPassage, NeverBreaksUtf8OrWordsInNonAsciiText) {
  const auto& tok = tiny_bpe();
  // Greek and accented words with spaces, and CJK runs without spaces (each character a word).
  std::string doc;
  for (int i = 0; i < 60; ++i)
    doc +=
        "Ελληνικά κείμενα ñandú façade 東京都の天気は晴れです。日本語のテキスト "
        "🙂🙂 "
        "Straßenbahn über Œuvre.\n";
  const int64_t word = longest_word(tok, doc);
  for (int64_t target : {3, 7, 16, 50, 120, 400}) {
    for (uint64_t seed = 0; seed < 10; ++seed) {
      Passage p = cut_passage(tok, doc, target, seed);
      SCOPED_TRACE("target " + std::to_string(target) + " seed " + std::to_string(seed));
      check_passage(tok, doc, p, target);
      if (target >= 4) {  // a character is at most 4 byte tokens
        EXPECT_GT(p.n_tokens(), 0);
      }
      EXPECT_GE(p.n_tokens(), target - word + 1);
    }
  }
}

TEST(CutPassage, AWordLongerThanTheTargetIsCutBetweenCharacters) {
  const auto& tok = tiny_bpe();
  std::string doc = "é" + std::string(3000, 'x') + "ü tail";
  Passage p = cut_passage_from(tok, doc, 0, 10);
  EXPECT_GT(p.n_tokens(), 0);
  EXPECT_LE(p.n_tokens(), 10);
  EXPECT_EQ(tok.encode(p.text), p.ids);
  EXPECT_TRUE(valid_utf8(p.text));
  EXPECT_EQ(p.text, doc.substr(0, p.text.size()));
}

TEST(CutPassage, InRangeForEvalBins) {
  const auto& tok = tiny_bpe();
  std::string doc = make_doc(5, 1500);
  for (auto [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{{50, 60}, {100, 150}, {600, 700}}) {
    for (uint64_t seed = 0; seed < 8; ++seed) {
      auto p = cut_passage_in_range(tok, doc, lo, hi, seed);
      ASSERT_TRUE(p.has_value()) << lo << "-" << hi << " seed " << seed;
      EXPECT_GE(p->n_tokens(), lo);
      EXPECT_LT(p->n_tokens(), hi);
      check_passage(tok, doc, *p, hi - 1);
    }
  }
  EXPECT_FALSE(cut_passage_in_range(tok, "Too short a text.", 50, 60, 1).has_value());
  EXPECT_THROW(cut_passage_in_range(tok, doc, 60, 60, 1), Error);
}

// ---------------------------------------------------------------------------------------------
// DataLoader

TEST(DataLoader, SameSeedSameBatchesWhateverTheThreadCount) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  o.n_threads = 1;
  DataLoader one(tiny_bpe(), o);
  o.n_threads = 3;
  DataLoader three(tiny_bpe(), o);
  auto a = take(one, 75), b = take(three, 75);  // 2.5 epochs of 30 batches
  expect_same(a, b);
  EXPECT_EQ(a.back().epoch, 2);

  o.seed = 8;
  DataLoader other(tiny_bpe(), o);
  auto d = take(other, 5);
  int same = 0;
  for (int i = 0; i < 5; ++i) same += d[i].passages[0].text == a[i].passages[0].text;
  EXPECT_LT(same, 5) << "a different seed gave the same batches";

  // Epochs differ from each other (new starts, lengths, order), and every batch is full.
  std::set<std::string> first_epoch;
  for (const auto& b : a) {
    ASSERT_EQ(b.passages.size(), 4u);
    if (b.epoch == 0) first_epoch.insert(b.passages[0].text);
  }
  int repeated = 0;
  for (const auto& b : a) repeated += b.epoch == 1 && first_epoch.count(b.passages[0].text);
  EXPECT_LT(repeated, 5);
}

TEST(DataLoader, BatchesAreBucketedByLengthAndCoverTheEpoch) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  DataLoader dl(tiny_bpe(), o);
  int64_t n_epoch0 = 0;
  double spread_in_batch = 0, spread_random = 0;
  std::vector<int64_t> all_lengths;
  std::multiset<std::string> seen;
  for (;;) {
    Batch b = dl.next();
    if (b.epoch > 0) break;
    n_epoch0 += static_cast<int64_t>(b.passages.size());
    for (size_t i = 1; i < b.passages.size(); ++i)
      ASSERT_LE(b.passages[i - 1].n_tokens(), b.passages[i].n_tokens()) << "rows not sorted";
    spread_in_batch += b.max_len() - b.passages[0].n_tokens();
    for (const auto& p : b.passages) {
      ASSERT_LE(p.n_tokens(), 128);
      ASSERT_GE(p.n_tokens(), 1);
      all_lengths.push_back(p.n_tokens());
      seen.insert(p.text);
    }
  }
  // 120 documents, all long enough: 120 passages (a multiple of the batch size).
  EXPECT_EQ(n_epoch0, 120);
  EXPECT_EQ(seen.size(), 120u) << "some passage came twice in one epoch";
  // Each passage comes from its own document.
  for (const auto& text : seen) {
    int found = 0;
    for (const auto& d : c->docs) found += d.find(text) != std::string::npos;
    EXPECT_GE(found, 1);
  }
  // Bucketing: the length spread inside a batch is far below that of random groups of 4.
  Rng rng(1);
  for (size_t i = 0; i < all_lengths.size() / 4; ++i) {
    int64_t lo = 1 << 30, hi = 0;
    for (int k = 0; k < 4; ++k) {
      int64_t x = all_lengths[rng.uniform_int(0, all_lengths.size() - 1)];
      lo = std::min(lo, x);
      hi = std::max(hi, x);
    }
    spread_random += hi - lo;
  }
  EXPECT_LT(spread_in_batch * 2, spread_random);
}

TEST(DataLoader, ResumeGivesTheSameBatches) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  for (int cut : {0, 1, 13, 29, 30, 31, 64}) {  // fresh, mid-chunk, chunk and epoch boundaries
    SCOPED_TRACE("resume after " + std::to_string(cut) + " batches");
    DataLoader a(tiny_bpe(), o);
    take(a, cut);
    nlohmann::json saved = nlohmann::json::parse(a.state().dump());  // as a checkpoint would
    auto expected = take(a, 40);

    o.n_threads = 3;  // the thread count is not part of the state
    DataLoader b(tiny_bpe(), o);
    take(b, 3);  // a loader that already moved is repositioned too
    b.restore(saved);
    expect_same(take(b, 40), expected);
    o.n_threads = 2;
  }
}

TEST(DataLoader, ResumeMidDocumentWithSplitDocs) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  o.split_docs = true;
  o.lengths = LengthDist::parse("loguniform:8-64");
  o.bucket_docs = 9;  // not a multiple of passages per document: chunks end mid-document
  DataLoader a(tiny_bpe(), o);
  bool saw_skip = false;
  for (int i = 0; i < 60; ++i) {
    nlohmann::json s = a.state();
    saw_skip |= s["skip"].get<int64_t>() > 0;
    Batch b = a.next();
    if (i % 11 != 5) continue;
    auto expected = take(a, 12);
    DataLoader r(tiny_bpe(), o);
    r.restore(s);
    auto got = take(r, 13);
    ASSERT_EQ(got.front().passages[0].text, b.passages[0].text);
    expect_same(std::vector<Batch>(got.begin() + 1, got.end()), expected);
  }
  EXPECT_TRUE(saw_skip) << "no chunk ended mid-document; the test does not test that";

  // Split passages cover the documents back to back: over an epoch, they hold every non-space
  // byte of the corpus once, less the last partial batch.
  auto non_space = [](const std::string& s) {
    return std::count_if(s.begin(), s.end(), [](char ch) { return !std::isspace(ch); });
  };
  int64_t corpus = 0, covered = 0;
  for (const auto& doc : c->docs) corpus += non_space(doc);
  DataLoader d(tiny_bpe(), o);
  for (Batch b = d.next(); b.epoch == 0; b = d.next())
    for (const auto& p : b.passages) {
      EXPECT_LE(p.n_tokens(), 64);
      EXPECT_EQ(tiny_bpe().encode(p.text), p.ids);
      covered += non_space(p.text);
    }
  EXPECT_LE(covered, corpus);
  EXPECT_GE(covered, corpus - 3 * 64 * 8);
}

TEST(DataLoader, RestoreRejectsOtherOptions) {
  auto c = make_corpus(10);
  DataOptions o = small_options(*c);
  DataLoader a(tiny_bpe(), o);
  a.next();
  nlohmann::json s = a.state();
  o.batch_size = 8;
  DataLoader b(tiny_bpe(), o);
  try {
    b.restore(s);
    ADD_FAILURE() << "restored a state saved with another batch size";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("batch_size=4"), std::string::npos) << e.what();
  }
  o.batch_size = 4;
  DataLoader ok(tiny_bpe(), o);
  EXPECT_NO_THROW(ok.restore(s));
  EXPECT_THROW(ok.restore(nlohmann::json{{"epoch", 1}}), Error);
}

TEST(DataLoader, RanksSplitEachGlobalBatch) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  DataLoader whole(tiny_bpe(), o);
  o.world_size = 2;
  o.rank = 0;
  DataLoader r0(tiny_bpe(), o);
  o.rank = 1;
  DataLoader r1(tiny_bpe(), o);
  for (int i = 0; i < 70; ++i) {
    Batch g = whole.next(), a = r0.next(), b = r1.next();
    ASSERT_EQ(g.n_global, 4);
    ASSERT_EQ(a.n_global, 4);
    ASSERT_EQ(a.passages.size(), 2u);
    ASSERT_EQ(b.passages.size(), 2u);
    EXPECT_EQ(a.passages[0].text, g.passages[0].text);
    EXPECT_EQ(b.passages[0].text, g.passages[1].text);
    EXPECT_EQ(a.passages[1].text, g.passages[2].text);
    EXPECT_EQ(b.passages[1].text, g.passages[3].text);
    EXPECT_EQ(a.passages[1].ids, g.passages[2].ids);
  }
  // A state saved by one rank restores the other (and any world size in fixed-size mode).
  nlohmann::json s = r1.state();
  auto next_whole = take(whole, 3);
  DataLoader w(tiny_bpe(), small_options(*c));
  w.restore(s);
  expect_same(take(w, 3), next_whole);
}

TEST(DataLoader, TokenBudgetBatches) {
  auto c = make_corpus();
  DataOptions o = small_options(*c);
  o.batch_size = 0;
  o.max_batch_tokens = 300;
  o.bucket_docs = 40;
  o.world_size = 2;
  DataLoader r0(tiny_bpe(), o);
  o.rank = 1;
  DataLoader r1(tiny_bpe(), o);
  int64_t rows = 0;
  for (int i = 0; i < 50; ++i) {
    Batch a = r0.next(), b = r1.next();
    ASSERT_EQ(a.n_global % 2, 0);
    ASSERT_EQ(a.passages.size(), b.passages.size());
    ASSERT_EQ(a.index, b.index);
    int64_t longest = std::max(a.max_len(), b.max_len());
    if (a.n_global > 2) {
      EXPECT_LE(a.n_global * longest, 300);
    }
    for (size_t k = 0; k < a.passages.size(); ++k)
      EXPECT_NE(a.passages[k].text, b.passages[k].text);
    rows += a.n_global;
  }
  EXPECT_GT(rows, 50 * 2) << "batches never grew beyond the minimum";
}

TEST(DataLoader, StreamsWithBoundedMemoryOverPlainAndXzFiles) {
  auto c = make_corpus(200);  // 600 documents
  DataOptions o = small_options(*c);
  o.bucket_docs = 8;
  DataLoader dl(tiny_bpe(), o);
  dl.next();
  EXPECT_LE(dl.docs_read(), 3 * 8 + 8) << "read far ahead of the chunk being consumed";
  int64_t passages = 0;
  for (;;) {
    Batch b = dl.next();
    if (b.epoch > 0) break;
    passages += static_cast<int64_t>(b.passages.size());
    ASSERT_LE(dl.docs_read(), passages + 4 + 3 * 8);
  }
  EXPECT_EQ(passages + 4, 600);  // all three files, the xz one included

  // The xz file reads the same as its plain twin.
  std::string plain = c->dir.file("part-1-plain.jsonl");
  write_corpus(plain, 101, 200);
  DataOptions p = small_options(*c);
  p.files[1] = plain;
  DataLoader xz(tiny_bpe(), small_options(*c)), txt(tiny_bpe(), p);
  expect_same(take(xz, 40), take(txt, 40));
}

TEST(DataLoader, BadJsonLinesNameFileAndLine) {
  TempDir dir;
  std::string good = nlohmann::json{{"text", make_doc(1, 100)}}.dump();
  struct Case {
    std::string name, body, where, what;
  };
  std::vector<Case> cases = {
      {"bad.jsonl", good + "\n" + good + "\n{not json\n", "bad.jsonl:3", "JSON"},
      {"notext.jsonl.xz", good + "\n{\"txt\": \"x\"}\n", "notext.jsonl.xz:2", "\"text\""},
      {"number.jsonl", "\n" + good + "\n{\"text\": 5}\n", "number.jsonl:3", "\"text\""},
  };
  for (const auto& k : cases) {
    std::string path = dir.file(k.name);
    write_file(path, k.body);
    DataOptions o;
    o.files = {path};
    o.batch_size = 1;
    o.lengths = LengthDist::parse("fixed:16");
    DataLoader dl(tiny_bpe(), o);
    try {
      for (int i = 0; i < 10; ++i) dl.next();
      ADD_FAILURE() << k.name << ": no error";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(k.where), std::string::npos) << msg;
      EXPECT_NE(msg.find(k.what), std::string::npos) << msg;
    }
  }
}

TEST(DataLoader, RejectsBadOptions) {
  auto c = make_corpus(5);
  DataOptions o = small_options(*c);
  o.world_size = 3;  // 4 rows do not split over 3 ranks
  EXPECT_THROW((DataLoader{tiny_bpe(), o}), Error);
  o = small_options(*c);
  o.files.push_back(c->dir.file("missing.jsonl"));
  try {
    DataLoader dl(tiny_bpe(), o);
    ADD_FAILURE() << "accepted a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jsonl"), std::string::npos) << e.what();
  }
  o = small_options(*c);
  o.batch_size = 0;
  EXPECT_THROW((DataLoader{tiny_bpe(), o}), Error);
  o = small_options(*c);
  o.batch_size = 64;  // 15 documents never make a batch
  DataLoader dl(tiny_bpe(), o);
  EXPECT_THROW(dl.next(), Error);
}

}  // namespace
}  // namespace c3::train
