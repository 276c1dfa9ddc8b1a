// Parsing and checking request bodies: one helper per field type, each naming the field and the
// values it takes when it refuses one.
#include "serve/request.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "c3/document_codec.h"
#include "serve/base64.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/json_int.h"

namespace c3::serve {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& message, int status = 400) {
  throw BadRequest(status, message);
}

std::string clip(std::string s, size_t n = 200) {
  return s.size() > n ? s.substr(0, n) + "..." : s;
}

// The body as a JSON object holding only `known` fields.
json parse_body(const std::string& body, const std::vector<std::string>& known,
                const std::string& example) {
  if (body.empty()) bad("the request body is empty; send a JSON object, e.g. " + example);
  const size_t bad_byte = tokenizer::find_invalid_utf8(body);
  if (bad_byte != std::string::npos)
    bad(fmt::format("the request body is not valid UTF-8 (byte offset {}); send UTF-8 JSON, "
                    "e.g. {}", bad_byte, example));
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    bad(fmt::format("malformed JSON ({}); send a JSON object, e.g. {}", clip(e.what()), example));
  }
  if (!j.is_object())
    bad(fmt::format("the body is a JSON {}, not an object; send e.g. {}", j.type_name(), example));
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end())
      bad(fmt::format("unknown field '{}'; this route takes {}", clip(key, 60),
                      fmt::join(known, ", ")));
  }
  return j;
}

const std::string& get_string(const json& j, const char* field, const char* what) {
  if (!j.contains(field) || j[field].is_null())
    bad(fmt::format("missing field '{}' ({})", field, what));
  if (!j[field].is_string())
    bad(fmt::format("field '{}' must be a string ({}), got a {}", field, what,
                    j[field].type_name()));
  return j[field].get_ref<const std::string&>();
}

int64_t get_int(const json& j, const char* field, int64_t fallback, int64_t lo, int64_t hi) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  const auto v = json_int<int64_t>(j[field]);
  if (!v || *v < lo || *v > hi)
    bad(fmt::format("field '{}' must be an integer from {} to {}, got {}", field, lo, hi,
                    clip(j[field].dump(), 40)));
  return *v;
}

double get_number(const json& j, const char* field, double fallback, double lo, double hi) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  const json& v = j[field];
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < lo ||
      v.get<double>() > hi)
    bad(fmt::format("field '{}' must be a number from {} to {}, got {}", field, lo, hi,
                    clip(v.dump(), 40)));
  return v.get<double>();
}

bool get_bool(const json& j, const char* field, bool fallback) {
  if (!j.contains(field) || j[field].is_null()) return fallback;
  if (!j[field].is_boolean())
    bad(fmt::format("field '{}' must be true or false, got {}", field, clip(j[field].dump(), 40)));
  return j[field].get<bool>();
}

const std::vector<std::string> kDecodeFields = {"no_repeat_ngram", "max_new_tokens", "length_cap",
                                                "beams", "stop"};

// The decoding fields, with `c3 decompress`'s defaults.
cascade::DecompressOptions decode_options(const json& j, const RequestLimits& limits) {
  cascade::DecompressOptions o;
  o.no_repeat_ngram_size = get_int(j, "no_repeat_ngram", 20, 0, 1 << 20);
  o.max_new_tokens = get_int(j, "max_new_tokens", std::min<int64_t>(4096, limits.max_new_tokens),
                             0, limits.max_new_tokens);
  o.length_cap = get_number(j, "length_cap", 1.5, 0, 1000);
  o.num_beams = get_int(j, "beams", 1, 1, limits.max_beams);
  o.stop_at_im_end = get_bool(j, "stop", true);
  return o;
}

// The text cut into chunks as `c3 compress` cuts it; its errors (empty, whitespace only, only
// special tokens) become 400s.
TextRequest chunked_text(const json& j, const cascade::LoadedC3& m, const RequestLimits& limits) {
  TextRequest r;
  r.text = get_string(j, "text", "the text to compress");
  const int64_t want = get_int(j, "chunk_tokens", 0, 0, limits.max_chunk_tokens);
  if (want != 0 && want < 8)
    bad(fmt::format("field 'chunk_tokens' must be 0 (the model's own, {}) or from 8 to {}, got {}",
                    m.model->config.max_passage_tokens, limits.max_chunk_tokens, want));
  cascade::CompressOptions co;
  co.progress = false;
  try {
    std::istringstream in(r.text);
    const auto res = cascade::read_chunks(
        *m.tok, in, "field 'text'", cascade::chunk_size(m, want), co.block_bytes, co.progress,
        [&](const cascade::Chunk& c, std::string_view) {
          if (static_cast<int64_t>(r.chunks.size()) >= limits.max_chunks)
            bad(fmt::format("field 'text' makes more than {} chunks, this server's --max-chunks; "
                            "send the text in parts, or larger chunk_tokens",
                            limits.max_chunks), 413);
          r.chunks.push_back(c);
        });
    r.tokens = res.tokens;
    r.chars = res.chars;
  } catch (const Error& e) {
    bad(e.what());
  }
  return r;
}

}  // namespace

TextRequest parse_compress(const std::string& body, const cascade::LoadedC3& m,
                           const RequestLimits& limits) {
  const json j = parse_body(body, {"text", "chunk_tokens", "latent_dtype"},
                            R"({"text": "The text to compress."})");
  const std::string dtype = j.contains("latent_dtype") && !j["latent_dtype"].is_null()
                                ? get_string(j, "latent_dtype", "bf16 or f32")
                                : "bf16";
  if (dtype != "bf16" && dtype != "f32")
    bad(fmt::format("field 'latent_dtype' must be \"bf16\" or \"f32\", got \"{}\"", clip(dtype, 40)));
  TextRequest r = chunked_text(j, m, limits);
  r.latent_dtype = dtype == "f32" ? "F32" : "BF16";
  return r;
}

TextRequest parse_roundtrip(const std::string& body, const cascade::LoadedC3& m,
                            const RequestLimits& limits) {
  std::vector<std::string> known = {"text", "chunk_tokens"};
  known.insert(known.end(), kDecodeFields.begin(), kDecodeFields.end());
  const json j = parse_body(body, known, R"({"text": "The text to compress."})");
  cascade::DecompressOptions decode = decode_options(j, limits);
  TextRequest r = chunked_text(j, m, limits);
  r.decode = std::move(decode);
  return r;
}

LatentRequest parse_decompress(const std::string& body, const cascade::LoadedC3& m,
                               const RequestLimits& limits) {
  std::vector<std::string> known = {"latents"};
  known.insert(known.end(), kDecodeFields.begin(), kDecodeFields.end());
  const json j = parse_body(body, known,
                            R"({"latents": "<base64 .c3 bytes, as /v1/compress returns them>"})");
  LatentRequest r;
  r.decode = decode_options(j, limits);
  const std::string& b64 = get_string(j, "latents", "base64 of a .c3 file, as /v1/compress returns");
  const char* name = "field 'latents'";
  try {
    r.file = cascade::parse_latents(base64_decode(b64, name), name);
    cascade::check_latents_match(r.file, name, m.fingerprint, m.model->latent_len(),
                                 m.model->config.decoder.hidden_size);
    C3_CHECK(r.file.meta.records.n_plain() == 0,
             "{} stores {} of its chunks as plain tokens (c3 compress --min-precision); this "
             "service decodes latents only: decompress that file with `c3 decompress`",
             name, r.file.meta.records.n_plain());
  } catch (const Error& e) {
    bad(e.what());
  }
  if (r.file.latents.size(0) > limits.max_chunks)
    bad(fmt::format("field 'latents' holds {} chunks, more than this server's --max-chunks {}; "
                    "send them in parts", r.file.latents.size(0), limits.max_chunks), 413);
  return r;
}

}  // namespace c3::serve
