// Query slot positions and masks of the encoder input (see query_layout.h for the layout).
#include "c3/query_layout.h"

#include "model/upload.h"
#include "util/error.h"

namespace c3::cascade {

Segment query_segment(int64_t n_text, int64_t L, int64_t j) {
  C3_CHECK(L > 0 && j >= 0 && j < L && n_text >= 0, "query_segment: j = {} of L = {}, N = {}", j, L,
           n_text);
  return {j * n_text / L, (j + 1) * n_text / L};
}

std::vector<int64_t> encoder_positions(int64_t n_text, int64_t L, QueryPositions p) {
  std::vector<int64_t> pos(n_text + L + 2);
  for (int64_t i = 0; i < static_cast<int64_t>(pos.size()); ++i) pos[i] = i;
  if (p == QueryPositions::kSegments) {
    for (int64_t j = 0; j < L; ++j) pos[n_text + 1 + j] = query_segment(n_text, L, j).end;
    pos[n_text + L + 1] = n_text + 1;  // </img>
  }
  return pos;
}

at::Tensor encoder_position_ids(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                                QueryPositions p) {
  const int64_t B = static_cast<int64_t>(n_text.size());
  at::Tensor out = at::arange(T, at::TensorOptions(at::kLong)).repeat({B, 1});  // [B, T]
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int64_t> row = encoder_positions(n_text[b], L, p);
    C3_CHECK(static_cast<int64_t>(row.size()) <= T, "encoder_position_ids: row of {} > T = {}",
             row.size(), T);
    std::copy(row.begin(), row.end(), o + b * T);
  }
  return out;
}

at::Tensor encoder_attend_mask(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                               QueryMask m, at::Device device) {
  // Each query row t sees keys [lo, hi) and itself: [0, t + 1) when causal, its segment when a
  // query slot under the segment mask.
  const int64_t B = static_cast<int64_t>(n_text.size());
  at::Tensor lo = at::zeros({B, T}, at::TensorOptions(at::kLong));
  at::Tensor hi = at::arange(1, T + 1, at::TensorOptions(at::kLong)).repeat({B, 1});  // [B, T]
  if (m == QueryMask::kSegment) {
    int64_t* l = lo.data_ptr<int64_t>();
    int64_t* h = hi.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < L; ++j) {
        const Segment s = query_segment(n_text[b], L, j);
        l[b * T + n_text[b] + 1 + j] = s.begin;
        h[b * T + n_text[b] + 1 + j] = s.end;
      }
  }
  const auto opts = at::TensorOptions(at::kLong).device(device);
  const at::Tensor k = at::arange(T, opts).view({1, 1, T});       // [1, 1, T] keys
  const at::Tensor q = at::arange(T, opts).view({1, T, 1});       // [1, T, 1] queries
  const at::Tensor l3 = model::upload(lo, device).unsqueeze(-1);  // [B, T, 1]
  const at::Tensor h3 = model::upload(hi, device).unsqueeze(-1);  // [B, T, 1]
  return (k.ge(l3) & k.lt(h3)) | k.eq(q);                         // [B, T, T]
}

at::Tensor segment_mean_weights(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                                at::Device device) {
  const int64_t B = static_cast<int64_t>(n_text.size());
  at::Tensor lo = at::empty({B, L}, at::TensorOptions(at::kLong));
  at::Tensor hi = at::empty({B, L}, at::TensorOptions(at::kLong));
  auto l = lo.accessor<int64_t, 2>();
  auto h = hi.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < L; ++j) {
      const Segment s = query_segment(n_text[b], L, j);
      l[b][j] = s.begin;
      h[b][j] = s.end;
    }
  const at::Tensor t = at::arange(T, at::TensorOptions(at::kLong).device(device)).view({1, 1, T});
  const at::Tensor l3 = model::upload(lo, device).unsqueeze(-1);   // [B, L, 1]
  const at::Tensor h3 = model::upload(hi, device).unsqueeze(-1);   // [B, L, 1]
  const at::Tensor in_seg = (t.ge(l3) & t.lt(h3)).to(at::kFloat);  // [B, L, T]
  return in_seg / (h3 - l3).clamp_min(1).to(at::kFloat);           // [B, L, T]
}

}  // namespace c3::cascade
