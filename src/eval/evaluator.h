// c3 eval: cut held-out passages into token-length bins, round-trip them through the cascade,
// and score fidelity per bin.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "eval/report.h"

namespace c3::eval {

struct EvalOptions {
  std::vector<std::string> data;  // JSONL(.xz) files of {"text": ...}
  std::vector<TokenBin> bins;
  int64_t per_bin = 32;           // passages per bin
  int64_t max_docs = 0;           // documents read at most (0 = all)
  int64_t batch = 16;             // passages per forward pass
  int64_t no_repeat_ngram = 20;
  int64_t num_beams = 1;          // > 1: beam search instead of greedy
  bool exact_length = false;      // decode each passage's own token count (DecompressOptions)
  bool token_accuracy = true;     // also teacher-forced token accuracy
  uint64_t seed = 0;
  bool progress = true;           // a progress bar on stderr
};

// Puts the next document's text in `text`; false when there are no more.
using DocumentSource = std::function<bool(std::string& text)>;

// Passages are cut deterministically (seeded by document index and bin), so two runs with the
// same options score the same text.
EvalReport evaluate(cascade::LoadedC3& m, const EvalOptions& opt, const std::string& model_name);
// The same over documents from `next` rather than the files in opt.data (the Python module's
// texts); the report's `data` is left empty for the caller to name.
EvalReport evaluate(cascade::LoadedC3& m, const EvalOptions& opt, const std::string& model_name,
                    const DocumentSource& next);

}  // namespace c3::eval
