// The tokenizer.json "normalizer": Unicode normalization forms (utf8proc), alone or in a Sequence.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace c3::tokenizer {

class Normalizer {
 public:
  enum class Form { kNFC, kNFD, kNFKC, kNFKD };

  Normalizer() = default;  // identity
  explicit Normalizer(std::vector<Form> steps) : steps_(std::move(steps)) {}
  // Reads the "normalizer" value of tokenizer.json: null, {"type": "NFC"|"NFD"|"NFKC"|"NFKD"} or
  // {"type": "Sequence", "normalizers": [...]}. Other types throw c3::Error naming them.
  static Normalizer from_json(const nlohmann::json& j);

  bool is_identity() const { return steps_.empty(); }
  // Appends the normalized `text` (valid UTF-8) to `out`. ASCII is stable under every form, so
  // only the non-ASCII runs (with the ASCII character before them, which may compose with a
  // following mark) go through utf8proc; English text costs little more than a copy.
  void normalize(std::string_view text, std::string& out) const;
  std::string normalize(std::string_view text) const;

 private:
  std::vector<Form> steps_;
};

}  // namespace c3::tokenizer
