// The halves' plain next-token losses on the passages (see aux_lm_loss.h).
#include "train/aux_lm_loss.h"

#include <algorithm>

#include "model/upload.h"

namespace c3::train {

LmSums lm_loss_sums(model::Qwen2ForCausalLM& half, const std::vector<std::vector<int32_t>>& ids) {
  const at::Tensor& table = half->model->embed_tokens->weight;
  int64_t T = 0;
  for (auto& r : ids) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  if (T < 2) {
    return {at::zeros({}, table.options().dtype(at::kFloat)),
            at::zeros({}, table.options().dtype(at::kLong))};
  }
  const int64_t B = static_cast<int64_t>(ids.size());
  std::vector<int64_t> flat(B * T, 0), rows, y;  // rows: states (of [B * (T-1)]) with a target
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < ids[b].size(); ++t) {
      flat[b * T + t] = ids[b][t];
      if (t > 0) {
        rows.push_back(b * (T - 1) + static_cast<int64_t>(t) - 1);
        y.push_back(ids[b][t]);
      }
    }
  const at::Device dev = table.device();
  auto up = [&](const std::vector<int64_t>& v) {
    return model::upload(at::tensor(at::ArrayRef<int64_t>(v), at::kLong), dev);
  };
  const at::Tensor x = up(flat).view({B, T});
  const at::Tensor h = half->hidden(half->embed(x.narrow(1, 0, T - 1)), {});  // [B, T-1, C]
  const at::Tensor logits = half->logits(h.reshape({B * (T - 1), h.size(2)}).index_select(0, up(rows)));
  const at::Tensor target = up(y);
  return {at::cross_entropy_loss(logits, target, {}, at::Reduction::Sum),
          logits.detach().argmax(-1).eq(target).sum()};
}

at::Tensor decoder_lm_loss_sum(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ids) {
  return lm_loss_sums(m->decoder, ids).loss_sum;
}

}  // namespace c3::train
