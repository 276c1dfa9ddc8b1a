// Finding, loading and copying a model folder's tokenizer files.
#include "tokenizer/tokenizer_files.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "util/atomic_file.h"
#include "util/error.h"

namespace c3::tokenizer {
namespace fs = std::filesystem;

static bool is_tiktoken_name(const fs::path& p) { return p.extension() == ".tiktoken"; }

bool TokenizerFiles::tiktoken() const { return is_tiktoken_name(main); }

// The files that go with a qwen.tiktoken: those that exist among the release's companions.
static void add_tiktoken_companions(const fs::path& tiktoken, std::vector<std::string>& out) {
  for (const char* name : {"tokenizer_config.json", "tokenization_qwen.py"}) {
    const fs::path p = tiktoken.parent_path() / name;
    if (fs::exists(p)) out.push_back(p.string());
  }
}

// HF's tokenizer_config.json beside a tokenizer.json: transformers' AutoTokenizer reads its
// tokenizer_class, and needs it for a model type it does not know (C3's), so it travels too.
static void add_json_companion(const fs::path& json, std::vector<std::string>& out) {
  const fs::path p = json.parent_path() / "tokenizer_config.json";
  if (json.filename() == "tokenizer.json" && fs::exists(p)) out.push_back(p.string());
}

// Whether the folder's tokenizer_config.json names QWenTokenizer (unreadable: no).
static bool config_names_qwen(const fs::path& dir) {
  const fs::path p = dir / "tokenizer_config.json";
  if (!fs::exists(p)) return false;
  try {
    auto j = nlohmann::json::parse(read_file(p));
    return j.is_object() && j.value("tokenizer_class", nlohmann::json()).is_string() &&
           j["tokenizer_class"].get<std::string>() == "QWenTokenizer";
  } catch (const nlohmann::json::exception&) {
    return false;  // from_tiktoken reports a broken config if it is the one used
  }
}

TokenizerFiles find_tokenizer(const std::string& path, bool quiet) {
  TokenizerFiles f;
  const fs::path p(path);
  C3_CHECK(fs::exists(p),
           "tokenizer '{}' does not exist. Pass a tokenizer.json, a qwen.tiktoken "
           "or a model folder holding one.",
           path);
  if (!fs::is_directory(p)) {
    f.main = path;
    f.files = {path};
    if (is_tiktoken_name(p))
      add_tiktoken_companions(p, f.files);
    else
      add_json_companion(p, f.files);
    return f;
  }
  const fs::path json = p / "tokenizer.json", tiktoken = p / "qwen.tiktoken";
  const bool has_json = fs::exists(json), has_tiktoken = fs::exists(tiktoken);
  C3_CHECK(has_json || has_tiktoken,
           "model folder '{}' has no tokenizer.json and no "
           "qwen.tiktoken (with tokenizer_config.json); copy the tokenizer files of the model "
           "there.",
           path);
  const bool use_tiktoken = has_tiktoken && (!has_json || config_names_qwen(p));
  f.main = (use_tiktoken ? tiktoken : json).string();
  if (has_json) f.files.push_back(json.string());
  if (has_json && !has_tiktoken) add_json_companion(json, f.files);
  if (has_tiktoken) {
    f.files.push_back(tiktoken.string());
    add_tiktoken_companions(tiktoken, f.files);
  }
  if (has_json && has_tiktoken && !quiet) {
    std::fprintf(stderr, "c3: '%s' has both tokenizer.json and qwen.tiktoken; using %s (%s)\n",
                 path.c_str(), use_tiktoken ? "qwen.tiktoken" : "tokenizer.json",
                 use_tiktoken ? "tokenizer_config.json names QWenTokenizer"
                              : "tokenizer_config.json does not name QWenTokenizer");
  }
  return f;
}

BpeTokenizer load_tokenizer(const std::string& path) {
  const TokenizerFiles f = find_tokenizer(path);
  return f.tiktoken() ? BpeTokenizer::from_tiktoken(f.main) : BpeTokenizer::from_file(f.main);
}

std::vector<std::pair<std::string, std::string>> model_folder_names(const TokenizerFiles& f) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& src : f.files) {
    const std::string name = src != f.main  ? fs::path(src).filename().string()
                             : f.tiktoken() ? "qwen.tiktoken"
                                            : "tokenizer.json";
    out.emplace_back(src, name);
  }
  return out;
}

void copy_tokenizer_files(const TokenizerFiles& f, const std::string& dir) {
  for (const auto& [src, name] : model_folder_names(f)) {
    const fs::path dst = fs::path(dir) / name;
    std::error_code ec;
    if (!fs::equivalent(src, dst, ec)) write_file_atomic(dst, read_file(src));
  }
}

}  // namespace c3::tokenizer
