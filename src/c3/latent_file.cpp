// .c3 files: written through a side file so arbitrarily many chunks stream to disk.
#include "c3/latent_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/ranges.h>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_int.h"

namespace c3::cascade {

namespace {

std::map<std::string, std::string> to_metadata(const LatentMeta& m, int64_t n_chunks) {
  std::map<std::string, std::string> md = {{"format", kLatentFormat},
                                           {"format_version", m.records.needs_v2() ? "2" : "1"},
                                           {"model_fingerprint", m.model_fingerprint},
                                           {"tokenizer_hash", m.tokenizer_hash},
                                           {"latent_token_len", std::to_string(m.latent_len)},
                                           {"hidden_size", std::to_string(m.hidden)},
                                           {"dtype", m.dtype},
                                           {"n_chunks", std::to_string(n_chunks)},
                                           {"source_tokens", std::to_string(m.source_tokens)},
                                           {"source_chars", std::to_string(m.source_chars)},
                                           {"source_bytes", std::to_string(m.source_bytes)},
                                           {"chunk_bytes", nlohmann::json(m.chunk_bytes).dump()},
                                           {"chunk_tokens", nlohmann::json(m.chunk_tokens).dump()}};
  if (m.records.needs_v2()) put_chunk_records(m.records, n_chunks, md);
  return md;
}

// An anonymous temporary file beside `path` (nothing is left behind on a crash).
FILE* open_side_file(const std::string& path, const char* what) {
  const std::string side = path + what + std::to_string(::getpid());
  FILE* f = std::fopen(side.c_str(), "wb+");
  if (!f)
    fail(
        "cannot write '{}': {}. Check that its folder exists and is writable, or choose another "
        "-o path.",
        path, std::strerror(errno));
  ::unlink(side.c_str());
  return f;
}

void write_bytes(FILE* f, const void* data, size_t n, const std::string& path) {
  if (n > 0 && std::fwrite(data, 1, n, f) != n)
    fail("cannot write '{}': {}. Free some space and retry.", path, std::strerror(errno));
}

void copy_side_file(FILE* f, std::ostream& out, const std::string& path) {
  if (std::fflush(f) != 0) fail("cannot write '{}': {}", path, std::strerror(errno));
  std::rewind(f);
  std::vector<char> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.write(buf.data(), got);
  if (std::ferror(f)) fail("cannot read back the chunks written for '{}'", path);
}

// The length prefix and the JSON header, padded to 8 bytes, that precede the data: `n_latent`
// chunks' latents, then (version 2) `n_plain_tokens` int32 ids of the plain chunks.
std::string file_header(const LatentMeta& meta, int64_t n_chunks, int64_t n_latent,
                        int64_t n_plain_tokens) {
  const int64_t elem = meta.dtype == "BF16" ? 2 : 4;
  const int64_t data_bytes = n_latent * meta.latent_len * meta.hidden * elem;
  nlohmann::json header;
  header["__metadata__"] = to_metadata(meta, n_chunks);
  header["latents"] = {{"dtype", meta.dtype},
                       {"shape", {n_latent, meta.latent_len, meta.hidden}},
                       {"data_offsets", {0, data_bytes}}};
  if (n_plain_tokens > 0)
    header["plain_tokens"] = {{"dtype", "I32"},
                              {"shape", {n_plain_tokens}},
                              {"data_offsets", {data_bytes, data_bytes + 4 * n_plain_tokens}}};
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');
  std::string out(8, '\0');
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + h;
}

void check_dtype(const std::string& dtype) {
  C3_CHECK(dtype == "BF16" || dtype == "F32", "latent dtype must be BF16 or F32, got {}", dtype);
}

// [n, L, C] latents as the stored dtype, contiguous on the CPU.
at::Tensor stored(const at::Tensor& latents, const LatentMeta& meta) {
  TORCH_CHECK(latents.dim() == 3 && latents.size(1) == meta.latent_len &&
                  latents.size(2) == meta.hidden,
              "latents must be [n, ", meta.latent_len, ", ", meta.hidden, "]");
  return latents.detach()
      .to(at::kCPU, meta.dtype == "BF16" ? at::kBFloat16 : at::kFloat)
      .contiguous();
}

LatentFile validate(const io::SafetensorsFile& f, const std::string& path);

}  // namespace

// Chunk data waiting for finish(): an unlinked side file beside the output, or (no path) memory.
struct LatentWriter::Spool {
  FILE* file = nullptr;
  std::string mem;
  ~Spool() {
    if (file) std::fclose(file);
  }
  void write(const void* data, size_t n, const std::string& path) {
    if (file) {
      write_bytes(file, data, n, path);
    } else {
      mem.append(static_cast<const char*>(data), n);
    }
  }
  void copy_to(std::ostream& out, const std::string& path) {
    if (file) {
      copy_side_file(file, out, path);
    } else {
      out.write(mem.data(), static_cast<std::streamsize>(mem.size()));
    }
  }
};

LatentWriter::LatentWriter(std::string path, LatentMeta meta)
    : path_(std::move(path)), meta_(std::move(meta)) {
  check_dtype(meta_.dtype);
  side_ = spool(".part.");
  meta_.chunk_bytes.clear();
  meta_.chunk_tokens.clear();
  meta_.records = {};
}

LatentWriter::LatentWriter(LatentMeta meta) : LatentWriter("", std::move(meta)) {}

LatentWriter::~LatentWriter() = default;

std::unique_ptr<LatentWriter::Spool> LatentWriter::spool(const char* what) const {
  auto s = std::make_unique<Spool>();
  if (!path_.empty()) s->file = open_side_file(path_, what);
  return s;
}

void LatentWriter::append(const at::Tensor& latents, const std::vector<int64_t>& chunk_bytes,
                          const std::vector<int64_t>& chunk_tokens) {
  const at::Tensor t = stored(latents, meta_);
  side_->write(t.data_ptr(), t.numel() * t.element_size(), path_);
  n_chunks_ += latents.size(0);
  n_latent_ += latents.size(0);
  meta_.chunk_bytes.insert(meta_.chunk_bytes.end(), chunk_bytes.begin(), chunk_bytes.end());
  meta_.chunk_tokens.insert(meta_.chunk_tokens.end(), chunk_tokens.begin(), chunk_tokens.end());
  meta_.records.plain.insert(meta_.records.plain.end(), latents.size(0), 0);
}

void LatentWriter::append_verified(const at::Tensor& latents, int64_t bytes, int64_t tokens,
                                   double precision) {
  append(latents.unsqueeze(0), {bytes}, {tokens});
  meta_.records.precision.push_back(precision);
}

void LatentWriter::append_plain(const std::vector<int32_t>& ids, int64_t bytes, double precision) {
  if (!plain_side_) plain_side_ = spool(".tokens.");
  plain_side_->write(ids.data(), ids.size() * sizeof(int32_t), path_);
  ++n_chunks_;
  n_plain_tokens_ += static_cast<int64_t>(ids.size());
  meta_.chunk_bytes.push_back(bytes);
  meta_.chunk_tokens.push_back(static_cast<int64_t>(ids.size()));
  meta_.records.plain.push_back(1);
  meta_.records.precision.push_back(precision);
}

void LatentWriter::set_verification(const Verification& v) { meta_.records.verification = v; }

void LatentWriter::set_source(int64_t tokens, int64_t chars, int64_t bytes) {
  meta_.source_tokens = tokens;
  meta_.source_chars = chars;
  meta_.source_bytes = bytes;
}

void LatentWriter::write(std::ostream& out) {
  C3_CHECK(!done_, "LatentWriter::finish called twice");
  done_ = true;
  const std::string h = file_header(meta_, n_chunks_, n_latent_, plain_side_ ? n_plain_tokens_ : 0);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  side_->copy_to(out, path_);
  if (plain_side_) plain_side_->copy_to(out, path_);
}

void LatentWriter::finish() {
  C3_CHECK(!path_.empty(), "LatentWriter::finish: an in-memory writer gives finish_bytes()");
  write_file_atomic(path_, [&](std::ostream& out) { write(out); });
}

std::string LatentWriter::finish_bytes() {
  C3_CHECK(path_.empty(), "LatentWriter::finish_bytes: this writer writes '{}'", path_);
  std::ostringstream out;
  write(out);
  return std::move(out).str();
}

std::string latent_file_bytes(const LatentMeta& meta, const at::Tensor& latents) {
  const int64_t n = latents.size(0);
  C3_CHECK(static_cast<int64_t>(meta.chunk_bytes.size()) == n &&
               static_cast<int64_t>(meta.chunk_tokens.size()) == n,
           "latent_file_bytes: {} chunk sizes for {} latent rows", meta.chunk_bytes.size(), n);
  LatentWriter w(meta);
  w.append(latents, meta.chunk_bytes, meta.chunk_tokens);
  w.set_source(meta.source_tokens, meta.source_chars, meta.source_bytes);
  return w.finish_bytes();
}

LatentFile read_latents(const std::string& path) {
  return validate(*io::SafetensorsFile::open(path), path);
}

LatentFile parse_latents(std::string bytes, const std::string& name) {
  return validate(*io::SafetensorsFile::from_bytes(std::move(bytes), name), name);
}

namespace {

LatentFile validate(const io::SafetensorsFile& file, const std::string& path) {
  const io::SafetensorsFile* f = &file;
  const auto& md = f->metadata();
  auto get = [&](const char* key) -> const std::string& {
    auto it = md.find(key);
    if (it == md.end())
      fail("'{}' is not a .c3 latent file: its metadata lacks '{}'. Make one with `c3 compress`.",
           path, key);
    return it->second;
  };
  auto get_int = [&](const char* key) -> int64_t {
    const std::string& s = get(key);
    try {
      size_t pos = 0;
      int64_t v = std::stoll(s, &pos);
      if (pos != s.size() || v < 0) throw std::invalid_argument(s);
      return v;
    } catch (const std::exception&) {
      fail("'{}': metadata field '{}' must be a non-negative integer, got '{}'", path, key, s);
    }
  };
  C3_CHECK(get("format") == kLatentFormat, "'{}' is not a .c3 latent file (format '{}')", path,
           get("format"));
  const int64_t version = get_int("format_version");
  C3_CHECK(version >= 1 && version <= kLatentFormatVersion,
           "'{}' has .c3 format version {}, this c3 reads versions 1 to {}; upgrade c3", path,
           get("format_version"), kLatentFormatVersion);
  LatentFile out;
  LatentMeta& m = out.meta;
  m.format_version = static_cast<int>(version);
  m.model_fingerprint = get("model_fingerprint");
  m.tokenizer_hash = get("tokenizer_hash");
  m.latent_len = get_int("latent_token_len");
  m.hidden = get_int("hidden_size");
  m.dtype = get("dtype");
  m.source_tokens = get_int("source_tokens");
  m.source_chars = get_int("source_chars");
  m.source_bytes = get_int("source_bytes");
  const int64_t n = get_int("n_chunks");
  auto int_list = [&](const char* key) {
    std::vector<int64_t> out;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(get(key));
    } catch (const nlohmann::json::exception& e) {
      fail("'{}': metadata field {} is not JSON ({})", path, key,
           std::string(e.what()).substr(0, 200));
    }
    C3_CHECK(j.is_array(), "'{}': metadata field {} must be a list of integers", path, key);
    for (const auto& e : j) {
      auto v = json_int<int64_t>(e);
      C3_CHECK(v.has_value() && *v >= 0, "'{}': metadata field {} holds {}, not a non-negative "
               "integer", path, key, e.dump().substr(0, 40));
      out.push_back(*v);
    }
    return out;
  };
  m.chunk_bytes = int_list("chunk_bytes");
  m.chunk_tokens = int_list("chunk_tokens");
  C3_CHECK(static_cast<int64_t>(m.chunk_bytes.size()) == n &&
               static_cast<int64_t>(m.chunk_tokens.size()) == n,
           "'{}': metadata lists {} chunk sizes but n_chunks = {}", path, m.chunk_bytes.size(), n);
  m.records = version >= 2 ? read_chunk_records(md, n, path) : ChunkRecords{};
  if (version == 1) m.records.plain.assign(n, 0);
  const int64_t n_plain = m.records.n_plain();
  int64_t plain_tokens = 0;
  for (int64_t i = 0; i < n; ++i) plain_tokens += m.records.plain[i] ? m.chunk_tokens[i] : 0;
  const io::TensorInfo* t = f->find("latents");
  const io::TensorInfo* p = f->find("plain_tokens");
  C3_CHECK(t != nullptr && (p != nullptr) == (n_plain > 0) &&
               f->tensors().size() == 1 + (n_plain > 0 ? 1u : 0u),
           "'{}' must hold a tensor named 'latents'{} and nothing else", path,
           n_plain > 0 ? " and one named 'plain_tokens'" : "");
  C3_CHECK(t->shape.size() == 3 && t->shape[0] == n - n_plain && t->shape[1] == m.latent_len &&
               t->shape[2] == m.hidden,
           "'{}': tensor 'latents' has shape [{}], metadata says [{}, {}, {}]", path,
           fmt::join(t->shape, ", "), n - n_plain, m.latent_len, m.hidden);
  C3_CHECK(io::dtype_name(t->dtype) == m.dtype, "'{}': tensor dtype {} but metadata says {}", path,
           io::dtype_name(t->dtype), m.dtype);
  out.latents = f->tensor("latents");
  if (p) {
    C3_CHECK(p->dtype == io::DType::I32 && p->shape.size() == 1 && p->shape[0] == plain_tokens,
             "'{}': tensor 'plain_tokens' must be I32 [{}] (the plain chunks' token counts), got "
             "{} [{}]",
             path, plain_tokens, io::dtype_name(p->dtype), fmt::join(p->shape, ", "));
    out.plain_tokens = f->tensor("plain_tokens");
  }
  return out;
}

}  // namespace

void check_latents_match(const LatentFile& f, const std::string& path,
                         const std::string& model_fingerprint, int64_t latent_len, int64_t hidden) {
  C3_CHECK(f.meta.model_fingerprint == model_fingerprint,
           "'{}' was made by another model (fingerprint {}) than the one loaded ({}). Decompress "
           "it with the model that compressed it.",
           path, f.meta.model_fingerprint, model_fingerprint);
  C3_CHECK(f.meta.latent_len == latent_len && f.meta.hidden == hidden,
           "'{}' holds {} latents of size {} per chunk but the model expects {} of size {}", path,
           f.meta.latent_len, f.meta.hidden, latent_len, hidden);
}

}  // namespace c3::cascade
