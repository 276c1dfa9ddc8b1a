// C3Config: reading and writing the official C3 config layout.
#include "c3/c3_config.h"

#include <filesystem>

#include "util/error.h"

namespace c3::cascade {

namespace {

// The accepted values of c3's enum keys, in enum order (the first is the default).
constexpr const char* kPositionNames[] = {"after_text", "segments"};
constexpr const char* kMaskNames[] = {"causal", "segment"};
constexpr const char* kPoolingNames[] = {"none", "segment_mean"};

// One of `names` (in enum order); anything else is an error naming `where` and the values.
template <typename E, size_t N>
E parse_enum(const std::string& v, const std::string& where, const char* const (&names)[N]) {
  for (size_t i = 0; i < N; ++i)
    if (v == names[i]) return static_cast<E>(i);
  std::string accepted;
  for (size_t i = 0; i < N; ++i) accepted += fmt::format("{}\"{}\"", i ? " or " : "", names[i]);
  fail("{} must be {}, got \"{}\"", where, accepted, v);
}

}  // namespace

const char* name_of(QueryPositions p) { return kPositionNames[static_cast<int>(p)]; }
const char* name_of(QueryMask m) { return kMaskNames[static_cast<int>(m)]; }
const char* name_of(QueryPooling p) { return kPoolingNames[static_cast<int>(p)]; }

QueryPositions parse_query_positions(const std::string& v, const std::string& where) {
  return parse_enum<QueryPositions>(v, where, kPositionNames);
}
QueryMask parse_query_mask(const std::string& v, const std::string& where) {
  return parse_enum<QueryMask>(v, where, kMaskNames);
}
QueryPooling parse_query_pooling(const std::string& v, const std::string& where) {
  return parse_enum<QueryPooling>(v, where, kPoolingNames);
}

C3Config C3Config::from_dir(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    fail("model folder '{}' does not exist. Pass --model with a C3 checkpoint folder "
         "(config.json, model.safetensors, llm1/, tokenizer.json or qwen.tiktoken).", dir);
  const std::string root_path = (fs::path(dir) / "config.json").string();
  const std::string enc_path = (fs::path(dir) / "llm1" / "config.json").string();
  io::JsonFile root = io::JsonFile::load(root_path);
  C3Config c;
  c.decoder = model::Qwen2Config::from_json(root);
  c.encoder = model::Qwen2Config::from_file(enc_path);
  c.latent_token_len = root.required<int64_t>("latent_token_len");
  c.contexts_compression_llm_hidden_size =
      root.required<int64_t>("contexts_compression_llm_hidden_size");
  c.im_start_token = root.required<int64_t>("im_start_token");
  c.im_end_token = root.required<int64_t>("im_end_token");
  c.im_patch_token = root.required<int64_t>("im_patch_token");
  c.use_im_start_end = root.optional<bool>("use_im_start_end", true);
  c.max_passage_tokens = root.optional<int64_t>("c3_max_passage_tokens", 1280);
  auto key = [&](const char* k) { return fmt::format("config '{}': key '{}'", root_path, k); };
  c.query_positions = parse_query_positions(
      root.optional<std::string>("c3_query_positions", "after_text"), key("c3_query_positions"));
  c.query_mask =
      parse_query_mask(root.optional<std::string>("c3_query_mask", "causal"), key("c3_query_mask"));
  c.query_pooling = parse_query_pooling(root.optional<std::string>("c3_query_pooling", "none"),
                                        key("c3_query_pooling"));
  C3_CHECK(c.latent_token_len > 0, "config '{}': latent_token_len must be positive, got {}",
           root_path, c.latent_token_len);
  C3_CHECK(c.encoder.hidden_size == c.contexts_compression_llm_hidden_size,
           "config '{}': contexts_compression_llm_hidden_size = {} but llm1/config.json has "
           "hidden_size = {}; the two must agree",
           root_path, c.contexts_compression_llm_hidden_size, c.encoder.hidden_size);
  C3_CHECK(c.use_im_start_end, "config '{}': use_im_start_end = false is not supported", root_path);
  return c;
}

nlohmann::json C3Config::decoder_json() const {
  nlohmann::json j = decoder.to_json();
  j["model_type"] = "C3";
  j["architectures"] = {"C3QwenForCausalLM"};
  j["latent_token_len"] = latent_token_len;
  j["contexts_compression_llm_hidden_size"] = contexts_compression_llm_hidden_size;
  j["im_start_token"] = im_start_token;
  j["im_end_token"] = im_end_token;
  j["im_patch_token"] = im_patch_token;
  j["use_im_start_end"] = use_im_start_end;
  j["c3_max_passage_tokens"] = max_passage_tokens;
  if (query_positions != QueryPositions::kAfterText)
    j["c3_query_positions"] = name_of(query_positions);
  if (query_mask != QueryMask::kCausal) j["c3_query_mask"] = name_of(query_mask);
  if (query_pooling != QueryPooling::kNone) j["c3_query_pooling"] = name_of(query_pooling);
  return j;
}

}  // namespace c3::cascade
