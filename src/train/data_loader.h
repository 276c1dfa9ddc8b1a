// Streams JSONL(.xz) documents into length-bucketed batches of passages, deterministically,
// resumably and sharded across data-parallel ranks, with tokenization on background threads.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/passage_sampler.h"

namespace c3 {
class CorpusReader;
}

namespace c3::train {

// How the loader works, and the contracts the trainer relies on:
//
// 1. Documents stream from `files` in order (the file order is reshuffled every epoch when
//    `shuffle`). Memory is bounded by about two chunks: the corpus is never loaded whole.
// 2. Each document gives one passage at a random place (or, with `split_docs`, consecutive
//    passages covering it), its target length drawn from `lengths` with an RNG keyed by (seed,
//    epoch, document index in the epoch). So passages never depend on thread timing or on
//    `n_threads`.
// 3. The passage stream is cut into chunks of `bucket_docs` passages (rounded up to a multiple of
//    `batch_size`). Within a chunk, passages are sorted by token count and sliced into batches, so
//    a batch holds similar lengths and little padding; then the batch order is shuffled.
//    Fixed-size mode drops the last partial batch of each epoch.
// 4. Global batches are the same on every rank. Rank r of W gets rows r, r+W, r+2W, ... of each
//    global batch (rows sorted by length, so ranks get similar work). The union over ranks is
//    exactly what one process with world_size 1 sees, batch for batch. Each rank tokenizes the
//    whole stream (cheap next to the model; it saves any communication).
// 5. Epochs loop forever. state() is the position of the next batch; a loader restored from it
//    yields exactly the batches the original would have. The state is the same on every rank,
//    and in fixed-size mode may be restored under a different world_size.
struct DataOptions {
  std::vector<std::string> files;  // JSON lines {"text": ...}, plain or .xz
  LengthDist lengths;              // target passage length in tokens
  int64_t batch_size = 16;         // passages per global batch (all ranks together)
  // > 0: variable batches of at most this many padded tokens (rows x longest row), globally;
  // rows stay a multiple of world_size (at least world_size) and, if batch_size > 0, at most that.
  int64_t max_batch_tokens = 0;
  int64_t bucket_docs = 512;  // passages per chunk: one per document unless split_docs
  bool split_docs = false;    // cut long documents into several passages, back to back
  int64_t min_tokens = 1;     // shorter passages (short documents) are dropped
  bool shuffle = true;        // reshuffle the file order per epoch and the batch order per chunk
  uint64_t seed = 0;
  int n_threads = 2;  // tokenizer threads, beside one that reads and prefetches
  int rank = 0, world_size = 1;
};

struct Batch {
  std::vector<Passage> passages;            // this rank's rows, shortest first
  int64_t epoch = 0, chunk = 0, index = 0;  // index: the batch's position within its chunk
  int64_t n_global = 0;                     // rows of the global batch, all ranks together

  int64_t max_len() const;
  int64_t n_tokens() const;
};

class DataLoader {
 public:
  // `tok` must outlive the loader. Checks the options and that the files exist; reading starts
  // on the first next().
  DataLoader(const tokenizer::BpeTokenizer& tok, DataOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch for this rank. Blocks only when the prefetched chunk is not ready. Throws
  // c3::Error on bad input, naming file:line.
  Batch next();

  nlohmann::json state() const;
  // Throws c3::Error when the state was saved with different data options.
  void restore(const nlohmann::json& state);

  const DataOptions& options() const { return opt_; }
  int64_t docs_read() const { return docs_read_total_.load(); }  // for tests and progress

 private:
  // Where a chunk starts: the passage stream of `epoch` at document `doc`, minus its first `skip`
  // passages (non-zero only with split_docs, when a chunk ended mid-document).
  struct Pos {
    int64_t epoch = 0, chunk = 0, doc = 0, skip = 0;
  };
  struct Item {  // a passage and its place in the stream
    Passage passage;
    int64_t doc;
    int64_t k;          // passage number within the document
    uint64_t tiebreak;  // random order among passages of equal length
  };
  struct DocCut {
    int64_t doc;
    std::vector<Item> items;
  };
  struct Chunk {
    Pos begin, end;  // end: where the next chunk of this epoch starts
    bool epoch_done = false;
    std::vector<Item> items;
    std::vector<std::vector<int64_t>> batches;  // rows (indices into items) per global batch
  };

  std::unique_ptr<Chunk> build_chunk(Pos pos);
  void seek(Pos pos);  // positions the reader at the start of `pos`
  bool read_and_cut(int64_t n_docs);
  std::vector<Item> cut_doc(const std::string& text, int64_t epoch, int64_t doc) const;
  void make_batches(Chunk& c) const;
  void start_prefetch(Pos pos);
  void wait_prefetch();
  Pos following(const Chunk& c) const;

  const tokenizer::BpeTokenizer& tok_;
  DataOptions opt_;
  int64_t chunk_items_;  // passages per chunk

  // Consumer side.
  std::unique_ptr<Chunk> cur_;
  int64_t batch_ = 0;  // next batch within cur_
  Pos start_;          // where to begin when cur_ is empty (construction or restore)
  std::future<std::unique_ptr<Chunk>> pending_;

  // Builder side: touched only by the one build in flight.
  std::unique_ptr<CorpusReader> reader_;
  int64_t reader_epoch_ = -1;
  int64_t docs_read_ = 0;         // documents read from reader_ this epoch
  std::deque<DocCut> lookahead_;  // cut documents not yet (fully) put into a chunk
  int64_t skip_ = 0;              // passages of lookahead_.front() already used
  double items_per_doc_ = 0;      // passages per document in the last round; 0: none yet
  std::atomic<int64_t> docs_read_total_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace c3::train
