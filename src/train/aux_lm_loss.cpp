// The decoder's plain next-token loss on the passages (see aux_lm_loss.h).
#include "train/aux_lm_loss.h"

#include <algorithm>

#include "model/upload.h"

namespace c3::train {

at::Tensor decoder_lm_loss_sum(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ids) {
  int64_t T = 0;
  for (auto& r : ids) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  if (T < 2) return at::zeros({}, m->Q->weight.options().dtype(at::kFloat));
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
  const at::Device dev = m->device();
  auto up = [&](const std::vector<int64_t>& v) {
    return model::upload(at::tensor(at::ArrayRef<int64_t>(v), at::kLong), dev);
  };
  at::Tensor x = up(flat).view({B, T});
  at::Tensor h = m->decoder->hidden(m->decoder->embed(x.narrow(1, 0, T - 1)), {});  // [B, T-1, C]
  at::Tensor logits = m->decoder->logits(h.reshape({B * (T - 1), h.size(2)}).index_select(0, up(rows)));
  return at::cross_entropy_loss(logits, up(y), {}, at::Reduction::Sum);
}

}  // namespace c3::train
