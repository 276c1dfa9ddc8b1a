// The eval loop: collect passages per bin, then compress/decompress each bin in batches.
#include "eval/evaluator.h"

#include <chrono>
#include <optional>

#include "train/passage_sampler.h"
#include "util/error.h"
#include "util/line_reader.h"
#include "util/progress_bar.h"

namespace c3::eval {

EvalReport evaluate(cascade::LoadedC3& m, const EvalOptions& opt, const std::string& model_name) {
  CorpusReader reader(opt.data);
  EvalReport rep = evaluate(m, opt, model_name, [&](std::string& text) { return reader.next(text); });
  for (const auto& d : opt.data) rep.data += (rep.data.empty() ? "" : ",") + d;
  return rep;
}

EvalReport evaluate(cascade::LoadedC3& m, const EvalOptions& opt, const std::string& model_name,
                    const DocumentSource& next) {
  C3_CHECK(!opt.bins.empty(), "c3 eval: no --bins given");
  C3_CHECK(opt.per_bin > 0 && opt.batch > 0, "c3 eval: --per-bin and --batch must be positive");
  const auto& tok = *m.tok;
  const int64_t L = m.model->latent_len();
  // 1. Passages per bin, in document order.
  std::vector<std::vector<train::Passage>> passages(opt.bins.size());
  std::string text;
  int64_t doc = 0;
  auto full = [&]() {
    for (auto& p : passages)
      if (static_cast<int64_t>(p.size()) < opt.per_bin) return false;
    return true;
  };
  while (!full() && (opt.max_docs == 0 || doc < opt.max_docs) && next(text)) {
    for (size_t b = 0; b < opt.bins.size(); ++b) {
      if (static_cast<int64_t>(passages[b].size()) >= opt.per_bin) continue;
      auto p = train::cut_passage_in_range(tok, text, opt.bins[b].lo, opt.bins[b].hi,
                                           opt.seed * 7919 + doc * 131 + b);
      if (p) passages[b].push_back(std::move(*p));
    }
    ++doc;
  }
  // 2. Round trips, bin by bin.
  EvalReport rep;
  rep.model = model_name;
  rep.latents = L;
  rep.meta["docs_read"] = doc;
  rep.meta["per_bin"] = opt.per_bin;
  rep.meta["no_repeat_ngram"] = opt.no_repeat_ngram;
  rep.meta["num_beams"] = opt.num_beams;
  if (opt.exact_length) rep.meta["exact_length"] = true;
  rep.meta["device"] = m.model->device().str();
  int64_t total = 0;
  for (auto& p : passages) total += static_cast<int64_t>(p.size());
  std::optional<ProgressBar> bar;  // only when asked for: finish() prints even an idle bar
  if (opt.progress) bar.emplace("eval", total, "passage");
  torch::NoGradGuard ng;
  int64_t done = 0;
  for (size_t b = 0; b < opt.bins.size(); ++b) {
    const TokenBin& bin = opt.bins[b];
    BinStats st(bin.label, bin.lo, bin.hi, L);
    const auto t0 = std::chrono::steady_clock::now();
    const auto& ps = passages[b];
    for (size_t i = 0; i < ps.size(); i += opt.batch) {
      std::vector<std::vector<int32_t>> ids;
      for (size_t k = i; k < std::min(ps.size(), i + opt.batch); ++k) ids.push_back(ps[k].ids);
      cascade::DecompressOptions d;
      d.no_repeat_ngram_size = opt.no_repeat_ngram;
      d.num_beams = opt.num_beams;
      d.max_new_tokens = bin.hi + 64;
      if (opt.exact_length) {
        d.exact_length = true;
        for (const auto& p : ids) d.source_tokens.push_back(static_cast<int64_t>(p.size()));
      }
      auto gen = m.model->decompress(m.model->compress(ids), d);
      for (size_t k = 0; k < ids.size(); ++k) {
        const auto& ref = ps[i + k];
        std::string pred = tok.decode(std::vector<int32_t>(gen[k].begin(), gen[k].end()));
        PassageScore s = score_passage(pred, ref.text);
        if (opt.token_accuracy) {
          auto out = m.model->reconstruction_loss({ref.ids});
          s.token_accuracy = double(out.n_correct.item<int64_t>()) / out.n_tokens.item<int64_t>();
        }
        st.add(s, ref.n_tokens());
      }
      done += static_cast<int64_t>(ids.size());
      if (bar) bar->set(done);
    }
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.bins.push_back(st);
  }
  if (bar) bar->finish();
  return rep;
}

}  // namespace c3::eval
