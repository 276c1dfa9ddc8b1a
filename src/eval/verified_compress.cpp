// Verified compression: encode, decode, score, and cut what falls short, batch by batch.
#include "eval/verified_compress.h"

#include <algorithm>
#include <deque>

#include "c3/chunker.h"
#include "eval/text_metrics.h"
#include "util/error.h"

namespace c3::eval {
namespace {

// A stretch of the input under test. Settled, it is kept as latents or as plain ids (with the
// precision measured for it), or it is replaced by its halves.
struct Piece {
  std::string text;
  std::vector<int32_t> ids;
  at::Tensor latents;  // [L, C], rounded to the stored dtype, when kept as latents
  double precision = 0;
  bool plain = false;
  std::vector<Piece> halves;
};

class Verifier {
 public:
  Verifier(cascade::LoadedC3& m, const cascade::CompressOptions& opt, const VerifyOptions& v,
           int64_t floor)
      : m_(m), opt_(opt), v_(v), floor_(floor) {}

  // Tries each piece of `batch` as latents: those below P are cut, their halves added to `next`.
  void try_as_latents(const std::vector<Piece*>& batch, std::vector<Piece*>& next) {
    std::vector<std::vector<int32_t>> ids;
    std::vector<int64_t> tokens;
    for (const Piece* p : batch) {
      ids.push_back(p->ids);
      tokens.push_back(static_cast<int64_t>(p->ids.size()));
    }
    // Decoded from the latents as the file will hold them, with decompress's own code path.
    const at::Tensor lat = cascade::as_stored(m_.model->compress(ids), opt_.dtype);
    const auto rows = cascade::decode_latents(m_, lat, tokens, v_.decode);
    for (size_t k = 0; k < batch.size(); ++k) {
      Piece& p = *batch[k];
      p.precision = char_precision(text_of(rows[k]), p.text);
      if (p.precision >= v_.min_precision) {
        p.latents = lat[static_cast<int64_t>(k)].cpu();
      } else {
        cut(p, next);
      }
    }
  }

  // Writes a settled piece (its halves in order, when cut).
  void write(const Piece& p, cascade::LatentWriter& w, VerifiedResult& r) const {
    if (!p.halves.empty()) {
      for (const Piece& h : p.halves) write(h, w, r);
      return;
    }
    const int64_t bytes = static_cast<int64_t>(p.text.size());
    if (p.plain) {
      w.append_plain(p.ids, bytes, p.precision);
      ++r.plain_chunks;
      r.plain_tokens += static_cast<int64_t>(p.ids.size());
    } else {
      w.append_verified(p.latents, bytes, static_cast<int64_t>(p.ids.size()), p.precision);
      ++r.latent_chunks;
    }
    r.lowest_precision = std::min(r.lowest_precision, p.precision);
  }

 private:
  std::string text_of(const std::vector<int64_t>& ids) const {
    return m_.tok->decode(std::vector<int32_t>(ids.begin(), ids.end()), false);
  }

  // Halves of at most ceil(n / 2) tokens at text boundaries (chunker.h), or plain at the floor.
  void cut(Piece& p, std::vector<Piece*>& next) {
    const int64_t half = (static_cast<int64_t>(p.ids.size()) + 1) / 2;
    if (half >= floor_) {
      const auto parts = cascade::split_into_chunks(*m_.tok, p.text, half);
      if (parts.size() > 1) {
        for (const cascade::Chunk& c : parts) {
          Piece h;
          h.text = p.text.substr(c.byte_begin, c.byte_end - c.byte_begin);
          h.ids = c.ids;
          p.halves.push_back(std::move(h));
        }
        for (Piece& h : p.halves) next.push_back(&h);
        return;
      }
    }
    p.plain = true;
    std::vector<int64_t> ids(p.ids.begin(), p.ids.end());
    p.precision = char_precision(text_of(ids), p.text);  // < 1 only where the tokenizer normalises
  }

  cascade::LoadedC3& m_;
  const cascade::CompressOptions& opt_;
  const VerifyOptions& v_;
  int64_t floor_;
};

}  // namespace

double VerifiedResult::ratio(int64_t L) const {
  const int64_t slots = latent_chunks * L + plain_tokens;
  return slots > 0 ? double(source.tokens) / double(slots) : 0.0;
}

nlohmann::ordered_json VerifiedResult::to_json(int64_t L, const VerifyOptions* verify) const {
  nlohmann::ordered_json j = {{"tokens", source.tokens},
                              {"chars", source.chars},
                              {"bytes", source.bytes},
                              {"chunks", latent_chunks + plain_chunks},
                              {"latent_chunks", latent_chunks},
                              {"plain_chunks", plain_chunks},
                              {"plain_tokens", plain_tokens},
                              {"slots", latent_chunks * L + plain_tokens},
                              {"ratio", ratio(L)},
                              {"verified", verify != nullptr},
                              {"min_precision", nullptr},
                              {"lowest_precision", nullptr},
                              {"encodes", encodes}};
  if (verify) {
    j["min_precision"] = verify->min_precision;
    j["lowest_precision"] = lowest_precision;
  }
  return j;
}

VerifiedResult VerifiedResult::unverified(const cascade::CompressResult& source) {
  VerifiedResult r;
  r.source = source;
  r.latent_chunks = source.chunks;
  r.encodes = source.chunks;
  return r;
}

// The compressor's state between steps. Pieces are settled group by group: `group` holds the
// first-cut chunks being settled, `level` the pieces of the current level (group members or
// halves), `at` how many of them are tried, `next` the halves of this level's failures.
struct VerifiedCompressor::State {
  State(cascade::LoadedC3& m, const cascade::CompressOptions& o, const VerifyOptions& verify,
        const std::string& path)
      : m(m),
        opt(o),
        v(verify),
        floor(v.floor_tokens > 0 ? v.floor_tokens : m.model->latent_len()),
        verifier(m, opt, v, floor) {
    const cascade::LatentMeta meta = cascade::latent_meta(m, opt.dtype);
    in_memory = path.empty();
    writer = in_memory ? std::make_unique<cascade::LatentWriter>(meta)
                       : std::make_unique<cascade::LatentWriter>(path, meta);
  }
  cascade::LoadedC3& m;
  const cascade::CompressOptions opt;
  const VerifyOptions v;
  const int64_t floor;
  Verifier verifier;  // holds references to opt and v above
  std::unique_ptr<cascade::LatentWriter> writer;
  bool in_memory = false;
  std::string bytes;
  VerifiedResult r;
  std::deque<Piece> waiting;
  std::vector<Piece> group;
  std::vector<Piece*> level, next;
  size_t at = 0;
};

VerifiedCompressor::VerifiedCompressor(cascade::LoadedC3& m, const cascade::CompressOptions& opt,
                                       const VerifyOptions& v, const std::string& out_path) {
  C3_CHECK(v.min_precision >= 0.0 && v.min_precision <= 1.0,
           "--min-precision must lie in [0, 1], got {}", v.min_precision);
  C3_CHECK(v.floor_tokens >= 0, "--verify-floor must be >= 0 tokens, got {}", v.floor_tokens);
  C3_CHECK(opt.batch_size > 0, "--batch must be positive, got {}", opt.batch_size);
  s_ = std::make_unique<State>(m, opt, v, out_path);
}

VerifiedCompressor::~VerifiedCompressor() = default;

void VerifiedCompressor::add(const cascade::Chunk& c, std::string_view text) {
  Piece p;
  p.text = std::string(text);
  p.ids = c.ids;
  s_->waiting.push_back(std::move(p));
}

int64_t VerifiedCompressor::waiting() const { return static_cast<int64_t>(s_->waiting.size()); }

bool VerifiedCompressor::step() {
  State& s = *s_;
  const size_t batch = static_cast<size_t>(s.opt.batch_size);
  if (s.level.empty()) {  // the next group
    if (s.waiting.empty()) return false;
    s.group.clear();
    while (!s.waiting.empty() && s.group.size() < batch) {
      s.group.push_back(std::move(s.waiting.front()));
      s.waiting.pop_front();
    }
    for (Piece& p : s.group) s.level.push_back(&p);
    s.at = 0;
  }
  torch::NoGradGuard no_grad;
  const size_t end = std::min(s.level.size(), s.at + batch);
  s.verifier.try_as_latents(std::vector<Piece*>(s.level.begin() + s.at, s.level.begin() + end),
                            s.next);
  s.r.encodes += static_cast<int64_t>(end - s.at);
  s.at = end;
  if (s.at == s.level.size()) {  // the level is settled; its failures' halves make the next
    s.level = std::move(s.next);
    s.next.clear();
    s.at = 0;
    if (s.level.empty()) {
      for (const Piece& p : s.group) s.verifier.write(p, *s.writer, s.r);
      s.group.clear();
    }
  }
  return !s.level.empty() || !s.waiting.empty();
}

VerifiedResult VerifiedCompressor::finish(const cascade::CompressResult& source) {
  State& s = *s_;
  C3_CHECK(s.level.empty() && s.waiting.empty(), "VerifiedCompressor::finish before the last step");
  cascade::Verification ver;
  ver.min_precision = s.v.min_precision;
  ver.floor_tokens = s.floor;
  ver.decode = cascade::recorded_decode(s.v.decode, s.m);
  s.writer->set_verification(ver);
  s.writer->set_source(source.tokens, source.chars, source.bytes);
  if (s.in_memory) {
    s.bytes = s.writer->finish_bytes();
  } else {
    s.writer->finish();
  }
  s.r.source = source;
  return s.r;
}

const std::string& VerifiedCompressor::bytes() const { return s_->bytes; }

VerifiedResult compress_verified_to_file(cascade::LoadedC3& m, std::istream& in,
                                         const std::string& in_name, const std::string& out_path,
                                         const cascade::CompressOptions& opt,
                                         const VerifyOptions& v) {
  VerifiedCompressor vc(m, opt, v, out_path);
  const int64_t max_tokens =
      opt.max_passage_tokens > 0 ? opt.max_passage_tokens : m.model->config.max_passage_tokens;
  // A group is settled as soon as it is full, which bounds the text and latents held.
  auto on_chunk = [&](const cascade::Chunk& c, std::string_view text) {
    vc.add(c, text);
    if (vc.waiting() >= opt.batch_size)
      while (vc.step()) {
      }
  };
  const cascade::CompressResult source = cascade::read_chunks(
      *m.tok, in, in_name, max_tokens, opt.block_bytes, opt.progress, on_chunk);
  while (vc.step()) {
  }
  return vc.finish(source);
}

}  // namespace c3::eval
