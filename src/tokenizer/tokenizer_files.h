// Which files make a model's tokenizer: a tokenizer.json, or a qwen.tiktoken with the
// tokenizer_config.json (and tokenization_qwen.py) beside it; and loading whichever is there.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/bpe_tokenizer.h"

namespace c3::tokenizer {

struct TokenizerFiles {
  std::string main;                // the file that is read: a tokenizer.json or a qwen.tiktoken
  std::vector<std::string> files;  // what travels with a model: main, its companions (a
                                   // tokenizer.json's tokenizer_config.json; a qwen.tiktoken's
                                   // and tokenization_qwen.py), and the other format's files
                                   // when a folder holds both
  bool tiktoken() const;
};

// `path` is a tokenizer file (a name ending in .tiktoken is read as tiktoken, anything else as
// tokenizer.json) or a folder holding tokenizer.json and/or qwen.tiktoken. With both, the folder's
// tokenizer_config.json decides as transformers' AutoTokenizer would: tokenizer_class
// QWenTokenizer picks qwen.tiktoken, anything else tokenizer.json; the choice is said on stderr
// unless `quiet`. A folder with neither is a c3::Error naming it.
TokenizerFiles find_tokenizer(const std::string& path, bool quiet = false);

// find_tokenizer(path), then BpeTokenizer::from_file or from_tiktoken.
BpeTokenizer load_tokenizer(const std::string& path);

// The name each file of `f` has in a model folder: the main file is tokenizer.json or
// qwen.tiktoken, its companions keep their names. Pairs of (source path, name).
std::vector<std::pair<std::string, std::string>> model_folder_names(const TokenizerFiles& f);

// Copies every file of `f` into `dir` (atomically each; a file that already is the one in `dir`
// is left alone). The main file gets the name a model folder needs: tokenizer.json or
// qwen.tiktoken.
void copy_tokenizer_files(const TokenizerFiles& f, const std::string& dir);

}  // namespace c3::tokenizer
