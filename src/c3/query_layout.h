// Where the encoder's L query slots sit, what each may attend to and what it adds up (config keys
// c3_query_positions, c3_query_mask and c3_query_pooling, C3Config).
//
// The encoder input of a passage of N text tokens, by index in the sequence (right-padded in a
// batch, so a row's real tokens always come first):
//   0 .. N-1 text,  N <img>,  N+1 .. N+L query slots,  N+L+1 </img>.
// Text segment j (j < L) is [floor(j N / L), floor((j + 1) N / L)): L nearly equal stretches that
// tile the text; when N < L some are empty.
//
// Positions (RoPE):
//   after_text (official): every token at its index, so query j sits at N + 1 + j, and its
//     distance to any given stretch of text moves with N.
//   segments: text and <img> at their index; query j at floor((j + 1) N / L), the end of its
//     segment (where a token appended right after the segment would sit), so its distances to
//     its own segment run 1 .. |segment| whatever N is; </img> at N + 1. After "Position IDs
//     Matter" (EPL, arXiv 2409.14364), which puts slot j at the centre of segment j; the end keeps
//     the whole segment before the slot, as the official layout keeps the text before the slots.
//     The decoder's positions do not change.
// Masks:
//   causal (official): each token sees itself and every earlier token.
//   segment: query j sees the tokens of its own segment and itself, nothing else: not <img>, not
//     the other queries. Its segment's tokens already carry the preceding text (text attention
//     stays causal), so latent j is "segment j in context"; shutting out the other queries keeps
//     one latent from taking over another's share (the load is spread evenly, as REFRAG's
//     per-chunk encoding does, arXiv 2509.01092). Every other token stays causal.
// Pooling:
//   none (official): latent j is query j's final hidden state.
//   segment_mean: plus the mean of the final hidden states of segment j's text tokens (an empty
//     segment adds nothing). Mean-pooling segments matched or beat learned queries in
//     arXiv 2512.03643 and 2510.20797; added to the query state, it keeps the learned queries.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "c3/c3_config.h"

namespace c3::cascade {

struct Segment {
  int64_t begin = 0, end = 0;  // [begin, end) text token indices
};

// Segment j of a text of n_text tokens cut into L segments.
Segment query_segment(int64_t n_text, int64_t L, int64_t j);

// RoPE positions of one row's n_text + L + 2 encoder tokens (layout above).
std::vector<int64_t> encoder_positions(int64_t n_text, int64_t L, QueryPositions p);

// [B, T] long position ids of right-padded rows with the given text lengths (pads continue from
// their index; nothing real attends to them). On the CPU.
at::Tensor encoder_position_ids(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                                QueryPositions p);

// [B, T, T] bool attention mask (true = query t may see key s) of right-padded rows under `m`,
// built on `device` from per-row key ranges (so no [B, T, T] host work).
at::Tensor encoder_attend_mask(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                               QueryMask m, at::Device device);

// [B, L, T] float weights that average each query's segment over a right-padded batch's encoder
// positions (row j of batch b: 1 / |segment| on its text tokens, all 0 for an empty segment).
at::Tensor segment_mean_weights(const std::vector<int64_t>& n_text, int64_t L, int64_t T,
                                at::Device device);

}  // namespace c3::cascade
