// Byte-level BPE as HF tokenizers runs it: added tokens, normalizer, pre-tokenizer, merges by rank.
#include "tokenizer/bpe_tokenizer.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <deque>
#include <filesystem>
#include <queue>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tiktoken_file.h"
#include "tokenizer/utf8.h"
#include "tokenizer/word_cache.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/json_int.h"

namespace c3::tokenizer {
namespace fs = std::filesystem;

namespace {

// (left id, right id) -> (rank, merged id), open addressing: the BPE inner loop is these lookups.
class PairMap {
 public:
  struct Value {
    int32_t rank, id;
  };
  void reserve(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, kEmpty);
    vals_.assign(cap, Value{INT_MAX, -1});
    mask_ = cap - 1;
  }
  // Keeps the first (lowest-rank) entry when a pair repeats, as HF's map construction does not
  // guarantee; a repeated merge line is harmless either way.
  void insert(int32_t a, int32_t b, Value v) {
    uint64_t k = key(a, b);
    size_t i = slot(k);
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    if (keys_[i] == k) return;
    keys_[i] = k;
    vals_[i] = v;
  }
  const Value* find(int32_t a, int32_t b) const {
    uint64_t k = key(a, b);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(int32_t a, int32_t b) {
    return (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
  }
  size_t slot(uint64_t k) const { return (k * 0x9E3779B97F4A7C15ULL >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<Value> vals_;
  size_t mask_ = 0;
};

std::atomic<uint64_t> g_next_instance{1};

}  // namespace

// Per-thread working memory of one tokenizer (encode is const and runs on many threads).
struct Scratch {
  WordCache cache;
  std::string normalized;
  std::vector<TextPiece> pieces, pieces2;
  std::vector<std::string_view> words;
  std::deque<std::string> word_store;
  std::vector<int32_t> word_ids;
  std::vector<PairMap::Value> ranks;
};

struct BpeTokenizer::Impl {
  std::string origin, hash;
  uint64_t instance = 0;
  Normalizer normalizer;
  PreTokenizer pretokenizer;
  AddedTokenMatcher raw_matcher, normalized_matcher;
  std::vector<AddedToken> added;
  std::array<int32_t, 256> byte_id{};
  PairMap merges;
  bool ignore_merges = false;
  std::unordered_map<std::string, int32_t> vocab;     // byte-level string -> id (model)
  // ignore_merges: raw bytes -> [id] of every vocab token, looked up once per new word with the
  // hash the word cache computed anyway (a std::unordered_map<std::string> cost ~30% of a cold
  // encode). Filled while loading, read-only after.
  WordCache whole_words{size_t(1) << 30};
  std::unordered_map<std::string, int32_t> added_ids;
  std::vector<std::string> id_token, id_bytes;
  std::vector<uint8_t> id_known, id_special;

  // Loading: id tables of max_id + 1 entries, one token, then byte ids and added-token matchers.
  void size_tables(int32_t max_id);
  void set_token(int32_t id, const std::string& tok);
  void add_whole_word(const std::string& bytes, int32_t id) {
    whole_words.insert(bytes, WordCache::hash(bytes), &id, 1);
  }
  void finish_loading();

  Scratch& scratch() const;
  void encode(std::string_view text, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, Scratch& sc, std::vector<int32_t>& out) const;
  void encode_word(std::string_view word, Scratch& sc, std::vector<int32_t>& out) const;
  void bpe(Scratch& sc) const;
  void bpe_heap(Scratch& sc) const;
};

Scratch& BpeTokenizer::Impl::scratch() const {
  // A few tokenizers per thread at most; keyed by an id that is never reused, so a destroyed
  // tokenizer's cache can never be mistaken for a new one's.
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<Scratch>>> slots;
  for (auto& s : slots) {
    if (s.first == instance) return *s.second;
  }
  if (slots.size() >= 4) slots.erase(slots.begin());
  slots.emplace_back(instance, std::make_unique<Scratch>());
  return *slots.back().second;
}

// ---- loading -------------------------------------------------------------------------------

static std::string str_or_empty(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || j.at(key).is_null()) return "";
  return j.at(key).get<std::string>();
}

void BpeTokenizer::Impl::size_tables(int32_t max_id) {
  id_token.assign(max_id + 1, "");
  id_bytes.assign(max_id + 1, "");
  id_known.assign(max_id + 1, 0);
  id_special.assign(max_id + 1, 0);
}

// HF's ByteLevel decoder: a token whose characters are all in the byte alphabet becomes those
// bytes, any other token its own UTF-8.
void BpeTokenizer::Impl::set_token(int32_t id, const std::string& tok) {
  id_token[id] = tok;
  std::string bytes;
  id_bytes[id] = token_to_bytes(tok, bytes) ? bytes : tok;
  id_known[id] = 1;
}

// Added tokens: HF matches the non-normalized ones in the raw text and the normalized ones
// (their content normalized too) in the normalized text.
void BpeTokenizer::Impl::finish_loading() {
  for (int b = 0; b < 256; ++b) {
    auto it = vocab.find(bytes_to_token(std::string(1, char(b))));
    byte_id[b] = it == vocab.end() ? -1 : it->second;
  }
  std::vector<AddedToken> raw, norm;
  for (const AddedToken& a : added) {
    set_token(a.id, a.content);
    id_special[a.id] = a.special;
    added_ids[a.content] = a.id;
    if (a.normalized && !normalizer.is_identity()) {
      AddedToken n = a;
      n.content = normalizer.normalize(a.content);
      norm.push_back(n);
    } else {
      (a.normalized ? norm : raw).push_back(a);
    }
  }
  raw_matcher = AddedTokenMatcher(raw);
  normalized_matcher = AddedTokenMatcher(norm);
}

BpeTokenizer BpeTokenizer::from_file(const std::string& path) {
  return from_json(read_file(path), path);
}

BpeTokenizer BpeTokenizer::from_json(std::string_view text, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  Impl& m = *impl;
  m.origin = origin;
  m.hash = hash_hex(text);
  m.instance = g_next_instance.fetch_add(1);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", origin, clip_json_error(e.what()));
  }
  try {
    const auto& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    C3_CHECK(type == "BPE", "{}: model.type is \"{}\"; only byte-level \"BPE\" is supported",
             origin, type);
    C3_CHECK(!model.value("byte_fallback", false), "{}: model.byte_fallback is not supported "
             "(a SentencePiece-style tokenizer); c3 reads byte-level BPE files", origin);
    C3_CHECK(str_or_empty(model, "continuing_subword_prefix").empty() &&
                 str_or_empty(model, "end_of_word_suffix").empty(),
             "{}: model.continuing_subword_prefix / end_of_word_suffix are not supported", origin);
    if (model.contains("dropout") && !model.at("dropout").is_null()) {
      C3_CHECK(model.at("dropout").get<double>() == 0.0,
               "{}: model.dropout is set; BPE dropout is for training, not supported", origin);
    }
    m.ignore_merges = model.value("ignore_merges", false);

    // Vocabulary.
    // Ids size the id -> token tables, so they are capped: a 60-byte file with id 400000000
    // asked for 12.8 GB (found by fuzzing).
    constexpr int32_t kMaxId = (1 << 24) - 1;
    auto checked_id = [&](const nlohmann::json& v, const std::string& what) {
      auto id = json_int<int32_t>(v);
      C3_CHECK(id.has_value() && *id >= 0 && *id <= kMaxId,
               "{}: {} has id {}; ids must be integers in [0, {}]", origin, what,
               v.dump().substr(0, 40), kMaxId);
      return *id;
    };
    int32_t max_id = -1;
    const auto& vocab = model.at("vocab");
    m.vocab.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int32_t id = checked_id(it.value(), fmt::format("model.vocab[\"{}\"]", it.key().substr(0, 40)));
      m.vocab.emplace(it.key(), id);
      max_id = std::max(max_id, id);
    }
    for (const auto& t : j.value("added_tokens", nlohmann::json::array())) {
      AddedToken a;
      a.content = t.at("content").get<std::string>();
      a.id = checked_id(t.at("id"), fmt::format("added token \"{}\"", a.content.substr(0, 40)));
      a.special = t.value("special", false);
      a.normalized = t.value("normalized", !a.special);
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      C3_CHECK(a.id >= 0, "{}: added token \"{}\" has a negative id", origin, a.content);
      max_id = std::max(max_id, a.id);
      m.added.push_back(a);
    }
    m.size_tables(max_id);
    for (const auto& [tok, id] : m.vocab) {
      m.set_token(id, tok);
      if (m.ignore_merges) m.add_whole_word(m.id_bytes[id], id);
    }

    // Merges: "a b" strings (older files) or ["a", "b"] pairs; rank = position.
    const auto& merges = model.at("merges");
    m.merges.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& mj = merges[r];
      std::string a, b;
      if (mj.is_string()) {
        const std::string s = mj.get<std::string>();
        size_t sp = s.find(' ');
        C3_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                 "{}: merge #{} \"{}\" is not two tokens separated by one space", origin, r, s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        C3_CHECK(mj.is_array() && mj.size() == 2, "{}: merge #{} is not a pair", origin, r);
        a = mj[0].get<std::string>();
        b = mj[1].get<std::string>();
      }
      auto ia = m.vocab.find(a), ib = m.vocab.find(b), ic = m.vocab.find(a + b);
      C3_CHECK(ia != m.vocab.end() && ib != m.vocab.end() && ic != m.vocab.end(),
               "{}: merge #{} (\"{}\", \"{}\") uses a token missing from model.vocab", origin, r,
               a, b);
      m.merges.insert(ia->second, ib->second, {static_cast<int32_t>(r), ic->second});
    }
    m.normalizer = Normalizer::from_json(j.value("normalizer", nlohmann::json()));
    const auto pre = j.value("pre_tokenizer", nlohmann::json());
    C3_CHECK(!pre.is_null(), "{}: pre_tokenizer is null; byte-level BPE needs a ByteLevel "
             "pre-tokenizer", origin);
    m.pretokenizer = PreTokenizer::from_json(pre);
    const auto dec = j.value("decoder", nlohmann::json());
    C3_CHECK(dec.is_null() || dec.value("type", "") == "ByteLevel",
             "{}: decoder type \"{}\" is not supported (expected ByteLevel)", origin,
             dec.value("type", ""));

    m.finish_loading();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unexpected tokenizer.json layout: {}", origin, e.what());
  }
  BpeTokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

// tiktoken's rule as BPE (tiktoken_file.h): every split of a token into two tokens merges to it,
// with the token's rank as priority; equal ranks go leftmost first, as in tiktoken's loop.
BpeTokenizer BpeTokenizer::from_tiktoken(const std::string& path) {
  const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) check_qwen_tokenizer_config(config.string());
  TiktokenFile f = read_tiktoken(path);
  auto impl = std::make_shared<Impl>();
  Impl& m = *impl;
  m.origin = path;
  m.hash = f.hash;
  m.instance = g_next_instance.fetch_add(1);
  m.ignore_merges = true;  // tiktoken takes a pre-token that is a whole token as it is
  const auto& special = qwen_special_tokens();
  const int32_t n = static_cast<int32_t>(f.tokens.size());
  m.size_tables(n + static_cast<int32_t>(special.size()) - 1);
  m.vocab.reserve(n);
  for (int32_t id = 0; id < n; ++id) {
    std::string tok = bytes_to_token(f.tokens[id]);
    m.vocab.emplace(tok, id);
    m.set_token(id, tok);
    m.add_whole_word(f.tokens[id], id);
  }
  const std::vector<TiktokenMerge> merges = tiktoken_merges(f.tokens);
  m.merges.reserve(merges.size());
  for (const TiktokenMerge& mg : merges) m.merges.insert(mg.left, mg.right, {mg.merged, mg.merged});
  m.normalizer = Normalizer({Normalizer::Form::kNFC});
  m.pretokenizer = PreTokenizer::qwen2();
  // QWenTokenizer normalizes the whole text, then finds special tokens (all allowed): matching
  // them as `normalized` added tokens gives that order.
  for (size_t i = 0; i < special.size(); ++i) {
    AddedToken a;
    a.id = n + static_cast<int32_t>(i);
    a.content = special[i];
    a.special = true;
    a.normalized = true;
    m.added.push_back(a);
  }
  m.finish_loading();
  BpeTokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

// ---- encoding ------------------------------------------------------------------------------

// Merges sc.word_ids in place: always the lowest-rank pair, leftmost first, exactly HF's order.
// Words are short, so a linear scan over a compact array beats a heap.
void BpeTokenizer::Impl::bpe(Scratch& sc) const {
  auto& ids = sc.word_ids;
  size_t n = ids.size();
  if (n < 2) return;
  if (n > 64) {
    bpe_heap(sc);
    return;
  }
  auto& r = sc.ranks;
  r.resize(n - 1);
  auto lookup = [&](int32_t a, int32_t b) {
    const PairMap::Value* v = merges.find(a, b);
    return v ? *v : PairMap::Value{INT_MAX, -1};
  };
  for (size_t i = 0; i + 1 < n; ++i) r[i] = lookup(ids[i], ids[i + 1]);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (r[i].rank < r[best].rank) best = i;
    }
    if (r[best].rank == INT_MAX) break;
    ids[best] = r[best].id;
    ids.erase(ids.begin() + best + 1);
    r.erase(r.begin() + best);
    --n;
    if (best > 0) r[best - 1] = lookup(ids[best - 1], ids[best]);
    if (best + 1 < n) r[best] = lookup(ids[best], ids[best + 1]);
  }
}

// The same merge order for long words (runs of one character, long URLs): a min-heap of
// (rank, position) over a linked list, with stale entries skipped, as HF's Word::merge_all.
void BpeTokenizer::Impl::bpe_heap(Scratch& sc) const {
  auto& ids = sc.word_ids;
  const int n = static_cast<int>(ids.size());
  std::vector<int> prev(n), next(n);
  std::vector<uint8_t> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  using Entry = std::pair<int32_t, int>;  // (rank, position)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  for (int i = 0; i + 1 < n; ++i) {
    if (const PairMap::Value* v = merges.find(ids[i], ids[i + 1])) heap.push({v->rank, i});
  }
  while (!heap.empty()) {
    auto [rank, pos] = heap.top();
    heap.pop();
    if (!alive[pos] || next[pos] < 0) continue;
    const int nx = next[pos];
    const PairMap::Value* v = merges.find(ids[pos], ids[nx]);
    if (!v || v->rank != rank) continue;  // stale: one side was merged since
    ids[pos] = v->id;
    alive[nx] = 0;
    next[pos] = next[nx];
    if (next[pos] >= 0) prev[next[pos]] = pos;
    if (prev[pos] >= 0) {
      if (const PairMap::Value* w = merges.find(ids[prev[pos]], ids[pos]))
        heap.push({w->rank, prev[pos]});
    }
    if (next[pos] >= 0) {
      const PairMap::Value* w = merges.find(ids[pos], ids[next[pos]]);
      if (w) heap.push({w->rank, pos});
    }
  }
  int k = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) ids[k++] = ids[i];
  ids.resize(k);
}

void BpeTokenizer::Impl::encode_word(std::string_view word, Scratch& sc,
                                     std::vector<int32_t>& out) const {
  constexpr size_t kMaxCachedBytes = 128;  // longer words are rare; keep the arena small
  uint64_t h = 0;
  if (word.size() <= kMaxCachedBytes) {
    h = WordCache::hash(word);
    if (sc.cache.lookup(word, h, out)) return;
  }
  auto& ids = sc.word_ids;
  ids.clear();
  // ignore_merges (tiktoken's rule): a word that is a whole token is that token.
  if (ignore_merges && word.size() > kMaxCachedBytes) h = WordCache::hash(word);
  if (!ignore_merges || !whole_words.lookup(word, h, ids)) {
    // A byte missing from the vocabulary is dropped, as HF does without an unk_token.
    for (unsigned char b : word) {
      if (byte_id[b] >= 0) ids.push_back(byte_id[b]);
    }
    bpe(sc);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (word.size() <= kMaxCachedBytes) sc.cache.insert(word, h, ids.data(), ids.size());
}

void BpeTokenizer::Impl::encode_plain(std::string_view text, Scratch& sc,
                                      std::vector<int32_t>& out) const {
  std::string_view norm = text;
  if (!normalizer.is_identity()) {
    sc.normalized.clear();
    normalizer.normalize(text, sc.normalized);
    norm = sc.normalized;
  }
  auto pretokenize = [&](std::string_view piece) {
    sc.words.clear();
    sc.word_store.clear();
    pretokenizer.split(piece, sc.words, sc.word_store);
    for (std::string_view w : sc.words) encode_word(w, sc, out);
  };
  if (normalized_matcher.empty()) {
    pretokenize(norm);
    return;
  }
  sc.pieces2.clear();
  normalized_matcher.split(norm, sc.pieces2);
  for (const TextPiece& p : sc.pieces2) {
    if (p.token >= 0) out.push_back(p.token);
    else pretokenize(norm.substr(p.begin, p.end - p.begin));
  }
}

void BpeTokenizer::Impl::encode(std::string_view text, std::vector<int32_t>& out) const {
  size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) {
    std::string bytes;
    for (size_t k = bad; k < std::min(text.size(), bad + 4); ++k)
      bytes += fmt::format("{}{:02X}", bytes.empty() ? "" : " ", uint8_t(text[k]));
    fail("invalid UTF-8 at byte offset {} (bytes {}); pass valid UTF-8, or encode lossily "
         "(--lossy) to replace bad bytes with U+FFFD", bad, bytes);
  }
  Scratch& sc = scratch();
  if (raw_matcher.empty()) {
    encode_plain(text, sc, out);
    return;
  }
  sc.pieces.clear();
  raw_matcher.split(text, sc.pieces);
  for (const TextPiece& p : sc.pieces) {
    if (p.token >= 0) out.push_back(p.token);
    else encode_plain(text.substr(p.begin, p.end - p.begin), sc, out);
  }
}

// ---- public API ----------------------------------------------------------------------------

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, out);
  return out;
}

void BpeTokenizer::encode_to(std::string_view text, std::vector<int32_t>& out) const {
  impl_->encode(text, out);
}

std::vector<int32_t> BpeTokenizer::encode_lossy(std::string_view text) const {
  if (find_invalid_utf8(text) == std::string_view::npos) return encode(text);
  return encode(to_valid_utf8(text));
}

std::string_view BpeTokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(impl_->id_bytes.size())) return {};
  return impl_->id_bytes[id];
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int64_t>(m.id_known.size()) || !m.id_known[id]) continue;
    if (skip_special && m.id_special[id]) continue;
    bytes += m.id_bytes[id];
  }
  return to_valid_utf8(bytes);
}

int32_t BpeTokenizer::token_id(std::string_view token) const {
  std::string key(token);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->vocab.find(key); it != impl_->vocab.end()) return it->second;
  return -1;
}

std::string BpeTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(impl_->id_token.size())) return "";
  return impl_->id_token[id];
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < static_cast<int64_t>(impl_->id_special.size()) && impl_->id_special[id];
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_token.size()); }

const std::string& BpeTokenizer::file_hash() const { return impl_->hash; }

const std::string& BpeTokenizer::origin() const { return impl_->origin; }

const std::vector<AddedToken>& BpeTokenizer::added_tokens() const { return impl_->added; }

}  // namespace c3::tokenizer
