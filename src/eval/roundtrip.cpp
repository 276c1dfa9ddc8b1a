// One text through the cascade and back, in memory, scored against the source.
#include "eval/roundtrip.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include "eval/text_metrics.h"

namespace c3::eval {

nlohmann::json RoundtripResult::to_json() const {
  return {{"text", text},
          {"ids", ids},
          {"tokens", tokens},
          {"chunks", chunks},
          {"latents", latents},
          {"ratio", ratio},
          {"char_precision", char_precision},
          {"exact_match", exact_match},
          {"seconds", seconds}};
}

RoundtripResult roundtrip_text(cascade::LoadedC3& m, const std::string& text,
                               const std::string& name, const RoundtripOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  std::istringstream in(text);
  cascade::CompressOptions co;
  co.batch_size = opt.batch_size;
  co.max_passage_tokens = opt.max_passage_tokens;
  co.progress = false;
  std::vector<at::Tensor> lat;
  std::vector<int64_t> source_lens;  // tokens per chunk, for the length cap
  auto r = cascade::compress_stream(
      m, in, name, co,
      [&](const at::Tensor& l, const std::vector<std::vector<int32_t>>& chunk_ids,
          const std::vector<int64_t>&) {
        lat.push_back(l);
        for (const auto& c : chunk_ids) source_lens.push_back(static_cast<int64_t>(c.size()));
      });
  const at::Tensor all = at::cat(lat, 0);

  RoundtripResult res;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < all.size(0); i += opt.batch_size) {
    const int64_t b = std::min(opt.batch_size, all.size(0) - i);
    cascade::DecompressOptions d = opt.decode;
    d.source_tokens.assign(source_lens.begin() + i, source_lens.begin() + i + b);
    for (auto& row : m.model->decompress(all.narrow(0, i, b), d)) {
      res.text += m.tok->decode(std::vector<int32_t>(row.begin(), row.end()));
      res.ids.insert(res.ids.end(), row.begin(), row.end());
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens = r.tokens;
  res.chunks = r.chunks;
  res.latents = r.chunks * m.model->latent_len();
  res.ratio = double(r.tokens) / double(res.latents);
  res.char_precision = char_precision(res.text, text);
  res.exact_match = res.text == text;
  return res;
}

}  // namespace c3::eval
