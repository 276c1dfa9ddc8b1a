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

bool given(const json& j, const char* field) { return j.contains(field) && !j[field].is_null(); }

const std::vector<std::string> kDecodeFields = {"no_repeat_ngram", "max_new_tokens", "length_cap",
                                                "beams", "stop"};

// The decoding fields the request gives, each checked against its range.
cascade::DecodeOverrides given_decode(const json& j, const RequestLimits& limits) {
  cascade::DecodeOverrides g;
  if (given(j, "no_repeat_ngram"))
    g.no_repeat_ngram.value = get_int(j, "no_repeat_ngram", 0, 0, 1 << 20);
  if (given(j, "max_new_tokens"))
    g.max_new_tokens.value = get_int(j, "max_new_tokens", 0, 0, limits.max_new_tokens);
  if (given(j, "length_cap")) g.length_cap.value = get_number(j, "length_cap", 0, 0, 1000);
  if (given(j, "beams")) g.beams.value = get_int(j, "beams", 1, 1, limits.max_beams);
  if (given(j, "stop")) g.stop.value = get_bool(j, "stop", true);
  return g;
}

// The decoding fields over `c3 decompress`'s defaults; max_new_tokens defaults to `max_new`.
cascade::DecompressOptions decode_options(const json& j, const RequestLimits& limits,
                                          int64_t max_new) {
  const cascade::DecodeOverrides g = given_decode(j, limits);
  cascade::DecompressOptions o;
  o.no_repeat_ngram_size = g.no_repeat_ngram.value.value_or(o.no_repeat_ngram_size);
  o.max_new_tokens = g.max_new_tokens.value.value_or(max_new);
  o.length_cap = g.length_cap.value.value_or(o.length_cap);
  o.num_beams = g.beams.value.value_or(o.num_beams);
  o.stop_at_im_end = g.stop.value.value_or(o.stop_at_im_end);
  return o;
}

cascade::DecompressOptions decode_options(const json& j, const RequestLimits& limits) {
  return decode_options(j, limits, std::min<int64_t>(4096, limits.max_new_tokens));
}

// The most tokens decoding may generate for any of these chunks (chunk_token_budget).
int64_t longest_budget(const cascade::DecompressOptions& o, const std::vector<int64_t>& tokens) {
  int64_t longest = 0;
  for (int64_t t : tokens) longest = std::max(longest, cascade::chunk_token_budget(o, t));
  return longest;
}

// The text cut into chunks as `c3 compress` cuts it; its errors (empty, whitespace only, only
// special tokens) become 400s. With `keep_texts`, each chunk's text too.
TextRequest chunked_text(const json& j, const cascade::LoadedC3& m, const RequestLimits& limits,
                         bool keep_texts = false) {
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
        [&](const cascade::Chunk& c, std::string_view text) {
          if (static_cast<int64_t>(r.chunks.size()) >= limits.max_chunks)
            bad(fmt::format("field 'text' makes more than {} chunks, this server's --max-chunks; "
                            "send the text in parts, or larger chunk_tokens",
                            limits.max_chunks), 413);
          r.chunks.push_back(c);
          if (keep_texts) r.chunk_texts.emplace_back(text);
        });
    r.tokens = res.tokens;
    r.chars = res.chars;
  } catch (const Error& e) {
    bad(e.what());
  }
  return r;
}

// Verified compression's fields: min_precision, verify_floor, and how the check decodes (the
// decoding fields, with the CLI's defaults: the file records them). Without min_precision they
// mean nothing, so they are refused rather than ignored.
std::optional<eval::VerifyOptions> verify_options(const json& j, const RequestLimits& limits) {
  std::vector<std::string> fields = {"verify_floor"};
  fields.insert(fields.end(), kDecodeFields.begin(), kDecodeFields.end());
  if (!given(j, "min_precision")) {
    for (const auto& f : fields)
      if (given(j, f.c_str()))
        bad(fmt::format("field '{}' applies only with 'min_precision' (verified compression); "
                        "add min_precision (0 to 1) or leave '{}' out",
                        f, f));
    return std::nullopt;
  }
  eval::VerifyOptions v;
  v.min_precision = get_number(j, "min_precision", 1.0, 0.0, 1.0);
  v.floor_tokens = get_int(j, "verify_floor", 0, 0, limits.max_chunk_tokens);
  v.decode = decode_options(j, limits, cascade::DecompressOptions{}.max_new_tokens);
  return v;
}

// The check decodes each chunk through the model (outside the decode batch), but no further than
// this server lets any request decode.
void check_verify_budget(const TextRequest& r, const RequestLimits& limits) {
  std::vector<int64_t> tokens;
  for (const auto& c : r.chunks) tokens.push_back(static_cast<int64_t>(c.ids.size()));
  const int64_t longest = longest_budget(r.verify->decode, tokens);
  if (longest > limits.max_new_tokens)
    bad(fmt::format("the check may decode {} tokens for one chunk (max_new_tokens {}, length_cap "
                    "{}), more than this server's --max-new-tokens {}; send max_new_tokens of at "
                    "most {}, or a smaller chunk_tokens",
                    longest, r.verify->decode.max_new_tokens, r.verify->decode.length_cap,
                    limits.max_new_tokens, limits.max_new_tokens));
}

// A verified file may record settings beyond this server's limits (made by `c3 compress`
// elsewhere): they are lowered to the limits, with a warning where that may change the text.
void fit_to_limits(LatentRequest& r, const RequestLimits& limits) {
  cascade::DecompressOptions& o = r.decode;
  auto lowered = [&](const char* name, int64_t was, int64_t now, const char* flag) {
    r.warnings.push_back(fmt::format("{} (recorded {}, now {}, this server's {}): the recorded "
                                     "precision holds for the recorded settings only",
                                     name, was, now, flag));
  };
  if (o.num_beams > limits.max_beams) {
    lowered("beams", o.num_beams, limits.max_beams, "--max-beams");
    o.num_beams = limits.max_beams;
  }
  if (o.max_new_tokens > limits.max_new_tokens) {
    // Silent where every chunk's length cap stops it first: then nothing changes.
    if (longest_budget(o, r.latent_tokens) > limits.max_new_tokens)
      lowered("max_new_tokens", o.max_new_tokens, limits.max_new_tokens, "--max-new-tokens");
    o.max_new_tokens = limits.max_new_tokens;
  }
}

}  // namespace

TextRequest parse_compress(const std::string& body, const cascade::LoadedC3& m,
                           const RequestLimits& limits) {
  std::vector<std::string> known = {"text", "chunk_tokens", "latent_dtype", "min_precision",
                                    "verify_floor"};
  known.insert(known.end(), kDecodeFields.begin(), kDecodeFields.end());
  const json j = parse_body(body, known, R"({"text": "The text to compress."})");
  const std::string dtype = j.contains("latent_dtype") && !j["latent_dtype"].is_null()
                                ? get_string(j, "latent_dtype", "bf16 or f32")
                                : "bf16";
  if (dtype != "bf16" && dtype != "f32")
    bad(fmt::format("field 'latent_dtype' must be \"bf16\" or \"f32\", got \"{}\"", clip(dtype, 40)));
  std::optional<eval::VerifyOptions> verify = verify_options(j, limits);
  TextRequest r = chunked_text(j, m, limits, verify.has_value());
  r.latent_dtype = dtype == "f32" ? "F32" : "BF16";
  r.verify = std::move(verify);
  if (r.verify) check_verify_budget(r, limits);
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
  const cascade::DecodeOverrides fields = given_decode(j, limits);
  const std::string& b64 = get_string(j, "latents", "base64 of a .c3 file, as /v1/compress returns");
  const char* name = "field 'latents'";
  try {
    r.file = cascade::parse_latents(base64_decode(b64, name), name);
    cascade::check_latents_match(r.file, name, m.fingerprint, m.model->latent_len(),
                                 m.model->config.decoder.hidden_size);
  } catch (const Error& e) {
    bad(e.what());
  }
  try {
    r.chunks = cascade::stored_chunks(r.file, m.tok->vocab_size());
  } catch (const Error& e) {
    bad(fmt::format("{}: {}", name, e.what()));
  }
  if (static_cast<int64_t>(r.chunks.size()) > limits.max_chunks)
    bad(fmt::format("field 'latents' holds {} chunks, more than this server's --max-chunks {}; "
                    "send them in parts", r.chunks.size(), limits.max_chunks), 413);
  for (size_t i = 0; i < r.chunks.size(); ++i)
    if (!r.chunks[i].plain) r.latent_tokens.push_back(r.file.meta.chunk_tokens[i]);
  const auto& rec = r.file.meta.records.verification;
  if (!rec) {
    r.decode = decode_options(j, limits);
    return r;
  }
  r.decode = cascade::decode_over_recorded(rec->decode, fields, m, &r.warnings);
  fit_to_limits(r, limits);
  return r;
}

}  // namespace c3::serve
