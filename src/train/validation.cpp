// Held-out loss, token accuracy and char precision during training (see validation.h).
#include "train/validation.h"

#include <torch/torch.h>

#include <algorithm>

#include "io/torch_compat.h"
#include "train/aux_lm_loss.h"
#include "util/line_reader.h"

namespace c3::train {

std::vector<int32_t> truncated(const std::vector<int32_t>& ids, int64_t n) {
  return std::vector<int32_t>(ids.begin(), ids.begin() + std::min<int64_t>(n, ids.size()));
}

Validation::Validation(const tokenizer::BpeTokenizer& tok, const TrainOptions& opt,
                       const LengthDist& dist)
    : opt_(opt) {
  if (opt.valid_files.empty() || opt.eval_passages <= 0) return;
  CorpusReader reader(opt.valid_files);
  std::string text;
  int64_t i = 0;
  while (static_cast<int64_t>(passages_.size()) < opt.eval_passages && reader.next(text)) {
    // Targets spread evenly over the length distribution.
    const double frac =
        opt.eval_passages > 1 ? double(passages_.size()) / (opt.eval_passages - 1) : 1.0;
    const int64_t target = dist.lo + static_cast<int64_t>(frac * (dist.hi - dist.lo));
    Passage p = cut_passage(tok, text, target, 1000003ull * (i++) + opt.seed);
    if (p.n_tokens() >= std::min<int64_t>(dist.lo, target) / 2 && p.n_tokens() > 0)
      passages_.push_back(p);
  }
}

nlohmann::json Validation::run(cascade::C3Model& model, int64_t step, int64_t cur_len,
                               bool bf16) const {
  torch::NoGradGuard ng;
  model->eval();
  compat::AutocastGuard ac(bf16, model->device());
  if (opt_.objective == TrainOptions::Objective::kLm) {
    nlohmann::json rec = run_lm(model, cur_len);
    rec["step"] = step;
    model->train();
    return rec;
  }
  const tokenizer::BpeTokenizer& tok = model->tok();
  double loss = 0, prec = 0;
  int64_t n_prec = 0, correct = 0, total = 0;
  for (const Passage& p : passages_) {
    std::vector<std::vector<int32_t>> one = {truncated(p.ids, cur_len)};
    auto out = model->reconstruction_loss(one);
    loss += out.loss.item<double>();
    correct += out.n_correct.item<int64_t>();
    total += out.n_tokens.item<int64_t>();
  }
  if (opt_.char_precision) {
    for (size_t i = 0; i < passages_.size() && i < 4; ++i) {
      auto ids = truncated(passages_[i].ids, cur_len);
      std::string ref = tok.decode(ids);
      cascade::DecompressOptions d;
      d.max_new_tokens = static_cast<int64_t>(ids.size()) + 16;
      auto gen = model->decompress(model->compress({ids}), d);
      prec += opt_.char_precision(tok.decode(std::vector<int32_t>(gen[0].begin(), gen[0].end())), ref);
      ++n_prec;
    }
  }
  nlohmann::json rec = {{"event", "valid"}, {"step", step},
                        {"valid_loss", loss / passages_.size()},
                        {"valid_token_accuracy", total ? double(correct) / total : 0.0},
                        {"curriculum_len", cur_len}};
  if (n_prec) rec["valid_char_precision"] = prec / n_prec;
  model->train();
  return rec;
}

// The held-out next-token loss of both halves (averaged, per target token) and the decoder's
// token accuracy: the language-model objective's figures.
nlohmann::json Validation::run_lm(cascade::C3Model& model, int64_t cur_len) const {
  double loss = 0;
  int64_t correct = 0, total = 0;
  for (const Passage& p : passages_) {
    const std::vector<std::vector<int32_t>> one = {truncated(p.ids, cur_len)};
    const LmSums enc = lm_loss_sums(model->encoder, one), dec = lm_loss_sums(model->decoder, one);
    loss += (enc.loss_sum + dec.loss_sum).item<double>() / 2;
    correct += dec.n_correct.item<int64_t>();
    total += std::max<int64_t>(0, static_cast<int64_t>(one[0].size()) - 1);
  }
  return {{"event", "valid"},
          {"valid_loss", total ? loss / total : 0.0},
          {"valid_token_accuracy", total ? double(correct) / total : 0.0},
          {"curriculum_len", cur_len}};
}

}  // namespace c3::train
