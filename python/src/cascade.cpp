// c3.Cascade: load, compress, decompress and roundtrip over the library's document codec and
// eval::roundtrip_text, so Python gets what the CLI gets for the same call.
#include "cascade.h"

#include <pybind11/stl.h>

#include <sstream>

#include "arguments.h"
#include "bindings.h"
#include "gil.h"
#include "io/torch_compat.h"
#include "json_value.h"
#include "tokenizer.h"
#include "util/error.h"

namespace c3::python {

std::shared_ptr<Cascade> Cascade::load(const std::string& path, at::Device device,
                                       at::ScalarType dtype) {
  // As the CLI does at start: no per-shape cuDNN attention planning (io/torch_compat.h).
  if (device.is_cuda()) compat::prefer_flash_attention();
  return std::shared_ptr<Cascade>(new Cascade(cascade::load_c3(path, dtype, device)));
}

namespace {

// One text into latents in memory, with what LatentWriter would record in a .c3 file.
Latents compress_text(cascade::LoadedC3& m, const std::string& text, const std::string& name,
                      const cascade::CompressOptions& opt) {
  Latents l;
  cascade::LatentMeta& meta = l.meta;
  meta.model_fingerprint = m.fingerprint;
  meta.tokenizer_hash = m.tok->file_hash();
  meta.latent_len = m.model->latent_len();
  meta.hidden = m.model->config.decoder.hidden_size;
  std::vector<at::Tensor> parts;
  std::istringstream in(text);
  const cascade::CompressResult r = cascade::compress_stream(
      m, in, name, opt,
      [&](const at::Tensor& lat, const std::vector<std::vector<int32_t>>& ids,
          const std::vector<int64_t>& bytes) {
        parts.push_back(lat);
        for (const auto& c : ids) meta.chunk_tokens.push_back(static_cast<int64_t>(c.size()));
        meta.chunk_bytes.insert(meta.chunk_bytes.end(), bytes.begin(), bytes.end());
      });
  meta.source_tokens = r.tokens;
  meta.source_chars = r.chars;
  meta.source_bytes = r.bytes;
  l.tensor = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  meta.dtype = l.tensor.scalar_type() == at::kBFloat16 ? "BF16" : "F32";
  return l;
}

}  // namespace

std::vector<Latents> Cascade::compress(const std::vector<std::string>& texts,
                                       const cascade::CompressOptions& opt) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Latents> out;
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(compress_text(m_, texts[i], fmt::format("texts[{}]", i), opt));
  return out;
}

std::vector<std::string> Cascade::decompress(const std::vector<Latents>& latents,
                                             const cascade::DecompressStreamOptions& opt) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (size_t i = 0; i < latents.size(); ++i) {
    const cascade::LatentFile f{latents[i].meta, latents[i].tensor, at::Tensor()};  // no plain chunks
    cascade::check_latents_match(f, fmt::format("latents[{}]", i), m_.fingerprint,
                                 m_.model->latent_len(), m_.model->config.decoder.hidden_size);
    std::ostringstream text;
    cascade::decompress_to_stream(m_, f, text, opt);
    out.push_back(text.str());
  }
  return out;
}

std::vector<eval::RoundtripResult> Cascade::roundtrip(const std::vector<std::string>& texts,
                                                      const eval::RoundtripOptions& opt) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<eval::RoundtripResult> out;
  for (size_t i = 0; i < texts.size(); ++i)
    out.push_back(eval::roundtrip_text(m_, texts[i], fmt::format("texts[{}]", i), opt));
  return out;
}

eval::VerifiedResult Cascade::compress_file(const std::string& text, const std::string& path,
                                            const cascade::CompressOptions& opt,
                                            const eval::VerifyOptions* verify) {
  std::lock_guard<std::mutex> lock(mu_);
  std::istringstream in(text);
  if (verify) return eval::compress_verified_to_file(m_, in, "text", path, opt, *verify);
  return eval::VerifiedResult::unverified(cascade::compress_to_file(m_, in, "text", path, opt));
}

std::string Cascade::decompress_file(const cascade::LatentFile& f, const std::string& path,
                                     const cascade::DecompressStreamOptions& opt) {
  std::lock_guard<std::mutex> lock(mu_);
  cascade::check_latents_match(f, path, m_.fingerprint, m_.model->latent_len(),
                               m_.model->config.decoder.hidden_size);
  std::ostringstream text;
  cascade::decompress_to_stream(m_, f, text, opt);
  return text.str();
}

namespace {

// The decoding keywords of decompress and roundtrip, checked as the CLI's flags are.
cascade::DecompressOptions decode_options(int64_t beams, int64_t no_repeat_ngram,
                                          int64_t max_new_tokens, double length_cap) {
  C3_CHECK(beams >= 1 && beams <= 64, "beams={}: expected 1 (greedy) to 64", beams);
  C3_CHECK(no_repeat_ngram >= 0, "no_repeat_ngram={}: expected 0 (off) or more", no_repeat_ngram);
  C3_CHECK(max_new_tokens >= 1, "max_new_tokens={}: expected at least 1", max_new_tokens);
  C3_CHECK(length_cap >= 0, "length_cap={}: expected 0 (off) or more", length_cap);
  cascade::DecompressOptions d;
  d.num_beams = beams;
  d.no_repeat_ngram_size = no_repeat_ngram;
  d.max_new_tokens = max_new_tokens;
  d.length_cap = length_cap;
  return d;
}

void check_sizes(int64_t batch_size, int64_t chunk_tokens) {
  C3_CHECK(batch_size >= 1, "batch_size={}: expected at least 1", batch_size);
  C3_CHECK(chunk_tokens == 0 || chunk_tokens >= 8,
           "chunk_tokens={}: expected 0 (the model's own chunk size) or at least 8", chunk_tokens);
}

std::vector<Latents> latents_arg(const py::handle& latents) {
  if (py::isinstance<Latents>(latents))
    throw py::type_error("latents must be a list of c3.Latents; pass [latents] for one document");
  if (!py::isinstance<py::sequence>(latents))
    throw py::type_error("latents must be a list of c3.Latents, got " + type_name(latents));
  std::vector<Latents> out;
  for (const py::handle item : latents) {
    if (!py::isinstance<Latents>(item))
      throw py::type_error(
          fmt::format("latents[{}] must be a c3.Latents, got {}", out.size(), type_name(item)));
    out.push_back(item.cast<const Latents&>());
  }
  return out;
}

// A path given as str or os.PathLike.
std::string path_arg(const py::handle& path, const char* name) {
  if (py::isinstance<py::str>(path)) return path.cast<std::string>();
  if (py::hasattr(path, "__fspath__")) return py::str(py::module_::import("os").attr("fspath")(path));
  throw py::type_error(fmt::format("{} must be a str or os.PathLike, got {}", name, type_name(path)));
}

// What compress_file returns: the counts `c3 compress` prints, as a dict.
py::object compress_file_result(const eval::VerifiedResult& r, const std::string& path, int64_t L,
                                const eval::VerifyOptions* verify) {
  nlohmann::ordered_json j = {{"path", path}};
  j.update(r.to_json(L, verify));
  return json_value(j);
}

// decompress_file's decode settings: a verified file's recorded ones (the keywords left at None
// keep them; one that changes a recorded value warns, as `c3 decompress` does), else the
// keywords over decompress's defaults.
cascade::DecompressOptions file_decode_options(const cascade::LatentFile& f,
                                               const cascade::LoadedC3& m,
                                               const std::string& path, const py::object& beams,
                                               const py::object& no_repeat_ngram,
                                               const py::object& max_new_tokens,
                                               const py::object& length_cap) {
  cascade::DecodeOverrides given;
  auto take = [](auto& setting, const py::object& value) {
    using T = typename decltype(setting.value)::value_type;
    if (!value.is_none()) setting.value = value.cast<T>();
  };
  take(given.beams, beams);
  take(given.no_repeat_ngram, no_repeat_ngram);
  take(given.max_new_tokens, max_new_tokens);
  take(given.length_cap, length_cap);
  const auto& rec = f.meta.records.verification;
  std::vector<std::string> warnings;
  const cascade::DecompressOptions o =
      rec ? cascade::decode_over_recorded(rec->decode, given, m, &warnings)
          : decode_options(given.beams.value.value_or(1), given.no_repeat_ngram.value.value_or(20),
                           given.max_new_tokens.value.value_or(4096),
                           given.length_cap.value.value_or(1.5));
  decode_options(o.num_beams, o.no_repeat_ngram_size, o.max_new_tokens, o.length_cap);  // checks
  for (const std::string& w : warnings) {
    const std::string msg = path + ": " + w;
    if (PyErr_WarnEx(PyExc_UserWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
  }
  return o;
}

}  // namespace

void bind_cascade(py::module_& m) {
  py::class_<Cascade, std::shared_ptr<Cascade>>(
      m, "Cascade",
      "A C3 checkpoint (official layout: config.json, weights, llm1/, tokenizer) loaded for "
      "compressing text into latents and regenerating it.")
      .def_static(
          "load",
          [](const std::string& path, const py::object& device, const py::object& dtype) {
            const at::Device d = device_arg(device);
            const at::ScalarType t = dtype_arg(dtype, d, "dtype");
            NoGil no_gil;
            return Cascade::load(path, d, t);
          },
          py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "auto",
          "Loads a checkpoint folder. device: 'cpu', 'cuda' or 'cuda:N'; dtype: 'auto' (bf16 on "
          "CUDA, f32 on the CPU), 'f32' or 'bf16'.")
      .def(
          "compress",
          [](Cascade& c, const py::object& texts, int64_t chunk_tokens, int64_t batch_size) {
            const std::vector<std::string> v = texts_arg(texts, "texts");
            check_sizes(batch_size, chunk_tokens);
            cascade::CompressOptions o;
            o.max_passage_tokens = chunk_tokens;
            o.batch_size = batch_size;
            o.progress = false;
            NoGil no_gil;
            return c.compress(v, o);
          },
          py::arg("texts"), py::arg("chunk_tokens") = 0, py::arg("batch_size") = 8,
          "One c3.Latents per text, each chunked at paragraph, sentence, then word boundaries "
          "into chunks of at most chunk_tokens tokens (0: the model's own size), batch_size "
          "chunks per forward pass.")
      .def(
          "decompress",
          [](Cascade& c, const py::object& latents, int64_t beams, int64_t no_repeat_ngram,
             int64_t max_new_tokens, double length_cap, int64_t batch_size) {
            const std::vector<Latents> v = latents_arg(latents);
            check_sizes(batch_size, 0);
            cascade::DecompressStreamOptions o;
            o.decode = decode_options(beams, no_repeat_ngram, max_new_tokens, length_cap);
            o.batch_size = batch_size;
            o.progress = false;
            NoGil no_gil;
            return c.decompress(v, o);
          },
          py::arg("latents"), py::arg("beams") = 1, py::arg("no_repeat_ngram") = 20,
          py::arg("max_new_tokens") = 4096, py::arg("length_cap") = 1.5, py::arg("batch_size") = 8,
          "The text of each c3.Latents (greedy, or beam search with beams > 1). A chunk stops at "
          "<|im_end|>, after length_cap x its source tokens + 16 (0: off), or at max_new_tokens. "
          "c3.Error for latents made by another model.")
      .def(
          "roundtrip",
          [](Cascade& c, const py::object& texts, int64_t beams, int64_t no_repeat_ngram,
             int64_t max_new_tokens, double length_cap, int64_t chunk_tokens, int64_t batch_size) {
            const std::vector<std::string> v = texts_arg(texts, "texts");
            check_sizes(batch_size, chunk_tokens);
            eval::RoundtripOptions o;
            o.decode = decode_options(beams, no_repeat_ngram, max_new_tokens, length_cap);
            o.batch_size = batch_size;
            o.max_passage_tokens = chunk_tokens;
            std::vector<eval::RoundtripResult> r;
            {
              NoGil no_gil;
              r = c.roundtrip(v, o);
            }
            py::list out;
            for (const auto& x : r) out.append(json_value(x.to_json()));
            return out;
          },
          py::arg("texts"), py::arg("beams") = 1, py::arg("no_repeat_ngram") = 20,
          py::arg("max_new_tokens") = 4096, py::arg("length_cap") = 1.5,
          py::arg("chunk_tokens") = 0, py::arg("batch_size") = 8,
          "Compresses and regenerates each text in memory; one dict per text with the fields of "
          "`c3 roundtrip --json`: text, ids, tokens, chunks, latents, ratio, char_precision, "
          "exact_match, seconds.")
      .def(
          "compress_file",
          [](Cascade& c, const py::object& text, const py::object& path,
             const py::object& min_precision, int64_t verify_floor, int64_t chunk_tokens,
             int64_t batch_size, const std::string& latent_dtype, int64_t beams,
             int64_t no_repeat_ngram, int64_t max_new_tokens, double length_cap) {
            if (!py::isinstance<py::str>(text))
              throw py::type_error("text must be a str, got " + type_name(text));
            const std::string t = text.cast<std::string>();
            const std::string p = path_arg(path, "path");
            check_sizes(batch_size, chunk_tokens);
            C3_CHECK(latent_dtype == "bf16" || latent_dtype == "f32",
                     "latent_dtype='{}': expected 'bf16' or 'f32'", latent_dtype);
            cascade::CompressOptions o;
            o.max_passage_tokens = chunk_tokens;
            o.batch_size = batch_size;
            o.dtype = latent_dtype == "f32" ? "F32" : "BF16";
            o.progress = false;
            eval::VerifyOptions v;
            const bool verify = !min_precision.is_none();
            if (verify) {
              v.min_precision = min_precision.cast<double>();
              C3_CHECK(v.min_precision >= 0 && v.min_precision <= 1,
                       "min_precision={}: expected a char precision from 0 to 1", v.min_precision);
              C3_CHECK(verify_floor >= 0, "verify_floor={}: expected 0 (L, the latent count) or "
                       "more tokens", verify_floor);
              v.floor_tokens = verify_floor;
              v.decode = decode_options(beams, no_repeat_ngram, max_new_tokens, length_cap);
            }
            eval::VerifiedResult r;
            {
              NoGil no_gil;
              r = c.compress_file(t, p, o, verify ? &v : nullptr);
            }
            return compress_file_result(r, p, c.loaded().model->latent_len(), verify ? &v : nullptr);
          },
          py::arg("text"), py::arg("path"), py::arg("min_precision") = py::none(),
          py::arg("verify_floor") = 0, py::arg("chunk_tokens") = 0, py::arg("batch_size") = 8,
          py::arg("latent_dtype") = "bf16", py::arg("beams") = 1, py::arg("no_repeat_ngram") = 20,
          py::arg("max_new_tokens") = 4096, py::arg("length_cap") = 1.5,
          "Writes `text` to a .c3 file at `path` (atomically), as `c3 compress` does. With "
          "min_precision P (0..1), as `c3 compress --min-precision P`: each chunk is decoded "
          "right after it is encoded (with beams, no_repeat_ngram, max_new_tokens, length_cap, "
          "which the file records for decompress_file), and a chunk below P is cut in halves, "
          "down to verify_floor tokens (0: L), below which it is stored as plain tokens. Returns "
          "a dict: path, tokens, chars, bytes, chunks, latent_chunks, plain_chunks, plain_tokens, "
          "slots, ratio, verified, min_precision, lowest_precision, encodes.")
      .def(
          "decompress_file",
          [](Cascade& c, const py::object& path, const py::object& beams,
             const py::object& no_repeat_ngram, const py::object& max_new_tokens,
             const py::object& length_cap, int64_t batch_size) {
            const std::string p = path_arg(path, "path");
            check_sizes(batch_size, 0);
            cascade::LatentFile f;
            {
              NoGil no_gil;
              f = cascade::read_latents(p);
            }
            cascade::DecompressStreamOptions o;
            o.decode = file_decode_options(f, c.loaded(), p, beams, no_repeat_ngram,
                                           max_new_tokens, length_cap);
            o.batch_size = batch_size;
            o.progress = false;
            NoGil no_gil;
            return c.decompress_file(f, p, o);
          },
          py::arg("path"), py::arg("beams") = py::none(), py::arg("no_repeat_ngram") = py::none(),
          py::arg("max_new_tokens") = py::none(), py::arg("length_cap") = py::none(),
          py::arg("batch_size") = 8,
          "The text of a .c3 file, as `c3 decompress` writes it, chunks stored as plain tokens "
          "included. A verified file (compress_file with min_precision, or `c3 compress "
          "--min-precision`) decodes with the settings it records; a keyword given here "
          "overrides one and warns (UserWarning) that the recorded precision holds for the "
          "recorded settings only. Other files: greedy, no_repeat_ngram 20, max_new_tokens "
          "4096, length_cap 1.5, unless given.")
      .def_property_readonly("path", [](Cascade& c) { return c.loaded().dir; })
      .def_property_readonly(
          "fingerprint", [](Cascade& c) { return c.loaded().fingerprint; },
          "XXH3-128 over the configs and every weight byte.")
      .def_property_readonly(
          "latent_len", [](Cascade& c) { return c.loaded().model->latent_len(); },
          "L: latent vectors per chunk.")
      .def_property_readonly(
          "hidden_size", [](Cascade& c) { return c.loaded().model->config.decoder.hidden_size; })
      .def_property_readonly(
          "max_passage_tokens",
          [](Cascade& c) { return c.loaded().model->config.max_passage_tokens; },
          "The model's own chunk size in tokens.")
      .def_property_readonly("device", [](Cascade& c) { return c.loaded().model->device().str(); })
      .def_property_readonly(
          "dtype",
          [](Cascade& c) {
            return c.loaded().model->Q->weight.scalar_type() == at::kBFloat16 ? "bfloat16"
                                                                              : "float32";
          },
          "'float32' or 'bfloat16'.")
      .def_property_readonly("tokenizer", [](Cascade& c) { return Tokenizer{c.loaded().tok}; })
      .def("__repr__", [](Cascade& c) {
        return fmt::format("c3.Cascade('{}', device='{}', L={})", c.loaded().dir,
                           c.loaded().model->device().str(), c.loaded().model->latent_len());
      });
}

}  // namespace c3::python
