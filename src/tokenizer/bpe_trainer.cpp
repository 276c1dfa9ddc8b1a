// Byte-level BPE training: count Qwen2 pre-tokens, then merge the most frequent pair repeatedly
// with incremental pair counts (the approach of HF's BpeTrainer and SentencePiece).
#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <queue>
#include <unordered_map>

#include <fmt/format.h>

#include "tokenizer/added_tokens.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/line_reader.h"
#include "util/progress_bar.h"

namespace c3::tokenizer {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
int32_t pair_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t pair_right(uint64_t k) { return static_cast<int32_t>(k & 0xFFFFFFFFu); }

}  // namespace

struct BpeTrainer::State {
  BpeTrainerOptions opts;
  BpeTrainerStats stats;
  Normalizer nfc{{Normalizer::Form::kNFC}};
  PreTokenizer pre = PreTokenizer::qwen2();
  AddedTokenMatcher specials;
  std::unordered_map<std::string, int64_t> counts;  // pre-token bytes -> occurrences
  // Scratch reused across texts.
  std::string normalized;
  std::vector<TextPiece> pieces;
  std::vector<std::string_view> words;
  std::deque<std::string> store;

  void count_piece(std::string_view piece) {
    words.clear();
    store.clear();
    pre.split(piece, words, store);
    for (std::string_view w : words) {
      auto it = counts.find(std::string(w));
      if (it != counts.end()) ++it->second;
      else counts.emplace(std::string(w), 1);
    }
    stats.words += static_cast<int64_t>(words.size());
  }

  // Drops the words seen least until a quarter of the budget is free again. Rare words barely
  // move pair counts; a word seen k times is dropped only after all words seen fewer times.
  void prune() {
    const size_t target = static_cast<size_t>(opts.max_words) * 3 / 4;
    for (int64_t k = 1; counts.size() > target; ++k) {
      for (auto it = counts.begin(); it != counts.end();) {
        if (it->second <= k) {
          it = counts.erase(it);
          ++stats.pruned_words;
        } else {
          ++it;
        }
      }
    }
  }
};

BpeTrainer::BpeTrainer(BpeTrainerOptions opts) : s_(std::make_unique<State>()) {
  s_->opts = std::move(opts);
  const int64_t min_vocab = 256 + static_cast<int64_t>(s_->opts.special_tokens.size());
  C3_CHECK(s_->opts.vocab_size > min_vocab, "--vocab-size {} is too small: it must exceed 256 "
           "byte tokens + {} special tokens", s_->opts.vocab_size, s_->opts.special_tokens.size());
  C3_CHECK(s_->opts.max_words >= 1000, "--max-words {} is too small (at least 1000)",
           s_->opts.max_words);
  std::vector<AddedToken> sp;
  for (const auto& t : s_->opts.special_tokens) sp.push_back({0, t, true});
  s_->specials = AddedTokenMatcher(sp);
}

BpeTrainer::~BpeTrainer() = default;

const BpeTrainerStats& BpeTrainer::stats() const { return s_->stats; }

bool BpeTrainer::budget_reached() const {
  return s_->opts.max_bytes > 0 && s_->stats.bytes >= s_->opts.max_bytes;
}

void BpeTrainer::add_text(std::string_view text) {
  State& s = *s_;
  size_t bad = find_invalid_utf8(text);
  C3_CHECK(bad == std::string_view::npos, "invalid UTF-8 at byte offset {} of a training text",
           bad);
  s.stats.texts += 1;
  s.stats.bytes += static_cast<int64_t>(text.size());
  s.normalized.clear();
  s.nfc.normalize(text, s.normalized);
  // Special tokens that occur in the text are not text: leave them out of the counts.
  s.pieces.clear();
  s.specials.split(s.normalized, s.pieces);
  for (const TextPiece& p : s.pieces) {
    if (p.token < 0) {
      s.count_piece(std::string_view(s.normalized).substr(p.begin, p.end - p.begin));
    }
  }
  if (static_cast<int64_t>(s.counts.size()) > s.opts.max_words) s.prune();
}

void BpeTrainer::add_corpus(const std::vector<std::string>& paths) {
  State& s = *s_;
  auto t0 = Clock::now();
  CorpusReader reader(paths);
  const bool by_text = s.opts.max_bytes > 0;
  std::optional<ProgressBar> bar;
  if (s.opts.progress) {
    bar.emplace("count words", by_text ? s.opts.max_bytes : reader.total_bytes(), "B");
  }
  std::string text;
  const int64_t start_bytes = s.stats.bytes;
  while (!budget_reached() && reader.next(text)) {
    try {
      add_text(text);
    } catch (const Error& e) {
      fail("{}: {}", reader.where(), e.what());
    }
    if (bar) {
      bar->set(by_text ? s.stats.bytes - start_bytes : reader.bytes_read());
      bar->set_postfix(fmt::format("{} distinct words", s.counts.size()));
    }
  }
  if (bar) bar->finish();
  s.stats.count_seconds += seconds_since(t0);
}

std::string BpeTrainer::train() {
  State& s = *s_;
  auto t0 = Clock::now();
  C3_CHECK(!s.counts.empty(), "no training text: the corpus is empty");

  // Words in byte order, so that the result never depends on hash-table iteration order.
  std::vector<std::pair<std::string, int64_t>> items(s.counts.begin(), s.counts.end());
  s.counts.clear();
  std::sort(items.begin(), items.end());
  s.stats.distinct_words = static_cast<int64_t>(items.size());

  // Ids 0..255: the bytes, in GPT-2's order ("!" first, "Ġ" = space at 220).
  const ByteLevel& bl = byte_level();
  std::vector<std::string> tok_bytes;
  std::unordered_map<std::string, int32_t> tok_index;
  int32_t byte_id[256];
  for (int i = 0; i < 256; ++i) {
    const uint8_t b = bl.order[i];
    byte_id[b] = i;
    tok_bytes.emplace_back(1, static_cast<char>(b));
    tok_index.emplace(tok_bytes.back(), i);
  }

  struct Word {
    std::vector<int32_t> syms;
    int64_t count;
  };
  std::vector<Word> words(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    for (unsigned char b : items[i].first) words[i].syms.push_back(byte_id[b]);
    words[i].count = items[i].second;
  }
  items.clear();
  items.shrink_to_fit();

  // Pair counts, the words holding each pair (may list stale or repeated words: checked when
  // used), and a lazy max-heap of (count, pair) whose stale entries are skipped when popped.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<uint32_t>> where;
  for (uint32_t wi = 0; wi < words.size(); ++wi) {
    const auto& w = words[wi].syms;
    for (size_t i = 0; i + 1 < w.size(); ++i) {
      uint64_t k = pair_key(w[i], w[i + 1]);
      pair_count[k] += words[wi].count;
      auto& list = where[k];
      if (list.empty() || list.back() != wi) list.push_back(wi);
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
    // Highest count first; ties go to the smallest pair of ids, for determinism.
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };
  std::priority_queue<Entry> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  const int64_t n_special = static_cast<int64_t>(s.opts.special_tokens.size());
  const int64_t bpe_target = s.opts.vocab_size - n_special;
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<uint32_t> seen(words.size(), UINT32_MAX);  // last merge that visited each word
  std::vector<std::pair<uint64_t, int64_t>> changes;
  std::optional<ProgressBar> bar;
  if (s.opts.progress) bar.emplace("learn merges", bpe_target - 256, "tok");

  while (static_cast<int64_t>(tok_bytes.size()) < bpe_target && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.pair);
    const int64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {
      // A count that fell has no entry yet; one that rose was pushed when it rose.
      if (current > 0 && current < top.count) heap.push({current, top.pair});
      continue;
    }
    if (top.count < s.opts.min_frequency) break;

    const int32_t a = pair_left(top.pair), b = pair_right(top.pair);
    std::string merged = tok_bytes[a] + tok_bytes[b];
    int32_t c;
    if (auto it = tok_index.find(merged); it != tok_index.end()) {
      c = it->second;  // the same bytes reached by another pair: one more merge, no new token
    } else {
      c = static_cast<int32_t>(tok_bytes.size());
      tok_bytes.push_back(merged);
      tok_index.emplace(std::move(merged), c);
    }
    const uint32_t merge_no = static_cast<uint32_t>(merges.size());
    merges.push_back({a, b});

    std::vector<uint32_t> list = std::move(where[top.pair]);
    where.erase(top.pair);
    changes.clear();
    for (uint32_t wi : list) {
      if (seen[wi] == merge_no) continue;
      seen[wi] = merge_no;
      auto& w = words[wi].syms;
      const int64_t n = words[wi].count;
      // Left to right, in place: w[0..j) is already rewritten, w[i..) not yet. The neighbours'
      // pairs lose n occurrences and the pairs with the new token gain n.
      size_t j = 0;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) {
          if (j > 0) {
            changes.push_back({pair_key(w[j - 1], a), -n});
            changes.push_back({pair_key(w[j - 1], c), n});
          }
          if (i + 2 < w.size()) {
            changes.push_back({pair_key(b, w[i + 2]), -n});
            changes.push_back({pair_key(c, w[i + 2]), n});
          }
          w[j++] = c;
          i += 2;
        } else {
          w[j++] = w[i++];
        }
      }
      if (j == w.size()) continue;  // a stale entry: the pair was no longer in this word
      w.resize(j);
      for (size_t i = 0; i + 1 < w.size(); ++i) {
        if (w[i] == c || w[i + 1] == c) {
          auto& l = where[pair_key(w[i], w[i + 1])];
          if (l.empty() || l.back() != wi) l.push_back(wi);
        }
      }
    }
    pair_count.erase(top.pair);
    std::sort(changes.begin(), changes.end());
    for (size_t i = 0; i < changes.size();) {
      const uint64_t k = changes[i].first;
      int64_t d = 0;
      for (; i < changes.size() && changes[i].first == k; ++i) d += changes[i].second;
      if (d == 0 || k == top.pair) continue;
      int64_t& cnt = pair_count[k];
      cnt += d;
      if (cnt <= 0) pair_count.erase(k);
      else if (d > 0) heap.push({cnt, k});
    }
    if (bar) bar->set(static_cast<int64_t>(tok_bytes.size()) - 256);
  }
  if (bar) bar->finish();

  s.stats.merges = static_cast<int64_t>(merges.size());
  s.stats.vocab_size = static_cast<int64_t>(tok_bytes.size()) + n_special;
  s.stats.tokens = 0;
  for (const Word& w : words) s.stats.tokens += w.count * static_cast<int64_t>(w.syms.size());
  s.stats.merge_seconds = seconds_since(t0);

  HfBpeJson spec;
  spec.tokens = std::move(tok_bytes);
  spec.merges = std::move(merges);
  for (int64_t i = 0; i < n_special; ++i) {
    AddedToken a;
    a.id = static_cast<int32_t>(spec.tokens.size() + i);
    a.content = s.opts.special_tokens[i];
    a.special = true;
    spec.added.push_back(a);
  }
  return hf_tokenizer_json(spec);
}

void BpeTrainer::train_to_file(const std::string& path) {
  std::string json = train();
  write_file_atomic(path, json);
}

}  // namespace c3::tokenizer
