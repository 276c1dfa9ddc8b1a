// The training data stream: read documents, cut passages on a thread pool, bucket by length,
// shuffle batches, prefetch the next chunk; see data_loader.h for the contracts.
#include "train/data_loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <thread>

#include "tokenizer/bpe_tokenizer.h"
#include "util/error.h"
#include "util/line_reader.h"

namespace c3::train {

// Keys that separate the RNG streams of different decisions.
constexpr uint64_t kDocKey = 0x646f63, kBatchKey = 0x6261746368, kFileKey = 0x66696c65;
constexpr int kStateVersion = 1;

int64_t Batch::max_len() const {
  int64_t m = 0;
  for (const auto& p : passages) m = std::max(m, p.n_tokens());
  return m;
}

int64_t Batch::n_tokens() const {
  int64_t n = 0;
  for (const auto& p : passages) n += p.n_tokens();
  return n;
}

DataLoader::DataLoader(const tokenizer::BpeTokenizer& tok, DataOptions opt)
    : tok_(tok), opt_(std::move(opt)) {
  C3_CHECK(!opt_.files.empty(),
           "data loader: no data files given; pass JSONL(.xz) files of "
           "{{\"text\": ...}} lines");
  CorpusReader check(opt_.files);  // fails early, naming a missing file
  C3_CHECK(opt_.world_size >= 1 && opt_.rank >= 0 && opt_.rank < opt_.world_size,
           "data loader: rank {} is not in [0, world_size {})", opt_.rank, opt_.world_size);
  C3_CHECK(opt_.batch_size >= 0 && opt_.max_batch_tokens >= 0 &&
               (opt_.batch_size > 0 || opt_.max_batch_tokens > 0),
           "data loader: set batch_size (passages) or max_batch_tokens > 0 (got {} and {})",
           opt_.batch_size, opt_.max_batch_tokens);
  C3_CHECK(opt_.batch_size % opt_.world_size == 0,
           "data loader: the global batch_size {} must be a multiple of world_size {}, so that "
           "every rank gets the same number of rows",
           opt_.batch_size, opt_.world_size);
  C3_CHECK(opt_.bucket_docs >= 1, "data loader: bucket_docs must be >= 1 (got {})",
           opt_.bucket_docs);
  C3_CHECK(opt_.n_threads >= 1, "data loader: n_threads must be >= 1 (got {})", opt_.n_threads);
  C3_CHECK(opt_.max_batch_tokens == 0 || opt_.bucket_docs >= opt_.world_size,
           "data loader: bucket_docs {} is below world_size {}: no chunk could fill a batch",
           opt_.bucket_docs, opt_.world_size);
  chunk_items_ = opt_.bucket_docs;
  if (opt_.max_batch_tokens == 0)
    chunk_items_ = (opt_.bucket_docs + opt_.batch_size - 1) / opt_.batch_size * opt_.batch_size;
}

DataLoader::~DataLoader() { wait_prefetch(); }

// ---------------------------------------------------------------------------------------------
// Consumer side

Batch DataLoader::next() {
  for (;;) {
    if (!cur_) {
      if (!pending_.valid()) start_prefetch(start_);
      cur_ = pending_.get();  // rethrows what the builder threw
      if (cur_->batches.empty() && cur_->begin.chunk == 0)
        fail(
            "data loader: epoch {} gives no full batch: {} passages of >= {} tokens from {} "
            "documents, batch size {}. Use more data, a smaller batch or a lower min_tokens.",
            cur_->begin.epoch, cur_->items.size(), opt_.min_tokens, cur_->end.doc, opt_.batch_size);
      start_prefetch(following(*cur_));  // overlaps with consuming this chunk
    }
    if (batch_ < static_cast<int64_t>(cur_->batches.size())) {
      const auto& rows = cur_->batches[batch_];
      Batch b;
      b.epoch = cur_->begin.epoch;
      b.chunk = cur_->begin.chunk;
      b.index = batch_++;
      b.n_global = static_cast<int64_t>(rows.size());
      for (size_t i = opt_.rank; i < rows.size(); i += opt_.world_size)
        b.passages.push_back(std::move(cur_->items[rows[i]].passage));  // each row is used once
      return b;
    }
    start_ = following(*cur_);
    cur_.reset();
    batch_ = 0;
  }
}

DataLoader::Pos DataLoader::following(const Chunk& c) const {
  if (c.epoch_done) return Pos{c.begin.epoch + 1, 0, 0, 0};
  return c.end;
}

void DataLoader::start_prefetch(Pos pos) {
  pending_ = std::async(std::launch::async, [this, pos] { return build_chunk(pos); });
}

void DataLoader::wait_prefetch() {
  if (!pending_.valid()) return;
  stop_ = true;
  try {
    pending_.get();
  } catch (...) {  // a cancelled or failed build is dropped along with the position it had
  }
  stop_ = false;
  reader_.reset();  // the builder may have stopped half-way: seek afresh next time
  lookahead_.clear();
}

// What a state must agree on to reproduce the same stream. n_threads and rank do not matter;
// world_size matters only to token-budget batches (their row counts are rounded to it).
static nlohmann::json fingerprint(const DataOptions& o) {
  std::vector<std::string> names;
  for (const auto& f : o.files) names.push_back(std::filesystem::path(f).filename().string());
  nlohmann::json j = {{"files", names},
                      {"lengths", o.lengths.str()},
                      {"batch_size", o.batch_size},
                      {"max_batch_tokens", o.max_batch_tokens},
                      {"bucket_docs", o.bucket_docs},
                      {"split_docs", o.split_docs},
                      {"min_tokens", o.min_tokens},
                      {"shuffle", o.shuffle},
                      {"seed", o.seed}};
  if (o.max_batch_tokens > 0) j["world_size"] = o.world_size;
  return j;
}

nlohmann::json DataLoader::state() const {
  Pos p = cur_ ? cur_->begin : start_;
  return {{"version", kStateVersion},
          {"epoch", p.epoch},
          {"chunk", p.chunk},
          {"doc", p.doc},
          {"skip", p.skip},
          {"batch", batch_},
          {"options", fingerprint(opt_)}};
}

void DataLoader::restore(const nlohmann::json& s) {
  auto get = [&](const char* key) -> int64_t {
    if (!s.contains(key) || !s[key].is_number_integer())
      fail(
          "data loader state: missing integer \"{}\" in {}. Pass the \"data\" object that "
          "DataLoader::state() wrote.",
          key, s.dump().substr(0, 200));
    return s[key].get<int64_t>();
  };
  C3_CHECK(s.is_object() && get("version") == kStateVersion,
           "data loader state: version {} not supported (this build writes {})",
           s.value("version", -1), kStateVersion);
  nlohmann::json mine = fingerprint(opt_), saved = s.value("options", nlohmann::json::object());
  for (auto& [key, value] : mine.items()) {
    if (!saved.contains(key) || saved[key] != value)
      fail(
          "data loader state: saved with {}={} but this run has {}={}. Resume with the data "
          "options of the saved run.",
          key, saved.contains(key) ? saved[key].dump() : "(none)", key, value.dump());
  }
  Pos p{get("epoch"), get("chunk"), get("doc"), get("skip")};
  int64_t batch = get("batch");
  C3_CHECK(p.epoch >= 0 && p.chunk >= 0 && p.doc >= 0 && p.skip >= 0 && batch >= 0,
           "data loader state: negative position in {}", s.dump());
  wait_prefetch();
  cur_.reset();
  start_ = p;
  batch_ = batch;
}

// ---------------------------------------------------------------------------------------------
// Builder side: runs on the prefetch thread, one build at a time.

void DataLoader::seek(Pos pos) {
  std::vector<std::string> files = opt_.files;
  if (opt_.shuffle) {  // Fisher-Yates with the epoch's own stream
    Rng rng = Rng::keyed({opt_.seed, static_cast<uint64_t>(pos.epoch), kFileKey});
    for (size_t i = files.size(); i > 1; --i)
      std::swap(files[i - 1], files[rng.uniform_int(0, static_cast<int64_t>(i) - 1)]);
  }
  lookahead_.clear();
  reader_ = std::make_unique<CorpusReader>(files);
  reader_epoch_ = pos.epoch;
  docs_read_ = 0;
  // Resuming costs one pass over the documents before this position (no random access in xz).
  std::string text;
  while (docs_read_ < pos.doc && !stop_) {
    if (!reader_->next(text))
      fail(
          "data loader: cannot resume at document {} of epoch {}: the data has only {} "
          "documents. Were the data files changed since the state was saved?",
          pos.doc, pos.epoch, docs_read_);
    ++docs_read_;
  }
  skip_ = pos.skip;
}

bool DataLoader::read_and_cut(int64_t n_docs) {
  std::vector<std::string> texts, wheres;
  std::string text;
  while (static_cast<int64_t>(texts.size()) < n_docs && reader_->next(text)) {
    texts.push_back(std::move(text));
    wheres.push_back(reader_->where());
  }
  if (texts.empty()) return false;
  const int64_t first = docs_read_, n = static_cast<int64_t>(texts.size());
  docs_read_ += n;
  docs_read_total_ += n;

  std::vector<DocCut> cuts(n);
  std::vector<std::string> errors(n);
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t i; (i = next++) < n && !stop_;) {
      try {
        cuts[i] = DocCut{first + i, cut_doc(texts[i], reader_epoch_, first + i)};
      } catch (const std::exception& e) {
        errors[i] = fmt::format("{}: {}", wheres[i], e.what());
      }
    }
  };
  int n_workers = static_cast<int>(std::min<int64_t>(opt_.n_threads, n));
  if (n_workers <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < n_workers; ++t) pool.emplace_back(work);
    for (auto& t : pool) t.join();
  }
  for (const auto& e : errors)  // the first document's error, whatever the thread timing
    if (!e.empty()) throw Error(e);
  if (stop_) return false;

  int64_t items = 0;
  for (auto& c : cuts) {
    items += static_cast<int64_t>(c.items.size());
    lookahead_.push_back(std::move(c));
  }
  items_per_doc_ = std::max(0.05, static_cast<double>(items) / n);
  return true;
}

std::vector<DataLoader::Item> DataLoader::cut_doc(const std::string& text, int64_t epoch,
                                                  int64_t doc) const {
  Rng rng =
      Rng::keyed({opt_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(doc), kDocKey});
  std::vector<Item> out;
  auto keep = [&](Passage p, int64_t k) {
    if (p.n_tokens() >= std::max<int64_t>(1, opt_.min_tokens))
      out.push_back(Item{std::move(p), doc, k, rng.next()});
  };
  if (!opt_.split_docs) {
    int64_t target = opt_.lengths.sample(rng);
    keep(cut_passage(tok_, text, target, rng.next()), 0);
    return out;
  }
  size_t pos = 0;
  for (int64_t k = 0;; ++k) {
    int64_t target = opt_.lengths.sample(rng);
    Passage p = cut_passage_from(tok_, text, pos, target);
    if (p.ids.empty()) break;  // the end (or a character longer than the target)
    pos = p.end;
    keep(std::move(p), k);
  }
  return out;
}

std::unique_ptr<DataLoader::Chunk> DataLoader::build_chunk(Pos pos) {
  int64_t next_doc = lookahead_.empty() ? docs_read_ : lookahead_.front().doc;
  if (!reader_ || reader_epoch_ != pos.epoch || next_doc != pos.doc || skip_ != pos.skip) seek(pos);

  auto c = std::make_unique<Chunk>();
  c->begin = pos;
  const auto want = static_cast<size_t>(chunk_items_);
  while (c->items.size() < want && !stop_) {
    if (lookahead_.empty()) {
      // Read about as many documents as the chunk still needs, judging by the last round; a
      // first small round measures that (split_docs can give dozens of passages a document).
      double need = static_cast<double>(want - c->items.size());
      need = items_per_doc_ > 0 ? need / items_per_doc_ : std::min(need, 64.0);
      auto n = static_cast<int64_t>(std::clamp(std::ceil(need), 1.0, double(chunk_items_)));
      if (!read_and_cut(n)) break;
      continue;
    }
    DocCut& d = lookahead_.front();
    while (skip_ < static_cast<int64_t>(d.items.size()) && c->items.size() < want)
      c->items.push_back(std::move(d.items[skip_++]));
    if (skip_ >= static_cast<int64_t>(d.items.size())) {
      lookahead_.pop_front();
      skip_ = 0;
    }
  }
  if (stop_) fail("data loader: chunk build cancelled");
  c->epoch_done = c->items.size() < want;
  c->end = Pos{pos.epoch, pos.chunk + 1, lookahead_.empty() ? docs_read_ : lookahead_.front().doc,
               skip_};
  make_batches(*c);
  return c;
}

void DataLoader::make_batches(Chunk& c) const {
  std::vector<int64_t> order(c.items.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    const Item &a = c.items[x], &b = c.items[y];
    if (a.passage.n_tokens() != b.passage.n_tokens())
      return a.passage.n_tokens() < b.passage.n_tokens();
    if (a.tiebreak != b.tiebreak) return a.tiebreak < b.tiebreak;
    return std::make_pair(a.doc, a.k) < std::make_pair(b.doc, b.k);
  });
  const auto n = static_cast<int64_t>(order.size());
  const int64_t w = opt_.world_size;
  if (opt_.max_batch_tokens == 0) {
    for (int64_t i = 0; i + opt_.batch_size <= n; i += opt_.batch_size)
      c.batches.emplace_back(order.begin() + i, order.begin() + i + opt_.batch_size);
  } else {
    // Greedy over ascending lengths: the newest row is the longest, so the padded size is
    // rows x its length. Rows are rounded down to a multiple of the world size.
    for (int64_t i = 0; i + w <= n;) {
      int64_t rows = 0;
      while (i + rows < n && (opt_.batch_size == 0 || rows < opt_.batch_size) &&
             (rows + 1) * c.items[order[i + rows]].passage.n_tokens() <= opt_.max_batch_tokens)
        ++rows;
      rows = std::max(w, rows - rows % w);
      c.batches.emplace_back(order.begin() + i, order.begin() + i + rows);
      i += rows;
    }
  }
  if (opt_.shuffle) {
    Rng rng = Rng::keyed({opt_.seed, static_cast<uint64_t>(c.begin.epoch),
                          static_cast<uint64_t>(c.begin.chunk), kBatchKey});
    for (size_t i = c.batches.size(); i > 1; --i)
      std::swap(c.batches[i - 1], c.batches[rng.uniform_int(0, static_cast<int64_t>(i) - 1)]);
  }
}

}  // namespace c3::train
