// HF tokenizer.json text for byte-level BPE: added tokens, NFC, Qwen2 Split, vocab, merges.
#include "tokenizer/hf_tokenizer_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"

namespace c3::tokenizer {

static std::string json_str(const std::string& s) { return nlohmann::json(s).dump(); }

std::string hf_tokenizer_json(const HfBpeJson& spec) {
  std::vector<std::string> tok_str(spec.tokens.size());
  for (size_t i = 0; i < spec.tokens.size(); ++i) tok_str[i] = bytes_to_token(spec.tokens[i]);
  const std::string byte_level_cfg =
      R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, )"
      R"("use_regex": false})";
  auto flag = [](bool b) { return b ? "true" : "false"; };
  std::string out;
  out.reserve(spec.tokens.size() * 40 + spec.merges.size() * 30);
  out += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  for (size_t i = 0; i < spec.added.size(); ++i) {
    const AddedToken& a = spec.added[i];
    out += fmt::format(
        "{}\n    {{\"id\": {}, \"content\": {}, \"single_word\": {}, \"lstrip\": {}, "
        "\"rstrip\": {}, \"normalized\": {}, \"special\": {}}}",
        i ? "," : "", a.id, json_str(a.content), flag(a.single_word), flag(a.lstrip),
        flag(a.rstrip), flag(a.normalized), flag(a.special));
  }
  out += "\n  ],\n";
  out += "  \"normalizer\": {\"type\": \"NFC\"},\n";
  out += fmt::format(
      "  \"pre_tokenizer\": {{\"type\": \"Sequence\", \"pretokenizers\": [{{\"type\": \"Split\", "
      "\"pattern\": {{\"Regex\": {}}}, \"behavior\": \"Isolated\", \"invert\": false}}, {}]}},\n",
      json_str(kQwen2Pattern), byte_level_cfg);
  out += "  \"post_processor\": " + byte_level_cfg + ",\n";
  out += "  \"decoder\": " + byte_level_cfg + ",\n";
  out += fmt::format(
      "  \"model\": {{\n    \"type\": \"BPE\",\n    \"dropout\": null,\n"
      "    \"unk_token\": null,\n"
      "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n"
      "    \"fuse_unk\": false,\n    \"byte_fallback\": false,\n    \"ignore_merges\": {},\n"
      "    \"vocab\": {{",
      flag(spec.ignore_merges));
  for (size_t i = 0; i < tok_str.size(); ++i) {
    out += fmt::format("{}\n      {}: {}", i ? "," : "", json_str(tok_str[i]), i);
  }
  out += "\n    },\n    \"merges\": [";
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    out += fmt::format("{}\n      [{}, {}]", i ? "," : "", json_str(tok_str[spec.merges[i].first]),
                       json_str(tok_str[spec.merges[i].second]));
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

}  // namespace c3::tokenizer
