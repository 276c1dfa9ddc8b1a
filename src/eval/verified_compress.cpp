// Verified compression: encode, decode, score, and cut what falls short, batch by batch.
#include "eval/verified_compress.h"

#include <algorithm>

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

  // Settles every piece: tries all of them as latents, batch by batch, then the halves of those
  // that fell short, level by level (so halves of different chunks share batches).
  void settle(std::vector<Piece*> work, VerifiedResult& r) {
    while (!work.empty()) {
      std::vector<Piece*> next;
      for (size_t i = 0; i < work.size(); i += static_cast<size_t>(opt_.batch_size)) {
        const size_t end = std::min(work.size(), i + static_cast<size_t>(opt_.batch_size));
        try_as_latents(std::vector<Piece*>(work.begin() + i, work.begin() + end), next);
        r.encodes += static_cast<int64_t>(end - i);
      }
      work = std::move(next);
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

  // Halves of at most ceil(n / 2) tokens at text boundaries (chunker.h), or plain at the floor.
  void cut(Piece& p, std::vector<Piece*>& next) {
    const int64_t half = (static_cast<int64_t>(p.ids.size()) + 1) / 2;
    if (half >= floor_) {
      const auto parts = cascade::split_into_chunks(*m_.tok, p.text, half);
      if (parts.size() > 1) {
        for (const cascade::Chunk& c : parts)
          p.halves.push_back({p.text.substr(c.byte_begin, c.byte_end - c.byte_begin), c.ids});
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

VerifiedResult compress_verified_to_file(cascade::LoadedC3& m, std::istream& in,
                                         const std::string& in_name, const std::string& out_path,
                                         const cascade::CompressOptions& opt,
                                         const VerifyOptions& v) {
  C3_CHECK(v.min_precision >= 0.0 && v.min_precision <= 1.0,
           "--min-precision must lie in [0, 1], got {}", v.min_precision);
  C3_CHECK(v.floor_tokens >= 0, "--verify-floor must be >= 0 tokens, got {}", v.floor_tokens);
  C3_CHECK(opt.batch_size > 0, "--batch must be positive, got {}", opt.batch_size);
  const int64_t L = m.model->latent_len();
  const int64_t floor = v.floor_tokens > 0 ? v.floor_tokens : L;
  cascade::LatentMeta meta;
  meta.model_fingerprint = m.fingerprint;
  meta.tokenizer_hash = m.tok->file_hash();
  meta.latent_len = L;
  meta.hidden = m.model->config.decoder.hidden_size;
  meta.dtype = opt.dtype;
  cascade::LatentWriter writer(out_path, meta);

  VerifiedResult r;
  Verifier verifier(m, opt, v, floor);
  torch::NoGradGuard no_grad;
  std::vector<Piece> batch;
  auto flush = [&]() {
    std::vector<Piece*> work;
    for (Piece& p : batch) work.push_back(&p);
    verifier.settle(work, r);
    for (const Piece& p : batch) verifier.write(p, writer, r);
    batch.clear();
  };
  const int64_t max_tokens =
      opt.max_passage_tokens > 0 ? opt.max_passage_tokens : m.model->config.max_passage_tokens;
  auto on_chunk = [&](const cascade::Chunk& c, std::string_view text) {
    batch.push_back({std::string(text), c.ids});
    if (static_cast<int64_t>(batch.size()) >= opt.batch_size) flush();
  };
  r.source = cascade::read_chunks(*m.tok, in, in_name, max_tokens, opt.block_bytes, opt.progress,
                                  on_chunk);
  flush();

  cascade::Verification ver;
  ver.min_precision = v.min_precision;
  ver.floor_tokens = floor;
  ver.decode = cascade::recorded_decode(v.decode, m);
  writer.set_verification(ver);
  writer.set_source(r.source.tokens, r.source.chars, r.source.bytes);
  writer.finish();
  return r;
}

}  // namespace c3::eval
