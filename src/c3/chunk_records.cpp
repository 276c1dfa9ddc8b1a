// Version-2 .c3 metadata: per-chunk storage and verified precision, to and from strings.
#include "c3/chunk_records.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_int.h"

namespace c3::cascade {

using nlohmann::json;

bool ChunkRecords::needs_v2() const {
  return n_plain() > 0 || !precision.empty() || verification.has_value();
}

int64_t ChunkRecords::n_plain() const {
  int64_t n = 0;
  for (uint8_t p : plain) n += p != 0;
  return n;
}

double ChunkRecords::lowest_precision() const {
  double lowest = 1.0;
  for (double p : precision) lowest = std::min(lowest, p);
  return lowest;
}

void put_chunk_records(const ChunkRecords& r, int64_t n_chunks,
                       std::map<std::string, std::string>& md) {
  C3_CHECK(static_cast<int64_t>(r.plain.size()) == n_chunks,
           ".c3 writer: {} storage records for {} chunks", r.plain.size(), n_chunks);
  C3_CHECK(r.verification.has_value() == !r.precision.empty() &&
               (r.precision.empty() || static_cast<int64_t>(r.precision.size()) == n_chunks),
           ".c3 writer: {} precisions for {} chunks (verification {})", r.precision.size(),
           n_chunks, r.verification ? "set" : "unset");
  json storage = json::array();
  for (uint8_t p : r.plain) storage.push_back(p ? "tokens" : "latents");
  md["chunk_storage"] = storage.dump();
  if (!r.verification) return;
  md["chunk_precision"] = json(r.precision).dump();
  const Verification& v = *r.verification;
  // What the reader refuses, the writer never writes.
  C3_CHECK(v.floor_tokens >= 1 && v.min_precision >= 0.0 && v.min_precision <= 1.0,
           ".c3 writer: verification floor_tokens {} (must be >= 1), min_precision {} (0 to 1)",
           v.floor_tokens, v.min_precision);
  const VerifiedDecode& d = v.decode;
  const json decode = {{"max_new_tokens", d.max_new_tokens},
                       {"no_repeat_ngram_size", d.no_repeat_ngram_size},
                       {"stop_at_im_end", d.stop_at_im_end},
                       {"length_cap", d.length_cap},
                       {"num_beams", d.num_beams},
                       {"device", d.device},
                       {"dtype", d.dtype}};
  md["verification"] = json{
      {"min_precision", v.min_precision},
      {"floor_tokens", v.floor_tokens},
      {"decode", decode}}.dump();
}

namespace {

// Reading one file's version-2 keys: every error names the file and the key.
struct Reader {
  const std::map<std::string, std::string>& md;
  const std::string& path;

  json parse(const char* key) const {
    auto it = md.find(key);
    C3_CHECK(it != md.end(),
             "'{}': a version-2 .c3 file needs metadata '{}'; the file is "
             "damaged. Compress the text again.",
             path, key);
    try {
      return json::parse(it->second);
    } catch (const json::exception& e) {
      fail("'{}': metadata '{}' is not JSON ({})", path, key, std::string(e.what()).substr(0, 200));
    }
  }
  json list(const char* key, int64_t n) const {
    json j = parse(key);
    C3_CHECK(j.is_array() && static_cast<int64_t>(j.size()) == n,
             "'{}': metadata '{}' must be a list of {} entries (one per chunk), got {}", path, key,
             n, j.is_array() ? std::to_string(j.size()) + " entries" : std::string(j.type_name()));
    return j;
  }
  const json& field(const json& obj, const char* key, const char* where) const {
    C3_CHECK(obj.is_object() && obj.contains(key), "'{}': metadata '{}' lacks the field '{}'", path,
             where, key);
    return obj.at(key);
  }
  int64_t integer(const json& obj, const char* key, const char* where, int64_t lo) const {
    auto v = json_int<int64_t>(field(obj, key, where));
    C3_CHECK(v && *v >= lo, "'{}': metadata '{}': '{}' must be an integer >= {}, got {}", path,
             where, key, lo, field(obj, key, where).dump().substr(0, 40));
    return *v;
  }
  double number(const json& obj, const char* key, const char* where, double lo, double hi) const {
    const json& e = field(obj, key, where);
    C3_CHECK(e.is_number() && e.get<double>() >= lo && e.get<double>() <= hi,
             "'{}': metadata '{}': '{}' must be a number in [{}, {}], got {}", path, where, key, lo,
             hi, e.dump().substr(0, 40));
    return e.get<double>();
  }
  template <typename T>
  T typed(const json& obj, const char* key, const char* where, json::value_t t) const {
    const json& e = field(obj, key, where);
    C3_CHECK(e.type() == t, "'{}': metadata '{}': '{}' has the wrong type ({})", path, where, key,
             e.type_name());
    return e.get<T>();
  }
};

Verification read_verification(const Reader& rd) {
  const json j = rd.parse("verification");
  Verification v;
  v.min_precision = rd.number(j, "min_precision", "verification", 0.0, 1.0);
  v.floor_tokens = rd.integer(j, "floor_tokens", "verification", 1);
  const json& d = rd.field(j, "decode", "verification");
  const char* w = "verification.decode";
  v.decode.max_new_tokens = rd.integer(d, "max_new_tokens", w, 1);
  v.decode.no_repeat_ngram_size = rd.integer(d, "no_repeat_ngram_size", w, 0);
  v.decode.stop_at_im_end = rd.typed<bool>(d, "stop_at_im_end", w, json::value_t::boolean);
  v.decode.length_cap = rd.number(d, "length_cap", w, 0.0, 1e6);
  v.decode.num_beams = rd.integer(d, "num_beams", w, 1);
  v.decode.device = rd.typed<std::string>(d, "device", w, json::value_t::string);
  v.decode.dtype = rd.typed<std::string>(d, "dtype", w, json::value_t::string);
  return v;
}

}  // namespace

ChunkRecords read_chunk_records(const std::map<std::string, std::string>& md, int64_t n_chunks,
                                const std::string& path) {
  const Reader rd{md, path};
  ChunkRecords r;
  for (const json& e : rd.list("chunk_storage", n_chunks)) {
    C3_CHECK(e == "latents" || e == "tokens",
             "'{}': metadata 'chunk_storage' holds {}; each entry must be \"latents\" or "
             "\"tokens\"",
             path, e.dump().substr(0, 40));
    r.plain.push_back(e == "tokens");
  }
  if (md.count("verification") == 0) {
    C3_CHECK(md.count("chunk_precision") == 0,
             "'{}': metadata 'chunk_precision' without 'verification'; the file is damaged", path);
    return r;
  }
  r.verification = read_verification(rd);
  for (const json& e : rd.list("chunk_precision", n_chunks)) {
    C3_CHECK(e.is_number() && e.get<double>() >= 0.0 && e.get<double>() <= 1.0,
             "'{}': metadata 'chunk_precision' holds {}; each entry must be a number in [0, 1]",
             path, e.dump().substr(0, 40));
    r.precision.push_back(e.get<double>());
  }
  return r;
}

}  // namespace c3::cascade
