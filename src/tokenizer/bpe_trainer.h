// BpeTrainer: learns byte-level BPE merges on a corpus and writes an HF-compatible tokenizer.json.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace c3::tokenizer {

struct BpeTrainerOptions {
  int64_t vocab_size = 16384;  // all tokens: 256 bytes + learned merges + special tokens
  int64_t min_frequency = 2;   // a pair seen fewer times is never merged
  int64_t max_words = 4000000;  // distinct pre-tokens kept while counting; the rarest are pruned
  int64_t max_bytes = 0;       // stop reading the corpus after this many bytes of text (0: all)
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                             "<img>",         "</img>",       "<imgpad>"};
  bool progress = true;  // progress bars on stderr
};

// What a training run did (also printed by `c3 tokenizer train`).
struct BpeTrainerStats {
  int64_t texts = 0, bytes = 0, words = 0;  // input: texts, bytes of text, pre-tokens
  int64_t distinct_words = 0, pruned_words = 0;
  int64_t merges = 0, vocab_size = 0;
  int64_t tokens = 0;  // the counted words encoded with the learned merges
  double count_seconds = 0, merge_seconds = 0;
};

// Usage: add_text()/add_corpus() as often as needed, then train() once.
// Words are the Qwen2 pre-tokens of the NFC-normalized text (special tokens in the text are left
// out). Counting memory is bounded by max_words: past it, the words seen least are dropped, so
// only rare words (which barely affect merges) are lost. Merging updates pair counts
// incrementally, touching only the words that contain the merged pair.
class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions opts = {});
  ~BpeTrainer();
  BpeTrainer(const BpeTrainer&) = delete;
  BpeTrainer& operator=(const BpeTrainer&) = delete;

  // Counts the words of one text; invalid UTF-8 throws c3::Error with the byte offset.
  void add_text(std::string_view text);
  // Streams JSONL files ({"text": ...} per line, optionally .xz), up to max_bytes of text.
  void add_corpus(const std::vector<std::string>& paths);

  // Learns the merges; returns the tokenizer.json text. Deterministic for the same input.
  std::string train();
  // train(), then writes `path` atomically.
  void train_to_file(const std::string& path);

  const BpeTrainerStats& stats() const;
  bool budget_reached() const;  // max_bytes of text have been read

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace c3::tokenizer
