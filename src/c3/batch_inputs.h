// The tensors a batch of passages becomes before the cascade runs: built on the host, from token
// ids alone, so that what runs on the device reads no host data. Training builds them at a fixed
// shape (rows and target length rounded up), so that every micro-batch of one shape runs the same
// kernels on buffers of the same size, which a CUDA graph of the step needs (train/graphed_loss.h).
//
// Padding never changes a real token's result: rows are right-padded, so causal attention never
// lets a real token see a pad, and padded targets carry model::kIgnoreTarget, which the loss skips.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "model/chunked_cross_entropy.h"

namespace c3::cascade {

class C3ModelImpl;
struct InputNoise;

// The encoder's input: context ids, <img>, <imgpad> x L, </img> per row, right-padded.
struct EncoderInputs {
  at::Tensor ids;                // [B, T] long, padded with the pad id
  at::Tensor slot_index;         // [B, L] long: the index of each query slot in its row
  at::Tensor positions;          // [B, T] long RoPE positions; undefined: each token at its index
  std::vector<int64_t> n_text;   // text tokens per row (the mask and pooling layouts read them)
  EncoderInputs to(at::Device device) const;
};

// One teacher-forced micro-batch. Row b's targets are its passage then <|im_end|>; the decoder
// reads the prompt, then the targets but the last, and position P - 1 + t predicts target t.
struct TrainInputs {
  EncoderInputs encoder;
  at::Tensor target;     // [B, Tt] long; model::kIgnoreTarget after a row's <|im_end|> and in pad rows
  at::Tensor reads;      // [B, Tt - 1] long: the target's prefix (pads: the pad id), with input
                         // noise's random ids already in
  at::Tensor self_feed;  // [B, Tt - 1] bool: read the decoder's own prediction here; undefined
                         // when the noise has no self-feed share
  at::Tensor target_rows; // [N] long: the real targets' indices in the flattened [B * Tt];
                          // undefined at a fixed shape, where the loss runs over every
                          // position (padding ignored) so that no shape depends on the data
  int64_t n_targets = 0; // real targets (not padding)
  TrainInputs to(at::Device device) const;
};

// Rounds a micro-batch up to a shape: at least `rows` rows (padding rows hold no text and no
// targets), and room for passages of a multiple of `passage_multiple` tokens (so 512-token
// passages stay 512 at a multiple of 64). Zeros keep the batch's own shape, and the loss then
// runs over the real targets only (target_rows): less work when lengths vary.
struct TrainShape {
  int64_t rows = 0;
  int64_t passage_multiple = 0;
};

// The encoder inputs of `contexts`, padded to `T` tokens a row (0: the longest row's length).
EncoderInputs encoder_inputs(const C3ModelImpl& m, const std::vector<std::vector<int32_t>>& contexts,
                             int64_t T = 0);

// A micro-batch for the reconstruction loss, with `noise` drawn on the host from its key (the
// same draws for the same key, whatever the shape).
TrainInputs train_inputs(const C3ModelImpl& m, const std::vector<std::vector<int32_t>>& contexts,
                         const InputNoise& noise, const TrainShape& shape = {});

}  // namespace c3::cascade
