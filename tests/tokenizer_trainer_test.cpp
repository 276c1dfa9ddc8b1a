// BPE trainer tests: a small vocabulary learned on an in-test corpus reloads, round-trips and
// is deterministic.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "testdata.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/normalizer.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace fs = std::filesystem;
using c3::tokenizer::BpeTokenizer;
using c3::tokenizer::BpeTrainer;
using c3::tokenizer::BpeTrainerOptions;

namespace {

std::vector<std::string> corpus() {
  std::vector<std::string> base = {
      "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.",
      "In 1865 the war ended, and 3,000 soldiers went home to their families in the north.",
      "Context cascade compression turns a long passage into a few latent vectors.",
      "She said: \"I'll be there at 10:30 -- don't wait for me!\"\n\nThen she left.",
      "Tokenizers split text into words, and words into pieces that a model can read.",
      "  Indented line\n\tand a tab, then\r\nWindows newlines and    many spaces.",
      "Unicode: café, naïve, Straße, 東京は日本の首都です。 Emoji 😀 too.",
      "The theory of the thing is that the other three then thought thoroughly.",
  };
  std::vector<std::string> texts;
  for (int rep = 0; rep < 30; ++rep) {
    for (const auto& b : base) texts.push_back(fmt::format("{} (copy {})", b, rep));
  }
  return texts;
}

BpeTrainerOptions small_options() {
  BpeTrainerOptions o;
  o.vocab_size = 256 + 200 + 6;
  o.progress = false;
  return o;
}

}  // namespace

TEST(BpeTrainer, LearnsReloadsAndRoundTrips) {
  BpeTrainer trainer(small_options());
  for (const auto& t : corpus()) trainer.add_text(t);
  fs::path out = c3::test::binary_dir() / "testdata_tokenizer" / "trained_small.json";
  fs::create_directories(out.parent_path());
  trainer.train_to_file(out.string());
  const auto& st = trainer.stats();
  EXPECT_EQ(st.vocab_size, 462);
  EXPECT_EQ(st.texts, 240);

  auto tok = BpeTokenizer::from_file(out.string());
  EXPECT_EQ(tok.vocab_size(), 462);
  // The special tokens follow the learned vocabulary, in the given order.
  const std::vector<std::string> specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                             "<img>",         "</img>",       "<imgpad>"};
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(tok.token_id(specials[i]), 456 + static_cast<int32_t>(i)) << specials[i];
    EXPECT_TRUE(tok.is_special(456 + static_cast<int32_t>(i)));
  }
  EXPECT_EQ(tok.token_id("Ġ"), 220);  // GPT-2's byte order: the space byte
  EXPECT_GE(tok.token_id("Ġthe"), 256);  // a frequent word became one token

  c3::tokenizer::Normalizer nfc({c3::tokenizer::Normalizer::Form::kNFC});
  int64_t bytes = 0, tokens = 0;
  std::vector<std::string> texts = corpus();
  texts.push_back("Unseen words: zebra, quixotic, 42 and ünïcödé (NFD: e\u0301)");
  texts.push_back("<|im_start|>user\n<img><imgpad><imgpad></img>\nRepeat the text: <|im_end|>");
  for (const auto& t : texts) {
    auto ids = tok.encode(t);
    EXPECT_EQ(tok.decode(ids), nfc.normalize(t));
    bytes += static_cast<int64_t>(t.size());
    tokens += static_cast<int64_t>(ids.size());
  }
  EXPECT_LT(tokens * 2, bytes) << "200 merges should at least halve the byte count";
  auto ids = tok.encode("<img><imgpad></img>");
  EXPECT_EQ(ids, (std::vector<int32_t>{459, 461, 460}));
}

TEST(BpeTrainer, IsDeterministic) {
  std::string a, b;
  for (std::string* out : {&a, &b}) {
    BpeTrainer trainer(small_options());
    for (const auto& t : corpus()) trainer.add_text(t);
    *out = trainer.train();
  }
  EXPECT_EQ(a, b);
  // The file is plain tokenizer.json: Qwen2 split, NFC, ByteLevel, merges as pairs.
  auto j = nlohmann::json::parse(a);
  EXPECT_EQ(j["normalizer"]["type"], "NFC");
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(j["model"]["type"], "BPE");
  EXPECT_EQ(j["model"]["vocab"].size(), 456u);
  EXPECT_EQ(j["added_tokens"].size(), 6u);
  EXPECT_TRUE(j["model"]["merges"][0].is_array());
}

TEST(BpeTrainer, PrunesRareWordsAndReadsJsonl) {
  // 3,000 distinct rare words plus frequent ones; a 1,000-word budget forces pruning.
  fs::path dir = c3::test::binary_dir() / "testdata_tokenizer";
  fs::create_directories(dir);
  fs::path jsonl = dir / "tiny_corpus.jsonl";
  std::string lines;
  for (int i = 0; i < 3000; ++i) {
    std::string rare = "x";  // digits are split one by one, so spell i in letters
    for (int k = i; k > 0; k /= 26) rare += static_cast<char>('a' + k % 26);
    std::string text = fmt::format("{} appears once, but the common words appear often.", rare);
    lines += nlohmann::json({{"text", text}, {"source", "test"}}).dump() + "\n";
  }
  c3::write_file_atomic(jsonl, lines);
  BpeTrainerOptions o = small_options();
  o.max_words = 1000;
  BpeTrainer trainer(o);
  trainer.add_corpus({jsonl.string()});
  EXPECT_EQ(trainer.stats().texts, 3000);
  EXPECT_GT(trainer.stats().pruned_words, 0);
  auto tok = BpeTokenizer::from_json(trainer.train());
  EXPECT_GE(tok.token_id("Ġcommon"), 256);
  std::string t = "xbcd appears once";
  EXPECT_EQ(tok.decode(tok.encode(t)), t);
}

TEST(BpeTrainer, RejectsBadInput) {
  BpeTrainerOptions o = small_options();
  o.vocab_size = 100;
  EXPECT_THROW(BpeTrainer{o}, c3::Error);
  BpeTrainer trainer(small_options());
  EXPECT_THROW(trainer.add_text("bad \xFF byte"), c3::Error);
  EXPECT_THROW(trainer.train(), c3::Error);  // nothing counted
}
