// Unicode normalization through utf8proc's decompose + reencode, without per-call allocation.
#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstring>

#include "util/error.h"

namespace c3::tokenizer {

Normalizer Normalizer::from_json(const nlohmann::json& j) {
  if (j.is_null()) return Normalizer();
  C3_CHECK(j.is_object() && j.contains("type"), "tokenizer.json: normalizer must be an object "
           "with a \"type\", got {}", j.dump().substr(0, 200));
  const std::string type = j.at("type").get<std::string>();
  if (type == "NFC") return Normalizer({Form::kNFC});
  if (type == "NFD") return Normalizer({Form::kNFD});
  if (type == "NFKC") return Normalizer({Form::kNFKC});
  if (type == "NFKD") return Normalizer({Form::kNFKD});
  if (type == "Sequence") {
    std::vector<Form> steps;
    for (const auto& sub : j.at("normalizers")) {
      Normalizer n = from_json(sub);
      steps.insert(steps.end(), n.steps_.begin(), n.steps_.end());
    }
    return Normalizer(std::move(steps));
  }
  fail("tokenizer.json: normalizer type \"{}\" is not supported (supported: NFC, NFD, NFKC, NFKD, "
       "Sequence, null)", type);
}

static utf8proc_option_t options_of(Normalizer::Form f) {
  switch (f) {
    case Normalizer::Form::kNFC: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case Normalizer::Form::kNFD: return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case Normalizer::Form::kNFKC:
      return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case Normalizer::Form::kNFKD:
      return utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return UTF8PROC_STABLE;
}

// Normalizes one segment with one form, appending to out. The int32 buffer is reused per thread.
static void normalize_segment(std::string_view seg, utf8proc_option_t opts, std::string& out) {
  thread_local std::vector<utf8proc_int32_t> buf(256);
  const auto* s = reinterpret_cast<const utf8proc_uint8_t*>(seg.data());
  utf8proc_ssize_t n = utf8proc_decompose(s, seg.size(), buf.data(), buf.size(), opts);
  if (n > static_cast<utf8proc_ssize_t>(buf.size())) {
    buf.resize(n);
    n = utf8proc_decompose(s, seg.size(), buf.data(), buf.size(), opts);
  }
  C3_CHECK(n >= 0, "Unicode normalization failed: {}", utf8proc_errmsg(n));
  // reencode composes in place and writes UTF-8 bytes over the int32 buffer (4 bytes per cp fit).
  utf8proc_ssize_t m = utf8proc_reencode(buf.data(), n, opts);
  C3_CHECK(m >= 0, "Unicode normalization failed: {}", utf8proc_errmsg(m));
  out.append(reinterpret_cast<const char*>(buf.data()), m);
}

static void normalize_form(std::string_view text, utf8proc_option_t opts, std::string& out) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && s[j] < 0x80) ++j;  // ASCII stretch [i, j)
    if (j == n) {
      out.append(text.data() + i, n - i);
      break;
    }
    // Keep the last ASCII character with the non-ASCII run: "e" + U+0301 composes to "é".
    size_t start = j > i ? j - 1 : j;
    out.append(text.data() + i, start - i);
    size_t k = j;
    while (k < n && s[k] >= 0x80) ++k;
    normalize_segment(text.substr(start, k - start), opts, out);
    i = k;
  }
}

void Normalizer::normalize(std::string_view text, std::string& out) const {
  if (steps_.empty()) {
    out.append(text);
    return;
  }
  if (steps_.size() == 1) {
    normalize_form(text, options_of(steps_[0]), out);
    return;
  }
  std::string cur(text), next;
  for (Form f : steps_) {
    next.clear();
    normalize_form(cur, options_of(f), next);
    cur.swap(next);
  }
  out.append(cur);
}

std::string Normalizer::normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  normalize(text, out);
  return out;
}

}  // namespace c3::tokenizer
