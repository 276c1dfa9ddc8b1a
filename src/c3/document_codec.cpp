// Streaming compress/decompress of whole documents through the chunker and .c3 files.
#include "c3/document_codec.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include "c3/chunker.h"
#include "util/error.h"
#include "util/progress_bar.h"
#include "tokenizer/utf8.h"

namespace c3::cascade {

using tokenizer::find_invalid_utf8;

static size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

static bool only_whitespace(std::string_view s) {
  return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos;
}

int64_t chunk_size(const LoadedC3& m, int64_t requested) {
  const int64_t n = requested > 0 ? requested : m.model->config.max_passage_tokens;
  C3_CHECK(n >= 8, "--chunk-tokens must be at least 8, got {}", n);
  return n;
}

CompressResult read_chunks(const tokenizer::BpeTokenizer& tok, std::istream& in,
                           const std::string& in_name, int64_t max_tokens, size_t block_bytes,
                           bool progress, const ChunkSink& sink) {
  C3_CHECK(max_tokens >= 8, "--chunk-tokens must be at least 8, got {}", max_tokens);
  CompressResult res;
  std::string pending;
  std::vector<char> block(block_bytes);
  // Only drawn when asked for: a bar that is never advanced would still print on finish().
  std::optional<ProgressBar> bar;
  if (progress) bar.emplace("compress", 0, "B");
  bool all_space = true, any_plain = false, eof = false;
  int64_t offset = 0;  // byte offset of `pending` in the input
  while (!eof) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const size_t got = static_cast<size_t>(in.gcount());
    if (in.bad()) fail("{}: read error", in_name);
    eof = got == 0;
    pending.append(block.data(), got);
    if (!eof && pending.size() < block_bytes) continue;
    // Whole blocks up to a paragraph/line/word boundary; the tail waits for the next read.
    const size_t take = eof ? pending.size() : block_boundary(pending, pending.size() - 1);
    std::string_view piece(pending.data(), take);
    const size_t bad = find_invalid_utf8(piece);
    C3_CHECK(bad == std::string_view::npos,
             "{}: invalid UTF-8 at byte offset {}. c3 compresses UTF-8 text; convert the input "
             "(e.g. with iconv) first.", in_name, offset + static_cast<int64_t>(bad));
    all_space = all_space && only_whitespace(piece);
    for (const Chunk& c : split_into_chunks(tok, piece, max_tokens)) {
      for (int32_t id : c.ids) any_plain = any_plain || !tok.is_special(id);
      res.tokens += static_cast<int64_t>(c.ids.size());
      ++res.chunks;
      sink(c, piece.substr(c.byte_begin, c.byte_end - c.byte_begin));
    }
    res.bytes += static_cast<int64_t>(take);
    res.chars += static_cast<int64_t>(utf8_length(piece));
    offset += static_cast<int64_t>(take);
    pending.erase(0, take);
    if (bar) bar->set(res.bytes);
  }
  C3_CHECK(res.bytes > 0, "{}: the input is empty; there is nothing to compress", in_name);
  C3_CHECK(!all_space, "{}: the input is only whitespace; there is nothing to compress", in_name);
  C3_CHECK(any_plain,
           "{}: the input holds only special tokens (like <|im_end|>); there is no "
           "text to compress",
           in_name);
  if (bar) bar->finish();
  return res;
}

CompressResult compress_stream(LoadedC3& m, std::istream& in, const std::string& in_name,
                               const CompressOptions& opt, const LatentSink& sink) {
  const int64_t max_tokens = chunk_size(m, opt.max_passage_tokens);
  std::vector<std::vector<int32_t>> batch;
  std::vector<int64_t> batch_bytes;
  torch::NoGradGuard no_grad;
  auto flush = [&]() {
    if (batch.empty()) return;
    sink(m.model->compress(batch), batch, batch_bytes);
    batch.clear();
    batch_bytes.clear();
  };
  auto on_chunk = [&](const Chunk& c, std::string_view) {
    batch.push_back(c.ids);
    batch_bytes.push_back(c.byte_end - c.byte_begin);
    if (static_cast<int64_t>(batch.size()) >= opt.batch_size) flush();
  };
  CompressResult res =
      read_chunks(*m.tok, in, in_name, max_tokens, opt.block_bytes, opt.progress, on_chunk);
  flush();
  return res;
}

LatentMeta latent_meta(const LoadedC3& m, const std::string& dtype) {
  LatentMeta meta;
  meta.model_fingerprint = m.fingerprint;
  meta.tokenizer_hash = m.tok->file_hash();
  meta.latent_len = m.model->latent_len();
  meta.hidden = m.model->config.decoder.hidden_size;
  meta.dtype = dtype;
  return meta;
}

CompressResult compress_to_file(LoadedC3& m, std::istream& in, const std::string& in_name,
                                const std::string& out_path, const CompressOptions& opt) {
  LatentWriter writer(out_path, latent_meta(m, opt.dtype));
  CompressResult res = compress_stream(
      m, in, in_name, opt,
      [&](const at::Tensor& lat, const std::vector<std::vector<int32_t>>& ids,
          const std::vector<int64_t>& bytes) {
        std::vector<int64_t> toks;
        for (auto& c : ids) toks.push_back(static_cast<int64_t>(c.size()));
        writer.append(lat, bytes, toks);
      });
  writer.set_source(res.tokens, res.chars, res.bytes);
  writer.finish();
  return res;
}

std::string compress_to_bytes(LoadedC3& m, const std::string& text, const std::string& name,
                              const CompressOptions& opt, CompressResult* result) {
  LatentMeta meta = latent_meta(m, opt.dtype);
  std::vector<at::Tensor> lat;
  std::istringstream in(text);
  CompressResult res = compress_stream(
      m, in, name, opt,
      [&](const at::Tensor& l, const std::vector<std::vector<int32_t>>& ids,
          const std::vector<int64_t>& bytes) {
        lat.push_back(l);
        meta.chunk_bytes.insert(meta.chunk_bytes.end(), bytes.begin(), bytes.end());
        for (auto& c : ids) meta.chunk_tokens.push_back(static_cast<int64_t>(c.size()));
      });
  meta.source_tokens = res.tokens;
  meta.source_chars = res.chars;
  meta.source_bytes = res.bytes;
  if (result) *result = res;
  return latent_file_bytes(meta, at::cat(lat, 0));
}

std::vector<std::vector<int64_t>> decode_latents(LoadedC3& m, const at::Tensor& latents,
                                                 const std::vector<int64_t>& tokens,
                                                 const DecompressOptions& opt) {
  DecompressOptions d = opt;
  d.source_tokens = tokens;
  return m.model->decompress(latents.to(m.model->device(), m.model->Q->weight.scalar_type()), d);
}

at::Tensor as_stored(const at::Tensor& latents, const std::string& dtype) {
  return latents.to(dtype == "BF16" ? at::kBFloat16 : at::kFloat).to(latents.scalar_type());
}

DecompressOptions decompress_options(const VerifiedDecode& d) {
  DecompressOptions o;
  o.max_new_tokens = d.max_new_tokens;
  o.no_repeat_ngram_size = d.no_repeat_ngram_size;
  o.stop_at_im_end = d.stop_at_im_end;
  o.length_cap = d.length_cap;
  o.num_beams = d.num_beams;
  return o;
}

VerifiedDecode recorded_decode(const DecompressOptions& d, const LoadedC3& m) {
  VerifiedDecode r;
  r.max_new_tokens = d.max_new_tokens;
  r.no_repeat_ngram_size = d.no_repeat_ngram_size;
  r.stop_at_im_end = d.stop_at_im_end;
  r.length_cap = d.length_cap;
  r.num_beams = d.num_beams;
  r.device = m.model->device().str();
  r.dtype = m.model->Q->weight.scalar_type() == at::kBFloat16 ? "BF16" : "F32";
  return r;
}

std::string device_change(const VerifiedDecode& rec, const LoadedC3& m) {
  const VerifiedDecode now = recorded_decode(DecompressOptions{}, m);
  if (now.device == rec.device && now.dtype == rec.dtype) return "";
  return fmt::format("device/dtype (recorded {} {}, now {} {})", rec.device, rec.dtype, now.device,
                     now.dtype);
}

DecompressOptions decode_over_recorded(const VerifiedDecode& rec, const DecodeOverrides& given,
                                       const LoadedC3& m, std::vector<std::string>* warnings) {
  DecompressOptions o = decompress_options(rec);
  std::vector<std::string> changed;
  auto take = [&](const auto& g, auto& field) {
    if (!g.value || *g.value == field) return;
    changed.push_back(fmt::format("{} (recorded {}, now {})", g.name, field, *g.value));
    field = *g.value;
  };
  take(given.beams, o.num_beams);
  take(given.length_cap, o.length_cap);
  take(given.no_repeat_ngram, o.no_repeat_ngram_size);
  take(given.max_new_tokens, o.max_new_tokens);
  take(given.stop, o.stop_at_im_end);
  if (std::string d = device_change(rec, m); !d.empty()) changed.push_back(d);
  for (const std::string& c : changed)
    warnings->push_back(c + ": the recorded precision holds for the recorded settings only");
  return o;
}

std::vector<StoredChunk> stored_chunks(const LatentFile& f, int64_t vocab) {
  // Latents made in memory (Python, the service) carry no storage records: all chunks are latents.
  const std::vector<uint8_t>& plain = f.meta.records.plain;
  const int64_t n = plain.empty() ? f.latents.size(0) : static_cast<int64_t>(plain.size());
  const int32_t* plain_ids =
      f.plain_tokens.defined() ? f.plain_tokens.data_ptr<int32_t>() : nullptr;
  std::vector<StoredChunk> out(n);
  int64_t latent_row = 0, plain_pos = 0;
  for (int64_t i = 0; i < n; ++i) {
    StoredChunk& c = out[i];
    c.plain = !plain.empty() && plain[i] != 0;
    if (!c.plain) {
      c.latent_row = latent_row++;
      continue;
    }
    const int64_t len = f.meta.chunk_tokens[i];
    c.ids.assign(plain_ids + plain_pos, plain_ids + plain_pos + len);
    plain_pos += len;
    for (int64_t id : c.ids)
      C3_CHECK(id >= 0 && id < vocab,
               "chunk {} holds token id {}, outside the tokenizer's {} "
               "tokens; the .c3 file is damaged or was made with another tokenizer",
               i, id, vocab);
  }
  return out;
}

std::vector<std::vector<int64_t>> decompress_to_stream(LoadedC3& m, const LatentFile& f,
                                                       std::ostream& out,
                                                       const DecompressStreamOptions& opt) {
  std::vector<StoredChunk> chunks = stored_chunks(f, m.tok->vocab_size());
  const int64_t n = static_cast<int64_t>(chunks.size());
  const bool lengths = static_cast<int64_t>(f.meta.chunk_tokens.size()) == n;
  std::vector<std::vector<int64_t>> all(n);
  std::optional<ProgressBar> bar;
  if (opt.progress) bar.emplace("decompress", n, "chunk");
  torch::NoGradGuard no_grad;
  // Each turn decodes the next batch_size latent chunks, then writes every chunk up to the next
  // latent chunk not decoded yet (plain chunks as they come, as their ids).
  int64_t done = 0;
  while (done < n) {
    std::vector<int64_t> idx, toks;  // the batch's chunks and their source lengths
    int64_t end = done;
    for (; end < n; ++end) {
      if (chunks[end].plain) {
        all[end] = std::move(chunks[end].ids);
        continue;
      }
      if (static_cast<int64_t>(idx.size()) == opt.batch_size) break;
      idx.push_back(end);
      if (lengths) toks.push_back(f.meta.chunk_tokens[end]);
    }
    if (!idx.empty()) {
      auto rows = decode_latents(
          m, f.latents.narrow(0, chunks[idx[0]].latent_row, static_cast<int64_t>(idx.size())),
          toks, opt.decode);
      for (size_t k = 0; k < idx.size(); ++k) all[idx[k]] = std::move(rows[k]);
    }
    for (; done < end; ++done)
      out << m.tok->decode(std::vector<int32_t>(all[done].begin(), all[done].end()),
                           /*skip_special_tokens=*/false);
    out.flush();
    if (bar) bar->set(done);
  }
  if (bar) bar->finish();
  return all;
}

}  // namespace c3::cascade
