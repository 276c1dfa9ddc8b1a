// Continuous batching for greedy decoding: rows join the running batch between two decode steps
// and leave it when they stop, each with its own prompt, token budget, n-gram ban and stop tokens
// (the slots of llama.cpp's server, the running batch of vLLM's scheduler).
//
// How the cache is laid out: one static KV cache of R rows, where every row writes its step at the
// same slot, the clock, as generate()'s static path does. A joining row's prompt is prefilled on
// its own and its keys are copied into the slots just below the clock; its mask hides every slot
// before them. Positions are per row, so a row's numbers do not depend on where its keys sit, and
// it gets the ids that generate() gives it alone. Running rows stay packed in rows [0, n): a step
// runs over exactly those on the CPU, attending only over the slots some row uses; on CUDA over n
// rounded up to a power of two, each (rows, window) pair replayed as one captured CUDA graph.
// When the clock reaches the end of the cache, the live slots move down (and the cache grows, up
// to twice the longest row); the mask and positions make the move invisible to the rows.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "model/generate.h"

namespace c3::model {

struct DecodeBatchOptions {
  int64_t max_rows = 16;          // rows decoded together
  int64_t max_prompt = 0;         // longest prompt a row may bring (tokens)
  int64_t max_new_tokens = 4096;  // longest a row may run; with max_prompt it bounds the cache
  int64_t initial_slots = 0;      // cache slots per row to start with; 0 = 2 max_prompt + 512
  bool cuda_graphs = true;        // replay captured steps on CUDA
};

// One row: a prompt and how to decode it (greedy).
struct DecodeRow {
  Prompt prompt;
  int64_t max_new_tokens = 64;
  int64_t no_repeat_ngram_size = 0;  // HF semantics over prompt + generated ids; 0 = off
  std::vector<int64_t> stop_tokens;  // the row stops after emitting one (it is not returned)
};

struct FinishedRow {
  int64_t ticket = 0;
  std::vector<int64_t> ids;  // the generated ids, without the stop token
};

class DecodeBatch {
 public:
  DecodeBatch(Qwen2ForCausalLM model, const DecodeBatchOptions& opt);
  ~DecodeBatch();
  DecodeBatch(const DecodeBatch&) = delete;
  DecodeBatch& operator=(const DecodeBatch&) = delete;

  // Queues a row; it joins at the next step() that has a free row. Returns its ticket. Throws
  // c3::Error on a bad prompt or a budget beyond the options.
  int64_t add(DecodeRow row);
  // Drops a queued or running row; it is never returned.
  void cancel(int64_t ticket);
  // One step: queued rows join (one batched prefill), every running row picks its next token,
  // rows that stop leave, and the others run one decode step together. Returns the rows that
  // finished in this step.
  std::vector<FinishedRow> step();

  int64_t running() const;   // rows in the batch
  int64_t queued() const;    // rows added that have not joined yet
  int64_t max_rows() const;
  bool idle() const { return running() == 0 && queued() == 0; }
  int64_t cache_slots() const;  // slots per row of the KV cache now

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace c3::model
