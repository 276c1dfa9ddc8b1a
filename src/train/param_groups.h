// Which parameters of a cascade train (--freeze), and which of those get weight decay: not
// norms, biases, the queries Q, nor (unless --decay-embeddings) the embeddings.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "c3/c3_model.h"

namespace c3::train {

struct ParamGroups {
  std::vector<at::Tensor> decay, no_decay, all;  // all: every trained one, in module order
};

// Sets requires_grad on every parameter. `freeze` is a comma list of encoder, decoder,
// embeddings, queries, projector; an unknown part is a c3::Error naming it.
ParamGroups param_groups(cascade::C3Model& m, const std::string& freeze, bool decay_embeddings);

}  // namespace c3::train
