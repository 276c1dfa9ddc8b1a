// c3.Tokenizer: the library's byte-level BPE tokenizer (HF tokenizer.json semantics), shared with
// the Cascade that loaded it.
#pragma once
#include <memory>

#include "tokenizer/bpe_tokenizer.h"

namespace c3::python {

struct Tokenizer {
  std::shared_ptr<const tokenizer::BpeTokenizer> tok;
};

}  // namespace c3::python
